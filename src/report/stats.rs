//! A probe's figures over a window: runs, availability, latency percentiles
//! and incidents. One home for what `history`, the status page and the SLA
//! report show, so they agree.
//!
//! Availability is the share of due runs that ended `ok`: the runs the
//! probe's schedule called for in the window (from its first run, if later),
//! or the runs that happened if there were more. A slot that was skipped
//! (the cost guard, a canary that was down) is due and not ok, so "the canary
//! was not running" never reads as 100%. Counts and percentiles come from the
//! hourly rollups (to the hour, and a year as fast as a day); incidents from
//! the raw runs, which `retention` keeps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Probe;
use crate::probe::Outcome;
use crate::store::{Store, StoreError, StoredRun, Tally};

/// Runs read at most for a probe's incidents and chart.
pub const MAX_RUNS: usize = 20_000;

/// One probe's figures over a window.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeStats {
    pub probe: String,
    #[serde(serialize_with = "secs")]
    pub window: Duration,
    pub runs: u64,
    pub ok: u64,
    /// Runs the schedule called for in the window.
    pub due: u64,
    /// `ok / max(due, runs)`, 0 to 1; `None` with nothing due.
    pub availability: Option<f64>,
    pub by_outcome: Vec<(Outcome, u64)>,
    #[serde(serialize_with = "ms_opt")]
    pub p50: Option<Duration>,
    #[serde(serialize_with = "ms_opt")]
    pub p95: Option<Duration>,
    #[serde(serialize_with = "ms_opt")]
    pub p99: Option<Duration>,
    pub incidents: Vec<Incident>,
}

/// A run of failed runs: from the first to the first good one after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub start: DateTime<Utc>,
    /// The first good run after it; `None` while it lasts.
    pub end: Option<DateTime<Utc>>,
    pub failed_runs: u64,
    /// The worst outcome in it.
    pub outcome: Outcome,
    /// The first failed run's reason.
    pub reason: Option<String>,
    pub correlation_id: String,
}

impl Incident {
    /// How long it lasted (until `now` while it lasts).
    pub fn duration(&self, now: DateTime<Utc>) -> Duration {
        (self.end.unwrap_or(now) - self.start)
            .to_std()
            .unwrap_or_default()
    }
}

/// `probe`'s figures over the `window` before `now`. `probe` may be `None`
/// for a name no longer configured (nothing is due then but what ran).
pub fn probe_stats(
    store: &Store,
    name: &str,
    probe: Option<&Probe>,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<ProbeStats, StoreError> {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let tally = store.tally(name, since)?;
    let runs = store.incident_runs(name, since, MAX_RUNS)?;
    Ok(from_parts(name, probe, window, now, &tally, &runs))
}

/// The figures from what the store gave.
pub fn from_parts(
    name: &str,
    probe: Option<&Probe>,
    window: Duration,
    now: DateTime<Utc>,
    tally: &Tally,
    runs: &[StoredRun],
) -> ProbeStats {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let ok = tally.ok();
    let due = match probe.filter(|p| p.enabled) {
        Some(p) => {
            // From the first run, if the probe is younger than the window.
            let from = tally.first.map_or(since, |first| first.max(since));
            let days = (now - from).to_std().unwrap_or_default().as_secs_f64() / 86_400.0;
            (p.schedule.runs_per_day() * days).floor() as u64
        }
        None => tally.runs,
    };
    let due = due.max(tally.runs);
    ProbeStats {
        probe: name.to_string(),
        window,
        runs: tally.runs,
        ok,
        due,
        availability: (due > 0).then(|| ok as f64 / due as f64),
        by_outcome: Outcome::ALL
            .iter()
            .filter_map(|o| tally.by_outcome.get(o).map(|n| (*o, *n)))
            .collect(),
        p50: tally.latency.percentile(50.0),
        p95: tally.latency.percentile(95.0),
        p99: tally.latency.percentile(99.0),
        incidents: incidents(runs),
    }
}

/// The incidents in `runs` (oldest first): each stretch of runs that did not
/// end ok, interrupted runs aside.
pub fn incidents(runs: &[StoredRun]) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    let mut open: Option<Incident> = None;
    for run in runs.iter().filter(|r| !r.interrupted) {
        match (run.outcome, &mut open) {
            (Outcome::Ok, None) => {}
            (Outcome::Ok, Some(_)) => {
                let mut done = open.take().expect("open incident");
                done.end = Some(run.started_at);
                out.push(done);
            }
            (bad, Some(incident)) => {
                incident.failed_runs += 1;
                if severity(bad) > severity(incident.outcome) {
                    incident.outcome = bad;
                }
            }
            (bad, None) => {
                open = Some(Incident {
                    start: run.started_at,
                    end: None,
                    failed_runs: 1,
                    outcome: bad,
                    reason: run.reason.clone(),
                    correlation_id: run.correlation_id.clone(),
                })
            }
        }
    }
    out.extend(open);
    out
}

/// Slow is the mildest failure; every other is as bad as the next.
fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ok => 0,
        Outcome::Slow => 1,
        _ => 2,
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3),
        None => s.serialize_none(),
    }
}

