//! Hourly rollups and retention: what keeps the store from growing forever
//! while long windows stay fast.
//!
//! Every recorded run is also counted, in the same transaction, into its
//! probe's row for the hour it started, and into its row for the (UTC) day:
//! runs by outcome, and the latency of the arrivals (and of each phase) as a
//! histogram on a log scale fine enough for percentiles within a few
//! percent. Windowed figures (`history`, the status page, the SLA report)
//! read the hours up to the first whole day and the days after it, so a year
//! costs under 400 rows a probe, not a hundred thousand runs; the charts read
//! the hours. Raw runs are kept for `retention` (the list of recent runs and
//! the incidents come from them) and pruned in small batches; rollups are
//! kept for `rollup_retention`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::error::Failure;
use super::{Store, StoreError, decode, encode, millis, timestamp};
use crate::probe::{Outcome, RunResult};

/// Histogram buckets a decade: bucket `i` holds latencies up to
/// `10^(i / BUCKETS_PER_DECADE)` ms, so an estimate is within 6%.
const BUCKETS_PER_DECADE: f64 = 20.0;

/// Runs pruned per transaction: a batch holds the write lock for a
/// millisecond or two, so runs that start meanwhile barely wait.
pub const PRUNE_BATCH: usize = 200;

/// The bucket of a latency of `ms` milliseconds.
fn bucket(ms: f64) -> i32 {
    if ms <= 1.0 {
        0
    } else {
        (ms.log10() * BUCKETS_PER_DECADE).ceil() as i32
    }
}

/// The latency a bucket stands for: the geometric middle of its bounds,
/// within 6% of every latency in it.
fn bucket_ms(bucket: i32) -> f64 {
    10f64.powf((f64::from(bucket) - 0.5) / BUCKETS_PER_DECADE)
}

/// Latencies counted by bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram(pub BTreeMap<i32, u64>);

impl Histogram {
    pub fn add(&mut self, d: Duration) {
        *self.0.entry(bucket(d.as_secs_f64() * 1e3)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The nearest-rank `p`th percentile (0–100), as its bucket's middle.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, count) in &self.0 {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_secs_f64(bucket_ms(*b) / 1e3));
            }
        }
        None
    }
}

/// One probe's runs over some hours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub runs: u64,
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Runs cut off by a crash or a shutdown (counted in `runs` too).
    pub interrupted: u64,
    /// End-to-end latency of the arrivals (`ok` and `slow`).
    pub latency: Histogram,
    /// The first hour with a run, if any.
    pub first: Option<DateTime<Utc>>,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.by_outcome.get(&Outcome::Ok).copied().unwrap_or(0)
    }
}

/// One probe-hour or probe-day, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Row {
    /// When its first run started (unix ms): a probe younger than a window
    /// is due from there, not from the start of its first day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<i64>,
    #[serde(default)]
    outcomes: BTreeMap<String, u64>,
    #[serde(default)]
    interrupted: u64,
    #[serde(default)]
    latency: Histogram,
    #[serde(default)]
    phases: BTreeMap<String, Histogram>,
}

