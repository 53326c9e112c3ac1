//! What `history` prints: recent runs, outcome counts, latency percentiles,
//! alerts, silences and the outbox (pending and dead-lettered notifications).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::short_duration;
use crate::alert::AlertState;
use crate::probe::Outcome;
use crate::store::{OutboxEntry, Percentiles, Silence, Store, StoreError, StoredRun};

/// Everything `history` shows, read from the store.
#[derive(Debug)]
pub struct History {
    pub probe: Option<String>,
    pub window: Duration,
    pub runs: Vec<StoredRun>,
    pub counts: Vec<(Outcome, u64)>,
    /// Per probe with arrivals in the window (only the one asked for, if any).
    pub percentiles: Vec<(String, Percentiles)>,
    pub alerts: Vec<(String, AlertState)>,
    pub silences: Vec<Silence>,
    pub pending: u64,
    pub dead: Vec<OutboxEntry>,
    pub now: DateTime<Utc>,
}

pub fn load(
    store: &Store,
    probe: Option<&str>,
    window: Duration,
    limit: usize,
) -> Result<History, StoreError> {
    let now = Utc::now();
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
    let mine = |p: &str| probe.is_none_or(|want| want == p);
    Ok(History {
        probe: probe.map(str::to_string),
        window,
        runs: store.recent_runs(probe, limit)?,
        counts: store.outcome_counts(probe, since)?,
        percentiles: {
            let probes = match probe {
                Some(p) => vec![p.to_string()],
                None => store.probes_run_since(since)?,
            };
            let mut each = Vec::new();
            for p in probes {
                if let Some(pct) = store.latency_percentiles(Some(&p), since)? {
                    each.push((p, pct));
                }
            }
            each
        },
        alerts: store
            .alert_states()?
            .into_iter()
            .filter(|(p, s)| mine(p) && s.firing.is_some())
            .collect(),
        silences: store
            .silences(now)?
            .into_iter()
            .filter(|s| mine(&s.probe))
            .collect(),
        pending: store.pending_notifications()?,
        dead: store
            .dead_letters(50)?
            .into_iter()
            .filter(|d| mine(&d.notification.probe))
            .collect(),
        now,
    })
}

pub fn render(h: &History) -> String {
    let mut out = String::new();
    let window = window_text(h.window);
    let total: u64 = h.counts.iter().map(|(_, n)| n).sum();
    let counts: Vec<String> = h.counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
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
    if h.percentiles.is_empty() {
        let _ = writeln!(out, "latency: no arrivals in the window");
    }
    let w = h
        .percentiles
        .iter()
        .map(|(p, _)| p.len())
        .max()
        .unwrap_or(0);
    for (probe, p) in &h.percentiles {
        let _ = writeln!(
            out,
            "latency {probe:<w$}  p50 {:>8}  p95 {:>8}  p99 {:>8}  ({} arrivals)",
            short_duration(p.p50),
            short_duration(p.p95),
            short_duration(p.p99),
            p.count,
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
        h.pending,
        h.dead.len()
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

/// A window the way it was asked for: "24h", "7d", "90m", else humantime.
fn window_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => humantime::format_duration(d).to_string(),
        s if s % 86_400 == 0 && s > 86_400 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        _ => humantime::format_duration(d).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_written() {
        assert_eq!(window_text(Duration::from_secs(86_400)), "24h");
        assert_eq!(window_text(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(window_text(Duration::from_secs(3600)), "1h");
        assert_eq!(window_text(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(window_text(Duration::from_secs(90)), "1m 30s");
    }
}