/// `report`: each configured probe's figures over `window` (and those of
/// probes the store still has).
pub fn report(
    store: &Store,
    config: &crate::config::Config,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<ProbeStats>, StoreError> {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut names: Vec<String> = config.probes.iter().map(|p| p.name.clone()).collect();
    for known in store.counted_probes(since)? {
        if !names.contains(&known) {
            names.push(known);
        }
    }
    names
        .iter()
        .map(|name| probe_stats(store, name, config.probe(name), window, now))
        .collect()
}

/// The SLA table as CSV: a row per probe.
pub fn render_csv(all: &[ProbeStats], now: DateTime<Utc>) -> String {
    let mut out = String::from(
        "probe,window_days,runs,due,ok,availability_pct,p50_ms,p95_ms,p99_ms,incidents,incident_minutes,longest_incident_minutes\n",
    );
    let ms =
        |d: Option<Duration>| d.map_or(String::new(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
    for s in all {
        let minutes: Vec<f64> = s
            .incidents
            .iter()
            .map(|i| i.duration(now).as_secs_f64() / 60.0)
            .collect();
        out.push_str(&format!(
            "{},{:.2},{},{},{},{},{},{},{},{},{:.1},{:.1}\n",
            super::history::csv(&s.probe),
            s.window.as_secs_f64() / 86_400.0,
            s.runs,
            s.due,
            s.ok,
            s.availability
                .map_or(String::new(), |a| format!("{:.3}", a * 100.0)),
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            s.incidents.len(),
            minutes.iter().sum::<f64>() + 0.0,
            minutes.iter().cloned().fold(0.0, f64::max),
        ));
    }
    out
}

/// The SLA table for a person.
pub fn render_human(all: &[ProbeStats], now: DateTime<Utc>) -> String {
    let w = all.iter().map(|s| s.probe.len()).max().unwrap_or(5).max(5);
    let dur = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), super::short_duration);
    let mut out = format!(
        "{:<w$}  {:>9}  {:>12}  {:>8}  {:>8}  {:>8}  incidents\n",
        "probe", "available", "ok / due", "p50", "p95", "p99"
    );
    for s in all {
        let minutes: f64 = s
            .incidents
            .iter()
            .map(|i| i.duration(now).as_secs_f64() / 60.0)
            .sum::<f64>()
            + 0.0;
        out.push_str(&format!(
            "{:<w$}  {:>9}  {:>12}  {:>8}  {:>8}  {:>8}  {} ({:.0} min)\n",
            s.probe,
            s.availability
                .map_or_else(|| "-".into(), |a| format!("{:.2}%", a * 100.0)),
            format!("{} / {}", s.ok, s.due),
            dur(s.p50),
            dur(s.p95),
            dur(s.p99),
            s.incidents.len(),
            minutes,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secs: i64, outcome: Outcome) -> StoredRun {
        StoredRun {
            probe: "p".into(),
            correlation_id: format!("r{secs}"),
            instance: "i".into(),
            started_at: DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap(),
            outcome,
            reason: (outcome != Outcome::Ok).then(|| format!("why {secs}")),
            code: None,
            latency: None,
            threshold: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            phases: Default::default(),
            message_id: None,
            attempts: 1,
            findings: vec![],
            interrupted: false,
        }
    }

    #[test]
    fn incidents_run_from_the_first_failure_to_the_first_good_run() {
        let runs = [
            run(0, Outcome::Ok),
            run(300, Outcome::Slow),
            run(600, Outcome::Lost),
            run(900, Outcome::Ok),
            run(1200, Outcome::Error),
        ];
        let found = incidents(&runs);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].failed_runs, 2);
        assert_eq!(found[0].outcome, Outcome::Lost, "the worst");
        assert_eq!(found[0].reason.as_deref(), Some("why 300"));
        assert_eq!(found[0].duration(found[0].start), Duration::from_secs(600));
        assert_eq!(found[1].end, None, "still open");
    }

    #[test]
    fn a_skipped_slot_counts_against_availability() {
        let config =
            crate::config::Config::load(std::path::Path::new("config.example.toml")).unwrap();
        let probe = &config.probes[0]; // every 5m
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let mut tally = Tally {
            first: Some(now - chrono::Duration::hours(2)),
            ..Tally::default()
        };
        // 12 runs an hour were due; 6 ran, all ok: the canary was down half the time.
        tally.runs = 12;
        tally.by_outcome.insert(Outcome::Ok, 12);
        let stats = from_parts(
            "p",
            Some(probe),
            Duration::from_secs(3600),
            now,
            &tally,
            &[],
        );
        assert_eq!((stats.due, stats.ok), (12, 12));
        assert_eq!(stats.availability, Some(1.0));
        tally.runs = 6;
        tally.by_outcome.insert(Outcome::Ok, 6);
        let stats = from_parts(
            "p",
            Some(probe),
            Duration::from_secs(3600),
            now,
            &tally,
            &[],
        );
        assert_eq!(stats.availability, Some(0.5));
    }
}
