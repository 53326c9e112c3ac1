//! Recorded runs and per-probe alert state: writing a run together with
//! everything it caused, and the queries `history`, the alert notices and the
//! cost guard ask of them.

use chrono::{DateTime, Utc};
use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::error::Failure;
use super::{
    OutboxItem, Percentiles, Store, StoreError, StoredRun, count, decode, duration, duration_ms,
    encode, millis, opt_duration, small, sql_limit, timestamp,
};
use crate::alert::AlertState;
use crate::probe::{Outcome, Phases, RunResult};

/// The columns [`raw_run`] reads, in its order.
pub(super) const RUN_COLUMNS: &str =
    "probe, correlation_id, instance, started_at, outcome, reason, code,
    latency_ms, threshold_ms, timeout_ms, submit_ms, sent_ms, delivered_ms, received_ms,
    message_id, attempts, findings, interrupted";

impl Store {
    /// Records a run, the probe's new alert state and the notifications it
    /// caused, in one transaction: after a crash either all of them are
    /// stored or none. Idempotent on the correlation id: recording the same
    /// run again changes nothing and returns `Ok(false)`.
    pub fn record_run(
        &self,
        run: &RunResult,
        instance: &str,
        interrupted: bool,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with("record run", |conn| {
            let findings = encode("findings", &run.findings)?;
            let state = encode("alert state", state)?;
            let payloads = outbox
                .iter()
                .map(|item| encode("notification", &item.notification))
                .collect::<Result<Vec<_>, _>>()?;
            // IMMEDIATE takes the write lock up front, so the busy timeout
            // applies; a deferred transaction upgrading later could fail at
            // once with SQLITE_BUSY when another process wrote in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome, reason,
                     code, latency_ms, threshold_ms, timeout_ms, submit_ms, sent_ms,
                     delivered_ms, received_ms, message_id, attempts, findings, interrupted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18)
                 ON CONFLICT (correlation_id) DO NOTHING",
                params![
                    run.probe,
                    run.correlation_id,
                    instance,
                    millis(run.started_at),
                    run.outcome.as_str(),
                    run.reason,
                    run.code,
                    run.latency.map(duration_ms),
                    duration_ms(run.threshold),
                    duration_ms(run.timeout),
                    run.phases.submit.map(duration_ms),
                    run.phases.sent.map(duration_ms),
                    run.phases.delivered.map(duration_ms),
                    run.phases.received.map(duration_ms),
                    run.message_id,
                    i64::from(run.attempts),
                    findings,
                    interrupted,
                ],
            )?;
            // Written ahead before its message was sent; recorded now.
            tx.execute(
                "DELETE FROM started_runs WHERE correlation_id = ?1",
                [&run.correlation_id],
            )?;
            if inserted == 0 {
                // Already recorded (a retry after an unclear failure): the
                // state and notices were stored with it the first time.
                tx.commit()?;
                return Ok(false);
            }
            super::rollups::count_run(&tx, run, interrupted)?;
            tx.execute(
                "INSERT INTO alert_state (probe, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (probe) DO UPDATE
                 SET state = excluded.state, updated_at = excluded.updated_at",
                params![run.probe, state, millis(now)],
            )?;
            insert_outbox(&tx, outbox, &payloads, Some(&run.correlation_id), now)?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Stores an alert state that changed without a run of its own (the
    /// canary's own alerts, a silence that ended, a probe removed from the
    /// config), with the notifications it caused, in one transaction.
    pub fn record_alert(
        &self,
        key: &str,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("record alert state", |conn| {
            let state = encode("alert state", state)?;
            let payloads = outbox
                .iter()
                .map(|item| encode("notification", &item.notification))
                .collect::<Result<Vec<_>, _>>()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO alert_state (probe, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (probe) DO UPDATE
                 SET state = excluded.state, updated_at = excluded.updated_at",
                params![key, state, millis(now)],
            )?;
            insert_outbox(&tx, outbox, &payloads, None, now)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// A probe's alert state; the default (nothing counted, not firing) for
    /// a probe never recorded.
    pub fn alert_state(&self, probe: &str) -> Result<AlertState, StoreError> {
        self.with("read alert state", |conn| {
            let json: Option<String> = conn
                .query_row(
                    "SELECT state FROM alert_state WHERE probe = ?1",
                    [probe],
                    |row| row.get(0),
                )
                .optional()?;
            match json {
                Some(json) => decode(&format!("alert state of {probe}"), &json),
                None => Ok(AlertState::default()),
            }
        })
    }

    /// Every probe's alert state, by probe name: what the daemon re-evaluates on start.
    pub fn alert_states(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        self.with("read alert states", |conn| read_alert_states(conn, "TRUE"))
    }

    /// The alert states that may need telling without a run: firing, or
    /// holding a notice a silence held back.
    pub fn alert_states_to_reconcile(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        self.with("read alert states", |conn| {
            read_alert_states(
                conn,
                "json_extract(state, '$.firing') IS NOT NULL
                 OR json_extract(state, '$.withheld') IS NOT NULL",
            )
        })
    }

    /// The latest runs, newest first, of one probe or of all.
    pub fn recent_runs(
        &self,
        probe: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read recent runs", |conn| {
            let mut args: Vec<&dyn ToSql> = Vec::new();
            let filter = probe_filter(&probe, &mut args, "WHERE");
            let limit = sql_limit(limit);
            args.push(&limit);
            let mut stmt = conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs {filter}
                 ORDER BY started_at DESC, id DESC LIMIT ?{}",
                args.len()
            ))?;
            let raws = stmt
                .query_map(&args[..], raw_run)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawRun::decode).collect()
        })
    }

