//! What `history` prints: recent runs, outcome counts, latency percentiles,
//! alerts, silences and the outbox (pending and dead-lettered notifications).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde::Serialize;

use super::short_duration;
use super::stats::{self, ProbeStats};
use crate::alert::AlertState;
use crate::config::Config;
use crate::store::{OutboxEntry, Silence, Store, StoreError, StoredRun};

/// Everything `history` shows, read from the store.
#[derive(Debug, Serialize)]
pub struct History {
    pub probe: Option<String>,
    #[serde(serialize_with = "secs", rename = "window_s")]
    pub window: Duration,
    /// Each probe with runs in the window (or the one asked for): counts,
    /// availability and percentiles from the rollups, incidents.
    pub probes: Vec<ProbeStats>,
    #[serde(skip)]
    pub runs: Vec<StoredRun>,
    pub alerts: Vec<(String, AlertState)>,
    pub silences: Vec<SilenceView>,
    pub pending: u64,
    pub dead_letters: usize,
    #[serde(skip)]
    pub dead: Vec<OutboxEntry>,
    pub now: DateTime<Utc>,
}

/// A silence as `history --format json` shows it.
#[derive(Debug, Serialize)]
pub struct SilenceView {
    pub probe: String,
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
}

pub fn load(
    store: &Store,
    config: &Config,
    probe: Option<&str>,
    window: Duration,
    limit: usize,
) -> Result<History, StoreError> {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
    let mine = |p: &str| probe.is_none_or(|want| want == p);
    let names: Vec<String> = match probe {
        Some(p) => vec![p.to_string()],
        None => store.counted_probes(since)?,
    };
    let probes = names
        .iter()
        .map(|name| stats::probe_stats(store, name, config.probe(name), window, now))
        .collect::<Result<Vec<_>, _>>()?;
    let dead: Vec<OutboxEntry> = store
        .dead_letters(50)?
        .into_iter()
        .filter(|d| mine(&d.notification.probe))
        .collect();
    Ok(History {
        probe: probe.map(str::to_string),
        window,
        probes,
        runs: store.recent_runs(probe, limit)?,
        alerts: store
            .alert_states()?
            .into_iter()
            .filter(|(p, s)| mine(p) && s.firing.is_some())
            .collect(),
        silences: store
            .silences(now)?
            .into_iter()
            .filter(|s| mine(&s.probe))
            .map(|s: Silence| SilenceView {
                probe: s.probe,
                until: s.until,
                reason: s.reason,
            })
            .collect(),
        pending: store.pending_notifications()?,
        dead_letters: dead.len(),
        dead,
        now,
    })
}

/// `history --format json`: the figures, alerts, silences and the outbox,
/// with the recent runs as the check's JSON writes runs.
pub fn render_json(h: &History) -> String {
    let mut doc = serde_json::to_value(h).unwrap_or_default();
    doc["schema_version"] = serde_json::json!(1);
    doc["runs"] = serde_json::to_value(
        h.runs
            .iter()
            .cloned()
            .map(StoredRun::into_result)
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

/// `history --format csv`: the recent runs, a row each, newest first.
pub fn render_csv(h: &History) -> String {
    let mut out = String::from(
        "started_at,probe,outcome,latency_ms,threshold_ms,code,message_id,correlation_id,interrupted,reason\n",
    );
    for r in &h.runs {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.3},{},{},{},{},{}",
            r.started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            csv(&r.probe),
            r.outcome.as_str(),
            r.latency
                .map_or(String::new(), |l| format!("{:.3}", l.as_secs_f64() * 1e3)),
            r.threshold.as_secs_f64() * 1e3,
            csv(r.code.as_deref().unwrap_or("")),
            csv(r.message_id.as_deref().unwrap_or("")),
            csv(&r.correlation_id),
            r.interrupted,
            csv(r.reason.as_deref().unwrap_or("")),
        );
    }
    out
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
pub fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

pub fn render(h: &History) -> String {
    let mut out = String::new();
    let window = super::window_text(h.window);
    let mut by_outcome: Vec<(crate::probe::Outcome, u64)> = Vec::new();
    for (o, n) in h.probes.iter().flat_map(|p| &p.by_outcome) {
        match by_outcome.iter_mut().find(|(seen, _)| seen == o) {
            Some((_, total)) => *total += n,
            None => by_outcome.push((*o, *n)),
        }
    }
    by_outcome.sort_by_key(|(o, _)| *o);
    let total: u64 = by_outcome.iter().map(|(_, n)| n).sum();
    let counts: Vec<String> = by_outcome.iter().map(|(o, n)| format!("{n} {o}")).collect();
    let scope = h.probe.as_deref().unwrap_or("all probes");
    let _ = writeln!(
        out,
        "{scope}, last {window}: {total} runs{}",
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    );
    if h.probes.iter().all(|p| p.p50.is_none()) {
        let _ = writeln!(out, "latency: no arrivals in the window");
    }
    let w = h.probes.iter().map(|p| p.probe.len()).max().unwrap_or(0);
    let dur = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), short_duration);
    for p in &h.probes {
        let availability = p
            .availability
            .map_or_else(|| "-".to_string(), |a| format!("{:.2}%", a * 100.0));
        let _ = writeln!(
            out,
            "{:<w$}  available {availability:>7} ({} of {} due ok)  p50 {:>8}  p95 {:>8}  p99 {:>8}  {} incident{}",
            p.probe,
            p.ok,
            p.due,
            dur(p.p50),
            dur(p.p95),
            dur(p.p99),
            p.incidents.len(),
            if p.incidents.len() == 1 { "" } else { "s" },
        );
    }
    for (probe, state) in &h.alerts {
        if let Some(f) = &state.firing {
            let _ = writeln!(
                out,
                "FIRING {} {probe} since {} ({} consecutive failures)",
                f.severity.as_str(),
                f.since.to_rfc3339(),
                state.consecutive_failures
            );
        }
    }
    for s in &h.silences {
        let reason = s
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "silenced {} until {}{reason}",
            s.probe,
            s.until.to_rfc3339()
        );
    }
    let _ = writeln!(
        out,
        "notifications: {} pending, {} dead-lettered",
        h.pending, h.dead_letters
    );
    for d in &h.dead {
        let _ = writeln!(
            out,
            "  dead letter  {}  {}  after {} attempts: {}",
            d.channel,
            d.notification.headline(),
            d.attempts,
            d.last_error.as_deref().unwrap_or("unknown error")
        );
    }
    if !h.runs.is_empty() {
        let _ = writeln!(out, "recent runs (newest first):");
        let w = h.runs.iter().map(|r| r.probe.len()).max().unwrap_or(0);
        for r in &h.runs {
            let latency = r.latency.map_or_else(|| "-".to_string(), short_duration);
            let reason = r
                .reason
                .as_deref()
                .map(|x| format!("  {x}"))
                .unwrap_or_default();
            let cut = if r.interrupted { " (interrupted)" } else { "" };
            let _ = writeln!(
                out,
                "  {}  {:<w$}  {:<11}  {:>8}  {}{cut}{reason}",
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.probe,
                r.outcome.as_str(),
                latency,
                r.correlation_id
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_written() {
        use super::super::window_text;
        assert_eq!(window_text(Duration::from_secs(86_400)), "24h");
        assert_eq!(window_text(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(window_text(Duration::from_secs(3600)), "1h");
        assert_eq!(window_text(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(window_text(Duration::from_secs(90)), "1m 30s");
    }
}
