//! What `validate` prints: the loaded configuration as a plan a person can check.

use std::fmt::Write as _;

use super::short_duration;
use crate::config::{Config, ReceiverConfig};
use crate::receiver::webhook::join_public;

/// Lists gateways (with the URL their receipts come back to), receivers
/// (with the inbound URLs to configure at the provider) and probes. Every
/// URL is built from the route the webhook server serves. Numbers are
/// masked; secrets never appear.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", config.path.display());
    let _ = writeln!(
        out,
        "instance {}, webhooks on {} (public: /hooks/... only)",
        config.canary.instance, config.canary.listen
    );
    let token = if config.canary.api_token.is_some() {
        "run API with api_token"
    } else {
        "run API off: no api_token"
    };
    let _ = writeln!(
        out,
        "daemon admin on {} (/metrics, /healthz, /readyz, {token}); keep it off the internet",
        config.canary.admin_listen
    );
    let public = config.canary.public_url_for(config.canary.listen);
    let _ = writeln!(out, "gateways:");
    for (name, g) in &config.gateways {
        match (g.receipt_route(), g.receipt_events()) {
            // Registered once at the provider, for these events.
            (Some(route), Some(events)) => {
                let url = join_public(&public, &route.path_for(name));
                let _ = writeln!(
                    out,
                    "  {name} ({}): {} URL {url} (register it for {})",
                    g.kind(),
                    route.what,
                    events.join(", ")
                );
            }
            // The URL goes with each message (`?run=` names the run), so
            // nothing needs setting at the provider; a firewall must let it in.
            (Some(route), None) => {
                let url = join_public(&public, &route.path_for(name));
                let _ = writeln!(
                    out,
                    "  {name} ({}): {} URL {url}?run=…",
                    g.kind(),
                    route.what
                );
            }
            (None, _) => {
                let _ = writeln!(out, "  {name} ({})", g.kind());
            }
        }
    }
    let _ = writeln!(out, "receivers:");
    let json = crate::providers::json_route();
    for (name, r) in &config.receivers {
        match r {
            ReceiverConfig::Webhook(w) => {
                let inbound = crate::providers::inbound_route(&config.gateways, w);
                let url = join_public(&public, &inbound.path_for(name));
                let checks = if w.verify_signatures {
                    ""
                } else {
                    ", signature checks OFF"
                };
                let _ = writeln!(
                    out,
                    "  {name} (webhook{checks}): {} URL {url}",
                    inbound.what
                );
                if inbound != json && w.json_secret.is_some() {
                    let url = join_public(&public, &json.path_for(name));
                    let _ = writeln!(out, "  {name} (webhook{checks}): {} URL {url}", json.what);
                }
            }
            other => match other.own_route() {
                Some((route, events)) => {
                    let url = join_public(&public, &route.path_for(name));
                    let _ = writeln!(
                        out,
                        "  {name} ({}): {} URL {url} (register it for {})",
                        other.kind(),
                        route.what,
                        events.join(", ")
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name} ({})", other.kind());
                }
            },
        }
    }
    let enabled = config.probes.iter().filter(|p| p.enabled).count();
    let _ = writeln!(out, "probes: {} ({enabled} enabled)", config.probes.len());
    let w = config
        .probes
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    let mut per_day = 0.0;
    for p in &config.probes {
        let runs = p.schedule.runs_per_day();
        if p.enabled {
            per_day += runs;
        }
        let _ = writeln!(
            out,
            "  {:<w$}  {} → {} via {} → {}  threshold {}, timeout {}, {} (~{runs:.0}/day){}",
            p.name,
            p.from.masked(),
            p.to.masked(),
            p.gateway,
            p.receiver,
            short_duration(p.threshold),
            short_duration(p.timeout),
            p.schedule,
            if p.enabled { "" } else { "  (disabled)" },
        );
    }
    let cap = config.defaults.max_messages_per_day;
    let _ = writeln!(
        out,
        "plan: ~{per_day:.0} messages/day from the daemon (cost guard: {cap}/day)"
    );
    for p in config.probes.iter().filter(|p| p.alerts_forgotten()) {
        let _ = writeln!(
            out,
            "warning: probe `{}` has no alert channel: its alerts go nowhere (name channels with \
             `alerts = [...]` in {} or in [defaults], or write `alerts = []` there to mean it)",
            p.name,
            p.file.display()
        );
    }
    if per_day > f64::from(cap) {
        let _ = writeln!(
            out,
            "warning: the schedules send more than max_messages_per_day; runs past the cap are skipped each day"
        );
    }
    out
}