    /// A probe's runs started since `since`, oldest first, at most `limit`
    /// (the newest of them when there are more): what incidents are read from
    /// and the status page charts.
    pub fn runs_since(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read runs", |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT * FROM (SELECT {RUN_COLUMNS} FROM runs WHERE probe = ?1 AND started_at >= ?2
                 ORDER BY started_at DESC, id DESC LIMIT ?3) ORDER BY started_at, correlation_id"
            ))?;
            let raws = stmt
                .query_map(params![probe, millis(since), sql_limit(limit)], raw_run)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawRun::decode).collect()
        })
    }

    /// The runs an incident list is made of, oldest first: every run since
    /// `since` that did not end ok and every ok run that ends such a stretch,
    /// interrupted runs aside, at most `limit` failed runs (the newest). The
    /// failed runs are found through their own index, and each one's next run
    /// through the probe's, so a probe that is mostly well reads a handful of
    /// rows, not every run of the window.
    pub fn incident_runs(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read incident runs", |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "WITH failed AS (
                    SELECT id, started_at FROM runs
                    WHERE probe = ?1 AND started_at >= ?2 AND outcome != 'ok' AND interrupted = 0
                    ORDER BY started_at DESC, id DESC LIMIT ?3
                 ), next AS (
                    SELECT (SELECT n.id FROM runs n
                            WHERE n.probe = ?1 AND n.started_at > f.started_at AND n.interrupted = 0
                            ORDER BY n.started_at, n.id LIMIT 1) AS id
                    FROM failed f
                 )
                 SELECT {RUN_COLUMNS} FROM runs
                 WHERE id IN (SELECT id FROM failed UNION SELECT id FROM next WHERE id IS NOT NULL)
                 ORDER BY started_at, correlation_id"
            ))?;
            let raws = stmt
                .query_map(params![probe, millis(since), sql_limit(limit)], raw_run)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawRun::decode).collect()
        })
    }

    /// The correlation ids of a probe's latest runs, newest first: what an
    /// alert notice lists so the failure can be traced through every system.
    pub fn recent_correlation_ids(
        &self,
        probe: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.with("read recent correlation ids", |conn| {
            let mut stmt = conn.prepare(
                "SELECT correlation_id FROM runs WHERE probe = ?1
                 ORDER BY started_at DESC, id DESC LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![probe, sql_limit(limit)], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
    }

    /// Whether each of `probes`' latest recorded run was `ok` (`false`
    /// without one): the `probe_up` a daemon starts from.
    pub fn last_ok_flags(&self, probes: &[String]) -> Result<Vec<(String, bool)>, StoreError> {
        self.with("read the last outcomes", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT outcome = 'ok' FROM runs WHERE probe = ?1
                 ORDER BY started_at DESC, id DESC LIMIT 1",
            )?;
            probes
                .iter()
                .map(|p| {
                    let ok: Option<bool> = stmt.query_row([p], |row| row.get(0)).optional()?;
                    Ok((p.clone(), ok.unwrap_or(false)))
                })
                .collect()
        })
    }

    /// The probes with runs started since `since`, by name.
    pub fn probes_run_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.with("read the probes that ran", |conn| {
            let mut stmt = conn
                .prepare("SELECT DISTINCT probe FROM runs WHERE started_at >= ?1 ORDER BY probe")?;
            let probes = stmt
                .query_map([millis(since)], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(probes)
        })
    }

    /// When the probe's last `ok` run started, and its correlation id.
    pub fn last_ok_run(&self, probe: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        self.with("read the last good run", |conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT started_at, correlation_id FROM runs
                     WHERE probe = ?1 AND outcome = 'ok'
                     ORDER BY started_at DESC, id DESC LIMIT 1",
                    [probe],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            row.map(|(at, id)| Ok((timestamp(at)?, id))).transpose()
        })
    }

    /// How many runs ended with each outcome since `since`, of one probe or
    /// of all; outcomes with no runs are left out, the rest come in
    /// [`Outcome::ALL`] order.
    pub fn outcome_counts(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Outcome, u64)>, StoreError> {
        self.with("count outcomes", |conn| {
            let since = millis(since);
            let mut args: Vec<&dyn ToSql> = vec![&since];
            let filter = probe_filter(&probe, &mut args, "AND");
            let mut stmt = conn.prepare(&format!(
                "SELECT outcome, COUNT(*) FROM runs WHERE started_at >= ?1 {filter}
                 GROUP BY outcome"
            ))?;
            let rows = stmt.query_map(&args[..], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut counts = Vec::new();
            for row in rows {
                let (outcome, n) = row?;
                counts.push((parse_outcome(&outcome)?, count(n)?));
            }
            counts.sort_by_key(|(o, _)| Outcome::ALL.iter().position(|a| a == o));
            Ok(counts)
        })
    }

    /// Nearest-rank p50/p95/p99 of the end-to-end latency of the runs that
    /// arrived (`ok` or `slow`) since `since`; `None` when none did.
    pub fn latency_percentiles(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<Percentiles>, StoreError> {
        self.with("compute latency percentiles", |conn| {
            let since = millis(since);
            let mut args: Vec<&dyn ToSql> = vec![&since];
            let filter = probe_filter(&probe, &mut args, "AND");
            let mut stmt = conn.prepare(&format!(
                "SELECT latency_ms FROM runs
                 WHERE started_at >= ?1 AND outcome IN ('ok', 'slow') AND latency_ms IS NOT NULL
                 {filter}
                 ORDER BY latency_ms"
            ))?;
            let sorted = stmt
                .query_map(&args[..], |row| row.get::<_, f64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            nearest_rank(&sorted)
        })
    }
}

/// Nearest-rank p50/p95/p99 of latencies in ms, sorted ascending; `None`
/// for none.
pub(super) fn nearest_rank(sorted: &[f64]) -> Result<Option<Percentiles>, Failure> {
    if sorted.is_empty() {
        return Ok(None);
    }
    let n = sorted.len();
    // Nearest rank: the smallest value with at least p% of the set at or below it.
    let rank = |p: usize| duration(sorted[(p * n).div_ceil(100).max(1) - 1]);
    Ok(Some(Percentiles {
        count: n as u64,
        p50: rank(50)?,
        p95: rank(95)?,
        p99: rank(99)?,
    }))
}

/// Adds `<joiner> probe = ?N` when filtering by probe. A separate SQL text
/// per case (rather than `?N IS NULL OR probe = ?N`) lets SQLite use the
/// (probe, started_at) index.
fn probe_filter<'a>(
    probe: &'a Option<&'a str>,
    args: &mut Vec<&'a dyn ToSql>,
    joiner: &str,
) -> String {
    match probe {
        Some(probe) => {
            args.push(probe);
            format!("{joiner} probe = ?{}", args.len())
        }
        None => String::new(),
    }
}

pub(super) fn parse_outcome(s: &str) -> Result<Outcome, Failure> {
    Outcome::parse(s).ok_or_else(|| Failure::corrupt(format!("unknown outcome {s:?}")))
}

/// A `runs` row as SQLite types, decoded outside the row callback so that a
/// bad value becomes a [`Failure::Corrupt`] naming it.
pub(super) struct RawRun {
    pub(super) probe: String,
    pub(super) correlation_id: String,
    pub(super) instance: String,
    pub(super) started_at: i64,
    pub(super) outcome: String,
    pub(super) reason: Option<String>,
    pub(super) code: Option<String>,
    pub(super) latency_ms: Option<f64>,
    pub(super) threshold_ms: f64,
    pub(super) timeout_ms: f64,
    pub(super) submit_ms: Option<f64>,
    pub(super) sent_ms: Option<f64>,
    pub(super) delivered_ms: Option<f64>,
    pub(super) received_ms: Option<f64>,
    pub(super) message_id: Option<String>,
    pub(super) attempts: i64,
    pub(super) findings: String,
    pub(super) interrupted: bool,
}

/// The alert states `filter` (an SQL condition) picks, by probe name.
fn read_alert_states(
    conn: &rusqlite::Connection,
    filter: &str,
) -> Result<Vec<(String, AlertState)>, Failure> {
    let mut stmt = conn.prepare(&format!(
        "SELECT probe, state FROM alert_state WHERE {filter} ORDER BY probe"
    ))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut states = Vec::new();
    for row in rows {
        let (probe, json) = row?;
        let state = decode(&format!("alert state of {probe}"), &json)?;
        states.push((probe, state));
    }
    Ok(states)
}

/// Queues `outbox` (each item with its encoded payload) in `tx`.
pub(super) fn insert_outbox(
    tx: &rusqlite::Transaction<'_>,
    outbox: &[OutboxItem],
    payloads: &[String],
    correlation_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO outbox (notification_id, channel, probe, correlation_id, payload,
             created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?;
    for (item, payload) in outbox.iter().zip(payloads) {
        insert.execute(params![
            item.notification.id,
            item.channel,
            item.notification.probe,
            correlation_id,
            payload,
            millis(now),
        ])?;
    }
    Ok(())
}

fn raw_run(row: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        probe: row.get(0)?,
        correlation_id: row.get(1)?,
        instance: row.get(2)?,
        started_at: row.get(3)?,
        outcome: row.get(4)?,
        reason: row.get(5)?,
        code: row.get(6)?,
        latency_ms: row.get(7)?,
        threshold_ms: row.get(8)?,
        timeout_ms: row.get(9)?,
        submit_ms: row.get(10)?,
        sent_ms: row.get(11)?,
        delivered_ms: row.get(12)?,
        received_ms: row.get(13)?,
        message_id: row.get(14)?,
        attempts: row.get(15)?,
        findings: row.get(16)?,
        interrupted: row.get(17)?,
    })
}

