//! Loading: parse (keeping every value's position) → expand `${VAR}` in
//! strings → deserialize with unknown keys rejected (each `kind` dispatched
//! through the providers' registry) → check what deserializing cannot see →
//! apply `[defaults]` to each probe → check cross-references. Every problem
//! is reported, not just the first. No HTTP client is built to check a
//! setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use url::Url;

use super::error::{ConfigError, ConfigErrors, Sink, de_message, line_col};
use super::expand::expand;
use super::probe_files;
use super::schema::*;
use crate::providers::{GatewayConfig, ReceiverConfig};
use crate::values::Invalid;

/// Largest main config file read.
const MAX_MAIN_BYTES: u64 = 16 << 20;

/// Reads a config file; text that is not UTF-8 is refused at the first bad byte.
fn read_text(path: &Path, limit: u64) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let failed = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Bounded: the file may be a pipe (`--config <(...)`) or grow while read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() as u64 > limit {
        return Err(ConfigError::File {
            file: path.to_path_buf(),
            message: format!("larger than {limit} bytes: not a config file"),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        // The prefix up to the bad byte is valid UTF-8 by definition.
        let before = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let (line, column) = line_col(&before, valid);
        ConfigError::At {
            file: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8 text (save the file as UTF-8)".to_string(),
        }
    })
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Loads the config at `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Loads with an explicit environment, so tests need not touch the process's.
    pub fn load_with_env(path: &Path, env: Env<'_>) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let text = read_text(path, MAX_MAIN_BYTES).map_err(|e| ConfigErrors(vec![e]))?;
        let main = parse_main(path, &text, env, &mut errors);
        let Some((raw, gateways, receivers, alerts, declared)) = main else {
            return Err(ConfigErrors(errors));
        };
        let (defaults, defaults_span) = match raw.defaults {
            Some(d) => (d.get_ref().clone(), Some(d.span())),
            None => (Defaults::default(), None),
        };
        let mut config = Config {
            path: path.to_path_buf(),
            canary: raw.canary,
            defaults,
            gateways,
            receivers,
            alerts,
            probes: Vec::new(),
        };
        let base = path.parent().unwrap_or(Path::new(""));
        config.canary.state_dir = base.join(&config.canary.state_dir);
        {
            let mut sink = Sink {
                file: path,
                text: &text,
                errors: &mut errors,
            };
            check_canary(&config.canary, &declared, &mut sink);
            check_defaults(&config.defaults, defaults_span, &mut sink);
            check_receivers(&config, &declared, &mut sink);
        }
        config.probes = load_probes(&config, &declared, base, env, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }
}

type MainParts = (
    RawMain,
    BTreeMap<String, GatewayConfig>,
    BTreeMap<String, ReceiverConfig>,
    BTreeMap<String, AlertConfig>,
    Declared,
);

/// Every gateway and receiver name written in the file, including those that
/// failed to parse, so that one broken table does not also make every
/// reference to it an error.
#[derive(Debug, Default)]
struct Declared {
    gateways: BTreeSet<String>,
    receivers: BTreeSet<String>,
    alerts: BTreeSet<String>,
    /// Line and column of `[canary] probes`, for errors in its globs.
    probes_at: Option<(usize, usize)>,
    /// Where `[canary] admin_listen` is written.
    admin_listen_span: Option<std::ops::Range<usize>>,
    /// Where `[canary] retention` and `rollup_retention` are written.
    retention_span: Option<std::ops::Range<usize>>,
    rollup_retention_span: Option<std::ops::Range<usize>>,
}

fn parse_main(
    path: &Path,
    text: &str,
    env: Env<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<MainParts> {
    let mut sink = Sink {
        file: path,
        text,
        errors,
    };
    let mut root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    expand_table(root.get_mut(), env, &mut sink);
    if sink.errors.len() > before {
        return None;
    }
    let canary_key_at = |key: &str| match root.get_ref().get("canary").map(|c| c.get_ref()) {
        Some(DeValue::Table(canary)) => canary.get(key).map(|p| p.span()),
        _ => None,
    };
    let probes_at = canary_key_at("probes").map(|span| line_col(text, span.start));
    let canary_alerts_at = canary_key_at("alerts");
    let heartbeat_url_at = canary_key_at("heartbeat_url");
    let admin_listen_span = canary_key_at("admin_listen");
    let retention_span = canary_key_at("retention");
    let store_at = canary_key_at("store");
    let rollup_retention_span = canary_key_at("rollup_retention");
    let gateways_value = root.get_mut().remove("gateways");
    let receivers_value = root.get_mut().remove("receivers");
    let alerts_value = root.get_mut().remove("alerts");
    let raw = match RawMain::deserialize(toml::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            sink.toml(e);
            RawMain::default()
        }
    };
    let mut declared = Declared {
        probes_at,
        admin_listen_span,
        retention_span,
        rollup_retention_span,
        ..Declared::default()
    };
    let gateways = parse_kinds(
        gateways_value,
        "gateways",
        GatewayConfig::KINDS,
        &mut sink,
        &mut declared.gateways,
        |kind, value| GatewayConfig::deserialize(kind, ValueDeserializer::from(value)),
        GatewayConfig::validate,
    );
    let receivers = parse_kinds(
        receivers_value,
        "receivers",
        ReceiverConfig::KINDS,
        &mut sink,
        &mut declared.receivers,
        |kind, value| ReceiverConfig::deserialize(kind, ValueDeserializer::from(value)),
        ReceiverConfig::validate,
    );
    let alerts = parse_kinds(
        alerts_value,
        "alerts",
        AlertConfig::KINDS,
        &mut sink,
        &mut declared.alerts,
        |kind, value| {
            let de = ValueDeserializer::from(value);
            Some(match kind {
                "slack" => SlackConfig::deserialize(de).map(AlertConfig::Slack),
                "email" => EmailConfig::deserialize(de).map(AlertConfig::Email),
                "webhook" => WebhookAlertConfig::deserialize(de).map(AlertConfig::Webhook),
                "alertmanager" => {
                    AlertmanagerConfig::deserialize(de).map(AlertConfig::Alertmanager)
                }
                // An unknown kind is refused, never read as another.
                _ => return None,
            })
        },
        crate::alert::channel::check_config,
    );
    for name in &raw
        .defaults
        .as_ref()
        .map(|d| d.get_ref().alerts.clone())
        .unwrap_or_default()
    {
        if !declared.alerts.contains(name) {
            sink.at(
                raw.defaults.as_ref().map(|d| d.span()),
                format!(
                    "[defaults] alerts: no alert channel named `{name}` (known: {})",
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    if let Some(url) = &raw.canary.heartbeat_url {
        let usable = Url::parse(url.expose())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !usable {
            // The URL itself is not quoted: a ping URL is often a credential.
            sink.at(
                heartbeat_url_at,
                "[canary] heartbeat_url must be an http:// or https:// URL with a host",
            );
        }
    }
    if let Some(dsn) = &raw.canary.store
        && !crate::store::postgres::NOT_YET_PORTED.is_empty()
    {
        // Refused here, while the config is read, rather than when a run
        // first needs what the PostgreSQL store cannot do yet.
        sink.at(
            store_at,
            format!(
                "[canary] store: the PostgreSQL store ({}) is not complete in this version of sms-canary; \
                 still missing: {}. Remove `store` to use the SQLite store in state_dir",
                dsn.target(),
                crate::store::postgres::NOT_YET_PORTED.join("; ")
            ),
        );
    }
    for name in raw.canary.alerts.iter().flatten() {
        if !declared.alerts.contains(name) {
            sink.at(
                canary_alerts_at.clone(),
                format!(
                    "[canary] alerts: no alert channel named `{name}` (known: {})",
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    Some((raw, gateways, receivers, alerts, declared))
}

/// Parses `[SECTION.NAME]` tables whose `kind` picks the type to
/// deserialize: `build` gives `None` for a kind it does not know.
fn parse_kinds<T>(
    value: Option<Spanned<DeValue<'_>>>,
    section: &str,
    kinds: &[&str],
    sink: &mut Sink<'_>,
    declared: &mut BTreeSet<String>,
    build: impl Fn(&str, Spanned<DeValue<'_>>) -> Option<Result<T, toml::de::Error>>,
    check: impl Fn(&T) -> Result<(), Invalid>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        sink.at(
            Some(span),
            format!("`{section}` must be a table of named tables, e.g. [{section}.NAME]"),
        );
        return out;
    };
    for (name, entry) in table {
        let entry_span = entry.span();
        let name = name.into_inner().into_owned();
        declared.insert(name.clone());
        let DeValue::Table(mut fields) = entry.into_inner() else {
            sink.at(
                Some(entry_span),
                format!("`{section}.{name}` must be a table"),
            );
            continue;
        };
        let unknown = |sink: &mut Sink<'_>, span| {
            sink.at(
                Some(span),
                format!(
                    "`{section}.{name}`: unknown kind, expected one of: {}",
                    kinds.join(", ")
                ),
            );
        };
        let (kind, kind_span) = match fields.remove("kind") {
            Some(kind) => match kind.get_ref().as_str() {
                Some(k) => (k.to_string(), kind.span()),
                None => {
                    unknown(sink, kind.span());
                    continue;
                }
            },
            None => {
                sink.at(
                    Some(entry_span),
                    format!(
                        "`{section}.{name}`: missing `kind` (one of: {})",
                        kinds.join(", ")
                    ),
                );
                continue;
            }
        };
        let field_spans: BTreeMap<String, std::ops::Range<usize>> = fields
            .iter()
            .map(|(key, value)| (key.get_ref().to_string(), value.span()))
            .collect();
        match build(
            &kind,
            Spanned::new(entry_span.clone(), DeValue::Table(fields)),
        ) {
            None => unknown(sink, kind_span),
            Some(Ok(parsed)) => {
                if let Err(e) = check(&parsed) {
                    let span = field_spans.get(e.field).cloned().unwrap_or(entry_span);
                    sink.at(Some(span), format!("`{section}.{name}`: {}", e.message));
                }
                out.insert(name, parsed);
            }
            Some(Err(e)) => {
                let message = format!("`{section}.{name}`: {}", de_message(&e));
                sink.at(e.span(), message);
            }
        }
    }
    out
}

/// Expands `${VAR}` in every string of a parsed table, in place.
fn expand_table(table: &mut DeTable<'_>, env: Env<'_>, sink: &mut Sink<'_>) {
    for (_, value) in table.iter_mut() {
        expand_value(value, env, sink);
    }
}

fn expand_value(value: &mut Spanned<DeValue<'_>>, env: Env<'_>, sink: &mut Sink<'_>) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => match expand(s, env) {
            Ok(expanded) => *s = std::borrow::Cow::Owned(expanded),
            Err(e) => sink.at(Some(span), e.to_string()),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_value(item, env, sink);
            }
        }
        DeValue::Table(t) => expand_table(t, env, sink),
        _ => {}
    }
}

fn check_canary(c: &Canary, declared: &Declared, sink: &mut Sink<'_>) {
    if c.admin_listen == c.listen && c.listen.port() != 0 {
        sink.at(
            declared.admin_listen_span.clone(),
            format!(
                "[canary] admin_listen must differ from listen ({}): the public listener serves only webhooks, the admin one /metrics, health and the run API",
                c.listen
            ),
        );
    }
    let day = Duration::from_secs(86_400);
    if c.retention < day {
        sink.at(
            declared.retention_span.clone(),
            "[canary] retention must be at least 1d: the cost guard counts the messages of the last 24 hours",
        );
    }
    if c.rollup_retention < c.retention {
        sink.at(
            declared.rollup_retention_span.clone().or(declared.retention_span.clone()),
            "[canary] rollup_retention must be at least retention: runs pruned before their rollups would be lost",
        );
    }
}

fn check_defaults(d: &Defaults, span: Option<std::ops::Range<usize>>, sink: &mut Sink<'_>) {
    if d.timeout.is_zero() {
        sink.at(span.clone(), "[defaults] timeout must be greater than 0");
    }
    if d.threshold > d.timeout {
        sink.at(
            span,
            threshold_message("[defaults] ", d.threshold, d.timeout),
        );
    }
}

/// At most this many labels a probe: they group probes, not describe them.
const MAX_LABELS: usize = 8;

/// Label names the canary's own figures use already: a probe label named
/// so would be ambiguous wherever the two meet.
const RESERVED_LABELS: &[&str] = &[
    "probe", "gateway", "receiver", "outcome", "reason", "phase", "channel", "result", "le",
    "instance", "job",
];

/// A probe's labels, checked: names like Prometheus label names (lower case,
/// digits, `_`; up to 32 characters), values of printable text up to 64.
fn probe_labels(
    raw: Option<&Spanned<std::collections::BTreeMap<String, String>>>,
    sink: &mut Sink<'_>,
) -> std::collections::BTreeMap<String, String> {
    let Some(raw) = raw else {
        return Default::default();
    };
    let span = Some(raw.span());
    let labels = raw.get_ref();
    if labels.len() > MAX_LABELS {
        sink.at(
            span.clone(),
            format!(
                "labels: {} labels, at most {MAX_LABELS}: they group probes on the status page",
                labels.len()
            ),
        );
    }
    for (name, value) in labels {
        let mut chars = name.chars();
        let well_formed = name.len() <= 32
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            sink.at(
                span.clone(),
                format!(
                    "labels: `{}` is not a label name: lower-case letters, digits and `_`, starting with a letter, up to 32 characters",
                    crate::net::clip(name, 40)
                ),
            );
        } else if RESERVED_LABELS.contains(&name.as_str()) {
            sink.at(
                span.clone(),
                format!("labels: `{name}` is a name sms-canary's own figures use; choose another"),
            );
        }
        if value.trim().is_empty()
            || value.chars().count() > 64
            || value.chars().any(char::is_control)
        {
            sink.at(
                span.clone(),
                format!(
                    "labels: the value of `{}` must be 1 to 64 printable characters",
                    crate::net::clip(name, 40)
                ),
            );
        }
    }
    labels.clone()
}

fn threshold_message(prefix: &str, threshold: Duration, timeout: Duration) -> String {
    format!(
        "{prefix}threshold ({}) exceeds timeout ({}): a message slower than the threshold would already count as lost",
        humantime::format_duration(threshold),
        humantime::format_duration(timeout)
    )
}

fn check_receivers(config: &Config, declared: &Declared, sink: &mut Sink<'_>) {
    for (name, receiver) in &config.receivers {
        let Some(gateway) = receiver.gateway() else {
            continue;
        };
        match config.gateways.get(gateway.get_ref()) {
            Some(g) if receiver.fits(g) => {}
            Some(g) => {
                let (fits, otherwise) = receiver.fit_hint();
                sink.at(
                    Some(gateway.span()),
                    format!(
                        "receiver `{name}` ({}): gateway `{}` is of kind {}, which does not fit: \
                         a {} receiver needs a gateway of kind {fits}; {otherwise}",
                        receiver.kind(),
                        gateway.get_ref(),
                        g.kind(),
                        receiver.kind(),
                    ),
                )
            }
            None if declared.gateways.contains(gateway.get_ref()) => {}
            None => sink.at(
                Some(gateway.span()),
                format!(
                    "receiver `{name}`: no gateway named `{}` (known: {})",
                    gateway.get_ref(),
                    known(config.gateways.keys())
                ),
            ),
        }
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

fn load_probes(
    config: &Config,
    declared: &Declared,
    base: &Path,
    env: Env<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Probe> {
    let mut found = probe_files::Found::default();
    for pattern in &config.canary.probes {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        if let Err(e) = probe_files::find(&full, &mut found) {
            let message = format!("[canary] probes: bad glob \"{pattern}\": {e}");
            errors.push(match declared.probes_at {
                Some((line, column)) => ConfigError::At {
                    file: config.path.clone(),
                    line,
                    column,
                    message,
                },
                None => ConfigError::File {
                    file: config.path.clone(),
                    message,
                },
            });
        }
    }
    errors.extend(found.errors.into_iter().map(|e| ConfigError::File {
        file: e.path,
        message: e.message,
    }));
    let files: BTreeSet<PathBuf> = found.files.into_iter().collect();
    let mut probes: Vec<Probe> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match read_text(&file, probe_files::MAX_FILE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut sink = Sink {
            file: &file,
            text: &text,
            errors,
        };
        if let Some(probe) = parse_probe(&file, &text, config, declared, env, &mut sink, &seen) {
            seen.insert(probe.name.clone(), file.clone());
            probes.push(probe);
        }
    }
    probes.sort_by(|a, b| a.name.cmp(&b.name));
    probes
}

fn parse_probe(
    file: &Path,
    text: &str,
    config: &Config,
    declared: &Declared,
    env: Env<'_>,
    sink: &mut Sink<'_>,
    seen: &BTreeMap<String, PathBuf>,
) -> Option<Probe> {
    let mut root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    expand_table(root.get_mut(), env, sink);
    if sink.errors.len() > before {
        return None;
    }
    let raw = match RawProbe::deserialize(toml::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    let name = raw.name.get_ref().clone();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        sink.at(
            Some(raw.name.span()),
            format!(
                "probe name \"{name}\": use 1 to 64 of a-z, 0-9, `-` and `_` (it appears in URLs and metric labels)"
            ),
        );
    } else if let Some(other) = seen.get(&name) {
        sink.at(
            Some(raw.name.span()),
            format!("probe `{name}` is already defined in {}", other.display()),
        );
    }
    if !declared.gateways.contains(raw.gateway.get_ref()) {
        sink.at(
            Some(raw.gateway.span()),
            format!(
                "no gateway named `{}` (known: {})",
                raw.gateway.get_ref(),
                known(declared.gateways.iter())
            ),
        );
    }
    if !declared.receivers.contains(raw.receiver.get_ref()) {
        sink.at(
            Some(raw.receiver.span()),
            format!(
                "no receiver named `{}` (known: {})",
                raw.receiver.get_ref(),
                known(declared.receivers.iter())
            ),
        );
    }
    // The mock delivers to its own receiver only: any other refuses its
    // signature, so every run would end `lost`.
    if let (Some(GatewayConfig::Mock(_)), Some(ReceiverConfig::Webhook(w))) = (
        config.gateways.get(raw.gateway.get_ref()),
        config.receivers.get(raw.receiver.get_ref()),
    ) && w.gateway.as_ref().map(|g| g.get_ref()) != Some(raw.gateway.get_ref())
    {
        sink.at(
            Some(raw.receiver.span()),
            format!(
                "receiver `{receiver}` does not take mock `{gateway}`'s messages: a webhook receiver accepts only its own gateway's signed requests; set gateway = \"{gateway}\" in [receivers.{receiver}]",
                receiver = raw.receiver.get_ref(),
                gateway = raw.gateway.get_ref()
            ),
        );
    }
    let d = &config.defaults;
    let timeout = raw.timeout.as_ref().map_or(d.timeout, |t| t.get_ref().0);
    let threshold = raw
        .threshold
        .as_ref()
        .map_or(d.threshold, |t| t.get_ref().0);
    if timeout.is_zero() {
        sink.at(
            raw.timeout.as_ref().map(|t| t.span()),
            "timeout must be greater than 0",
        );
    }
    if threshold > timeout {
        // Point at whichever of the two this file sets; both may come from [defaults].
        let span = raw
            .threshold
            .as_ref()
            .or(raw.timeout.as_ref())
            .map_or(raw.name.span(), |s| s.span());
        sink.at(Some(span), threshold_message("", threshold, timeout));
    }
    if raw.from == raw.to {
        sink.at(
            Some(raw.name.span()),
            "`from` and `to` are the same number: the probe would text itself",
        );
    }
    let probe = Probe {
        name,
        file: file.to_path_buf(),
        gateway: raw.gateway.into_inner(),
        receiver: raw.receiver.into_inner(),
        from: raw.from,
        to: raw.to,
        enabled: raw.enabled.is_none_or(|b| b.0),
        schedule: raw.schedule.unwrap_or_else(|| d.schedule.clone()),
        timeout,
        threshold,
        retry: raw.retry.unwrap_or(d.retry),
        failure_threshold: raw.failure_threshold.unwrap_or(d.failure_threshold),
        success_threshold: raw.success_threshold.unwrap_or(d.success_threshold),
        reminder: raw.reminder.map_or(d.reminder, |r| r.0),
        body: raw.body.unwrap_or_else(|| d.body.clone()),
        alerts: match &raw.alerts {
            Some(names) => names.iter().map(|n| n.get_ref().clone()).collect(),
            None => d.alerts.clone(),
        },
        alerts_explicit: raw.alerts.is_some(),
        alert_on_permanent: raw.alert_on_permanent.unwrap_or(d.alert_on_permanent),
        runbook_url: raw.runbook_url.clone().or_else(|| d.runbook_url.clone()),
        dashboard_url: raw
            .dashboard_url
            .clone()
            .or_else(|| d.dashboard_url.clone()),
        labels: probe_labels(raw.labels.as_ref(), sink),
    };
    for name in raw.alerts.iter().flatten() {
        if !declared.alerts.contains(name.get_ref()) {
            sink.at(
                Some(name.span()),
                format!(
                    "no alert channel named `{}` (known: {})",
                    name.get_ref(),
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    (sink.errors.len() == before).then_some(probe)
}