impl Row {
    fn merge(&mut self, other: Row) {
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (o, n) in other.outcomes {
            *self.outcomes.entry(o).or_default() += n;
        }
        self.interrupted += other.interrupted;
        self.latency.merge(&other.latency);
        for (phase, h) in other.phases {
            self.phases.entry(phase).or_default().merge(&h);
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The start of the hour `t` falls in, in unix milliseconds.
pub(super) fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// The start of the UTC day `t` falls in, in unix milliseconds.
fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// The two grains rollups are kept at: the table and its key column.
#[derive(Clone, Copy)]
pub(super) enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub(super) fn table(self) -> &'static str {
        match self {
            Grain::Hour => "rollups",
            Grain::Day => "daily_rollups",
        }
    }

    pub(super) fn key(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }

    pub(super) fn of(self, ms: i64) -> i64 {
        match self {
            Grain::Hour => hour_of(ms),
            Grain::Day => day_of(ms),
        }
    }
}

/// Counts one run into its probe-hour and probe-day, inside the transaction
/// recording it.
pub(super) fn count_run(
    tx: &Transaction<'_>,
    run: &RunResult,
    interrupted: bool,
) -> Result<(), Failure> {
    let row = run_row(run, interrupted);
    for grain in [Grain::Hour, Grain::Day] {
        let (table, key) = (grain.table(), grain.key());
        let at = grain.of(millis(run.started_at));
        let stored = tx
            .prepare_cached(&format!(
                "SELECT tally FROM {table} WHERE probe = ?1 AND {key} = ?2"
            ))?
            .query_row(params![run.probe, at], |r| r.get::<_, String>(0))
            .optional()?;
        tx.prepare_cached(&format!(
            "INSERT INTO {table} (probe, {key}, tally) VALUES (?1, ?2, ?3)
             ON CONFLICT (probe, {key}) DO UPDATE SET tally = excluded.tally"
        ))?
        .execute(params![run.probe, at, merged(stored.as_deref(), &row)?])?;
    }
    Ok(())
}

/// One run's contribution to the tallies of its hour and day.
pub(super) fn run_row(run: &RunResult, interrupted: bool) -> Row {
    let mut row = Row {
        first: Some(millis(run.started_at)),
        ..Row::default()
    };
    *row.outcomes
        .entry(run.outcome.as_str().to_string())
        .or_default() += 1;
    if interrupted {
        row.interrupted += 1;
    }
    if matches!(run.outcome, Outcome::Ok | Outcome::Slow)
        && let Some(latency) = run.latency
    {
        row.latency.add(latency);
    }
    for (phase, d) in run.phases.named() {
        if let Some(d) = d {
            row.phases.entry(phase.to_string()).or_default().add(d);
        }
    }
    row
}

/// A stored tally (`None`: none yet) with `row` added, encoded for storage.
pub(super) fn merged(stored: Option<&str>, row: &Row) -> Result<String, Failure> {
    let mut stored: Row = match stored {
        Some(json) => decode("rollup", json)?,
        None => Row::default(),
    };
    stored.merge(row.clone());
    encode("rollup", &stored)
}

/// Adds the hourly rollups already stored up into days (a store from before
/// daily rollups existed).
pub(super) fn backfill_days(tx: &Transaction<'_>) -> Result<(), Failure> {
    let hours: Vec<(String, i64, String)> = {
        let mut stmt = tx.prepare("SELECT probe, hour, tally FROM rollups")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut days: BTreeMap<(String, i64), Row> = BTreeMap::new();
    for (probe, hour, json) in hours {
        let mut row: Row = decode("rollup", &json)?;
        row.first.get_or_insert(hour);
        days.entry((probe, day_of(hour))).or_default().merge(row);
    }
    for ((probe, day), row) in days {
        tx.execute(
            "INSERT INTO daily_rollups (probe, day, tally) VALUES (?1, ?2, ?3)",
            params![probe, day, encode("rollup", &row)?],
        )?;
    }
    Ok(())
}

/// Counts every run already stored (a store from before rollups existed).
pub(super) fn backfill(tx: &Transaction<'_>) -> Result<(), Failure> {
    /// probe, started_at, outcome, latency_ms, the phases' ms, interrupted.
    type Stored = (String, i64, String, Option<f64>, [Option<f64>; 4], bool);
    let runs: Vec<Stored> = {
        let mut stmt = tx.prepare(
            "SELECT probe, started_at, outcome, latency_ms, submit_ms, sent_ms, delivered_ms,
                 received_ms, interrupted FROM runs",
        )?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                r.get(8)?,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut rows: BTreeMap<(String, i64), Row> = BTreeMap::new();
    for (probe, started, outcome, latency, phases, interrupted) in runs {
        let row = rows.entry((probe, hour_of(started))).or_default();
        row.first = Some(row.first.map_or(started, |f| f.min(started)));
        *row.outcomes.entry(outcome.clone()).or_default() += 1;
        row.interrupted += u64::from(interrupted);
        if (outcome == "ok" || outcome == "slow")
            && let Some(ms) = latency
        {
            row.latency.add(Duration::from_secs_f64(ms.max(0.0) / 1e3));
        }
        for (name, ms) in ["submit", "sent", "delivered", "received"]
            .iter()
            .zip(phases)
        {
            if let Some(ms) = ms {
                row.phases
                    .entry((*name).to_string())
                    .or_default()
                    .add(Duration::from_secs_f64(ms.max(0.0) / 1e3));
            }
        }
    }
    for ((probe, hour), row) in rows {
        tx.execute(
            "INSERT INTO rollups (probe, hour, tally) VALUES (?1, ?2, ?3)",
            params![probe, hour, encode("rollup", &row)?],
        )?;
    }
    Ok(())
}

/// What one pass of [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub rollups: u64,
    pub notifications: u64,
}

impl Pruned {
    pub fn is_empty(&self) -> bool {
        self.runs + self.rollups + self.notifications == 0
    }
}

impl Store {
    /// One probe's tally over the hours from the one `since` falls in
    /// (figures are to the hour) to now.
    pub fn tally(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.with("read rollups", |conn| {
            let mut t = Tally::default();
            for (at, json) in window_rows(conn, probe, since)? {
                t.merge(&row_tally(at, &json)?);
            }
            Ok(t)
        })
    }

    /// [`Store::tally`] without the latency histograms: the runs and their
    /// outcomes only, for availability over long windows, where decoding
    /// every row's histograms would cost the most and tell nothing.
    pub fn counts(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.with("read rollups", |conn| {
            let mut t = Tally::default();
            for (at, json) in window_rows(conn, probe, since)? {
                t.merge(&counts_tally(at, &json)?);
            }
            Ok(t)
        })
    }

    /// One probe's hours since `since`, each with its own tally, oldest
    /// first: the status page's long charts.
    pub fn hourly(
        &self,
        probe: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Tally)>, StoreError> {
        self.with("read rollups", |conn| {
            rows(conn, Grain::Hour, probe, hour_of(millis(since)), i64::MAX)?
                .into_iter()
                .map(|(hour, json)| Ok((timestamp(hour)?, row_tally(hour, &json)?)))
                .collect()
        })
    }

    /// The probes with a run counted since `since` (to the hour), by name.
    pub fn counted_probes(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.with("read rollups", |conn| {
            let (from, days_from) = split(since);
            let mut stmt = conn.prepare_cached(
                "SELECT probe FROM rollups WHERE hour >= ?1 AND hour < ?2
                 UNION SELECT probe FROM daily_rollups WHERE day >= ?2 ORDER BY probe",
            )?;
            let names = stmt
                .query_map(params![from, days_from], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(names)
        })
    }

    /// Deletes, in one small transaction, up to [`PRUNE_BATCH`] raw runs
    /// started before `runs_before` (their rollups stay) and the rollups
    /// before `rollups_before`. Kept whatever their age: runs whose
    /// notifications are not delivered (pending or dead letters), and the
    /// runs of a probe whose alert fires. Call until it prunes nothing.
    pub fn prune(
        &self,
        runs_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        self.with("prune old runs", |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let cutoff = millis(runs_before);
            // The runs that go: old, of no firing alert (its resolve threads
            // under the message its first notice got), with no notice still
            // to deliver. Their delivered notices go first (they reference
            // the runs), so the same batch takes both.
            const PRUNABLE: &str = "started_at < ?1
                AND probe NOT IN (
                    SELECT probe FROM alert_state WHERE json_extract(state, '$.firing') IS NOT NULL)
                AND correlation_id NOT IN (
                    SELECT correlation_id FROM outbox
                    WHERE delivered_at IS NULL AND correlation_id IS NOT NULL)";
            let notifications = tx.execute(
                &format!(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND correlation_id IN (
                         SELECT correlation_id FROM runs WHERE {PRUNABLE}
                         ORDER BY started_at LIMIT ?2)"
                ),
                params![cutoff, super::sql_limit(PRUNE_BATCH)],
            )? as u64;
            let runs = tx.execute(
                &format!(
                    "DELETE FROM runs WHERE id IN (
                         SELECT id FROM runs WHERE {PRUNABLE}
                           AND correlation_id NOT IN (
                               SELECT correlation_id FROM outbox WHERE correlation_id IS NOT NULL)
                         ORDER BY started_at LIMIT ?2)"
                ),
                params![cutoff, super::sql_limit(PRUNE_BATCH)],
            )? as u64;
            let mut rollups = 0;
            for grain in [Grain::Hour, Grain::Day] {
                let (table, key) = (grain.table(), grain.key());
                rollups += tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE rowid IN (
                             SELECT rowid FROM {table} WHERE {key} < ?1 LIMIT ?2)"
                    ),
                    params![
                        grain.of(millis(rollups_before)),
                        super::sql_limit(PRUNE_BATCH)
                    ],
                )? as u64;
            }
            tx.commit()?;
            Ok(Pruned {
                runs,
                rollups,
                notifications,
            })
        })
    }

    /// The database file's size with its write-ahead log, in bytes.
    pub fn size_bytes(&self) -> u64 {
        let wal = self.path().with_extension("db-wal");
        [self.path().to_path_buf(), wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Where a window from `since` reads hours and where days: the hour `since`
/// falls in, and the first whole day from there.
pub(super) fn split(since: DateTime<Utc>) -> (i64, i64) {
    let from = hour_of(millis(since));
    let day = day_of(from);
    (from, if day == from { from } else { day + DAY_MS })
}

/// A probe's rollup rows of one grain from `from` to before `to`, oldest
/// first: (start, tally JSON).
fn rows(
    conn: &Connection,
    grain: Grain,
    probe: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, String)>, Failure> {
    let (table, key) = (grain.table(), grain.key());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {key}, tally FROM {table} WHERE probe = ?1 AND {key} >= ?2 AND {key} < ?3 \
         ORDER BY {key}"
    ))?;
    let rows = stmt
        .query_map(params![probe, from, to], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The rows that make up a window from `since` to now: its hours up to the
/// first whole day, then the days.
fn window_rows(
    conn: &Connection,
    probe: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, Failure> {
    let (from, days_from) = split(since);
    let mut all = rows(conn, Grain::Hour, probe, from, days_from)?;
    all.extend(rows(conn, Grain::Day, probe, days_from, i64::MAX)?);
    Ok(all)
}

/// What a tally reads of a stored row: its counts and, unless skipped, the
/// end-to-end latency. The phases' histograms are passed over unparsed:
/// nothing reports them over a window, and over a year they would be four
/// fifths of the decoding.
#[derive(Deserialize)]
struct Figures<L> {
    #[serde(default)]
    first: Option<i64>,
    #[serde(default)]
    outcomes: BTreeMap<String, u64>,
    #[serde(default)]
    interrupted: u64,
    #[serde(default)]
    latency: L,
}

/// One stored row (an hour or a day, starting at `start`) as a tally of its
/// counts alone, its histograms left unread.
pub(super) fn counts_tally(start: i64, json: &str) -> Result<Tally, Failure> {
    let row: Figures<serde::de::IgnoredAny> = decode("rollup", json)?;
    tally_of(
        start,
        row.first,
        &row.outcomes,
        row.interrupted,
        Histogram::default(),
    )
}

/// One stored row as a tally with its latency.
pub(super) fn row_tally(start: i64, json: &str) -> Result<Tally, Failure> {
    let row: Figures<Histogram> = decode("rollup", json)?;
    tally_of(
        start,
        row.first,
        &row.outcomes,
        row.interrupted,
        row.latency,
    )
}

fn tally_of(
    start: i64,
    first: Option<i64>,
    outcomes: &BTreeMap<String, u64>,
    interrupted: u64,
    latency: Histogram,
) -> Result<Tally, Failure> {
    let mut t = Tally {
        first: Some(timestamp(first.unwrap_or(start))?),
        interrupted,
        latency,
        ..Tally::default()
    };
    for (outcome, n) in outcomes {
        let outcome = Outcome::ALL
            .iter()
            .find(|o| o.as_str() == outcome)
            .copied()
            .ok_or_else(|| Failure::corrupt(format!("rollup outcome `{outcome}`")))?;
        *t.by_outcome.entry(outcome).or_default() += n;
        t.runs += n;
    }
    Ok(t)
}

impl Tally {
    /// Adds `other`'s runs to these.
    pub(super) fn merge(&mut self, other: &Tally) {
        self.runs += other.runs;
        self.interrupted += other.interrupted;
        for (o, n) in &other.by_outcome {
            *self.by_outcome.entry(*o).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_buckets_are_within_six_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.add(Duration::from_millis(ms * 10));
        }
        for (p, exact) in [(50.0, 5000.0), (95.0, 9500.0), (99.0, 9900.0)] {
            let got = h.percentile(p).unwrap().as_secs_f64() * 1e3;
            assert!(
                (got / exact - 1.0).abs() <= 0.06,
                "p{p}: {got} ms for {exact}"
            );
        }
        assert_eq!(Histogram::default().percentile(50.0), None);
    }
}