impl RawRun {
    pub(super) fn decode(self) -> Result<StoredRun, Failure> {
        let context = format!("run {}", self.correlation_id);
        self.decode_fields().map_err(|e| e.context(&context))
    }

    fn decode_fields(self) -> Result<StoredRun, Failure> {
        Ok(StoredRun {
            probe: self.probe,
            correlation_id: self.correlation_id,
            instance: self.instance,
            started_at: timestamp(self.started_at)?,
            outcome: parse_outcome(&self.outcome)?,
            reason: self.reason,
            code: self.code,
            latency: opt_duration(self.latency_ms)?,
            threshold: duration(self.threshold_ms)?,
            timeout: duration(self.timeout_ms)?,
            phases: Phases {
                submit: opt_duration(self.submit_ms)?,
                sent: opt_duration(self.sent_ms)?,
                delivered: opt_duration(self.delivered_ms)?,
                received: opt_duration(self.received_ms)?,
            },
            message_id: self.message_id,
            attempts: small(self.attempts, "attempts")?,
            findings: decode("findings", &self.findings)?,
            interrupted: self.interrupted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_corrupt_row_is_an_error_not_a_panic() {
        let (_dir, store) = store();
        let r = run("a", "bad", t(0), Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(0))
            .unwrap();
        store
            .with("test", |conn| {
                conn.execute("UPDATE runs SET outcome = 'exploded'", [])?;
                conn.execute(
                    "INSERT INTO alert_state (probe, state, updated_at) VALUES ('b', '{', 0)",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        let err = store.recent_runs(None, 1).unwrap_err().to_string();
        assert!(err.contains("run bad") && err.contains("exploded"), "{err}");
        assert!(matches!(
            store.outcome_counts(None, t(0)),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.alert_state("b"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.alert_states(),
            Err(StoreError::Corrupt { .. })
        ));
    }
    #[test]
    fn incident_runs_are_the_failed_runs_and_the_runs_that_end_them() {
        use crate::report::stats::incidents;
        let (_dir, store) = store();
        let pattern = [
            Outcome::Ok,
            Outcome::Slow,
            Outcome::Lost,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Lost, // interrupted: says nothing about the pipeline
            Outcome::Ok,
            Outcome::Error,
            Outcome::Ok,
            Outcome::Ok,
            Outcome::Rejected,
        ];
        for (i, outcome) in pattern.iter().enumerate() {
            let r = run("p", &format!("{i:02}"), t(i as i64 * 60), *outcome);
            let state = AlertState::default();
            store
                .record_run(&r, "eu-1", i == 5, &state, &[], t(i as i64 * 60))
                .unwrap();
        }
        store
            .record_run(
                &run("q", "q0", t(30), Outcome::Lost),
                "eu-1",
                false,
                &AlertState::default(),
                &[],
                t(30),
            )
            .unwrap();
        let read = store.incident_runs("p", t(0), 100).unwrap();
        let ids: Vec<&str> = read.iter().map(|r| r.correlation_id.as_str()).collect();
        assert_eq!(ids, ["01", "02", "03", "07", "08", "10"]);
        // The same incidents as from every run.
        let all = store.runs_since("p", t(0), 100).unwrap();
        assert_eq!(incidents(&read), incidents(&all));
        // The limit keeps the newest failed runs, with the runs that end them.
        let newest = store.incident_runs("p", t(0), 2).unwrap();
        let ids: Vec<&str> = newest.iter().map(|r| r.correlation_id.as_str()).collect();
        assert_eq!(ids, ["07", "08", "10"]);
        // The failed runs are found through their own index, not by a scan.
        let plan: Vec<String> = store
            .with("plan", |conn| {
                let mut stmt = conn.prepare(
                    "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE probe = 'p' AND started_at >= 0
                     AND outcome != 'ok' AND interrupted = 0",
                )?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .unwrap();
        assert!(plan.iter().any(|l| l.contains("runs_failed")), "{plan:?}");
        // The window starts where it says.
        let late = store.incident_runs("p", t(7 * 60), 100).unwrap();
        let ids: Vec<&str> = late.iter().map(|r| r.correlation_id.as_str()).collect();
        assert_eq!(ids, ["07", "08", "10"]);
    }
}
