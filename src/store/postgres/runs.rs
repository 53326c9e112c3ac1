//! Recorded runs, alert state and the history read from them, on
//! PostgreSQL: the same rows and answers as the SQLite store's `runs`, with
//! the decoding shared. Recording a run is one transaction, as there.

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use postgres::{Row, Transaction};

use super::{PgFailure, PgStore};
use crate::alert::AlertState;
use crate::probe::{Outcome, RunResult};
use crate::store::rollups::{self, Grain};
use crate::store::runs::{RUN_COLUMNS, RawRun, nearest_rank, parse_outcome};
use crate::store::{
    OutboxItem, Percentiles, StoreError, StoredRun, count, decode, duration_ms, encode, millis,
    sql_limit, timestamp,
};

type Param<'a> = &'a (dyn ToSql + Sync);

/// The alert states worth telling without a run: firing, or holding a
/// notice a silence held back.
const TO_RECONCILE: &str =
    "(state::jsonb ->> 'firing') IS NOT NULL OR (state::jsonb ->> 'withheld') IS NOT NULL";

impl PgStore {
    pub(super) fn pg_record_run(
        &self,
        run: &RunResult,
        instance: &str,
        interrupted: bool,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with("record run", |client| {
            let findings = encode("findings", &run.findings)?;
            let state = encode("alert state", state)?;
            let payloads = payloads(outbox)?;
            let mut tx = client.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome, reason,
                     code, latency_ms, threshold_ms, timeout_ms, submit_ms, sent_ms,
                     delivered_ms, received_ms, message_id, attempts, findings, interrupted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18)
                 ON CONFLICT (correlation_id) DO NOTHING",
                &[
                    &run.probe,
                    &run.correlation_id,
                    &instance,
                    &millis(run.started_at),
                    &run.outcome.as_str(),
                    &run.reason,
                    &run.code,
                    &run.latency.map(duration_ms),
                    &duration_ms(run.threshold),
                    &duration_ms(run.timeout),
                    &run.phases.submit.map(duration_ms),
                    &run.phases.sent.map(duration_ms),
                    &run.phases.delivered.map(duration_ms),
                    &run.phases.received.map(duration_ms),
                    &run.message_id,
                    &i64::from(run.attempts),
                    &findings,
                    &interrupted,
                ],
            )?;
            tx.execute(
                "DELETE FROM started_runs WHERE correlation_id = $1",
                &[&run.correlation_id],
            )?;
            if inserted == 0 {
                // Already recorded: its state and notices were stored then.
                tx.commit()?;
                return Ok(false);
            }
            count_run(&mut tx, run, interrupted)?;
            upsert_state(&mut tx, &run.probe, &state, now)?;
            insert_outbox(&mut tx, outbox, &payloads, Some(&run.correlation_id), now)?;
            tx.commit()?;
            Ok(true)
        })
    }

    pub(super) fn pg_record_alert(
        &self,
        key: &str,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("record alert state", |client| {
            let state = encode("alert state", state)?;
            let payloads = payloads(outbox)?;
            let mut tx = client.transaction()?;
            upsert_state(&mut tx, key, &state, now)?;
            insert_outbox(&mut tx, outbox, &payloads, None, now)?;
            tx.commit()?;
            Ok(())
        })
    }

    pub(super) fn pg_alert_state(&self, probe: &str) -> Result<AlertState, StoreError> {
        self.with("read alert state", |client| {
            let row =
                client.query_opt("SELECT state FROM alert_state WHERE probe = $1", &[&probe])?;
            match row {
                Some(row) => Ok(decode(
                    &format!("alert state of {probe}"),
                    &row.try_get::<_, String>(0)?,
                )?),
                None => Ok(AlertState::default()),
            }
        })
    }

    pub(super) fn pg_alert_states(
        &self,
        to_reconcile: bool,
    ) -> Result<Vec<(String, AlertState)>, StoreError> {
        self.with("read alert states", |client| {
            let filter = if to_reconcile { TO_RECONCILE } else { "TRUE" };
            let rows = client.query(
                &format!(
                    "SELECT probe, state FROM alert_state WHERE {filter}
                     ORDER BY probe COLLATE \"C\""
                ),
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    let probe: String = row.try_get(0)?;
                    let json: String = row.try_get(1)?;
                    let state = decode(&format!("alert state of {probe}"), &json)?;
                    Ok((probe, state))
                })
                .collect()
        })
    }

    pub(super) fn pg_recent_runs(
        &self,
        probe: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read recent runs", |client| {
            let limit = sql_limit(limit);
            let rows = match probe {
                Some(probe) => client.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE probe = $1
                         ORDER BY started_at DESC, id DESC LIMIT $2"
                    ),
                    &[&probe, &limit],
                )?,
                None => client.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC LIMIT $1"
                    ),
                    &[&limit],
                )?,
            };
            decode_runs(&rows)
        })
    }

    pub(super) fn pg_runs_since(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read runs", |client| {
            let rows = client.query(
                &format!(
                    "SELECT * FROM (SELECT {RUN_COLUMNS} FROM runs
                         WHERE probe = $1 AND started_at >= $2
                         ORDER BY started_at DESC, id DESC LIMIT $3) AS latest
                     ORDER BY started_at, correlation_id COLLATE \"C\""
                ),
                &[&probe, &millis(since), &sql_limit(limit)],
            )?;
            decode_runs(&rows)
        })
    }

    pub(super) fn pg_incident_runs(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.with("read incident runs", |client| {
            let rows = client.query(
                &format!(
                    "WITH failed AS (
                        SELECT id, started_at FROM runs
                        WHERE probe = $1 AND started_at >= $2 AND outcome != 'ok'
                          AND NOT interrupted
                        ORDER BY started_at DESC, id DESC LIMIT $3
                     ), next AS (
                        SELECT (SELECT n.id FROM runs n
                                WHERE n.probe = $1 AND n.started_at > f.started_at
                                  AND NOT n.interrupted
                                ORDER BY n.started_at, n.id LIMIT 1) AS id
                        FROM failed f
                     )
                     SELECT {RUN_COLUMNS} FROM runs
                     WHERE id IN (SELECT id FROM failed UNION SELECT id FROM next WHERE id IS NOT NULL)
                     ORDER BY started_at, correlation_id COLLATE \"C\""
                ),
                &[&probe, &millis(since), &sql_limit(limit)],
            )?;
            decode_runs(&rows)
        })
    }

    pub(super) fn pg_recent_correlation_ids(
        &self,
        probe: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.with("read recent correlation ids", |client| {
            let rows = client.query(
                "SELECT correlation_id FROM runs WHERE probe = $1
                 ORDER BY started_at DESC, id DESC LIMIT $2",
                &[&probe, &sql_limit(limit)],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn pg_last_ok_flags(
        &self,
        probes: &[String],
    ) -> Result<Vec<(String, bool)>, StoreError> {
        self.with("read the last outcomes", |client| {
            let stmt = client.prepare(
                "SELECT outcome = 'ok' FROM runs WHERE probe = $1
                 ORDER BY started_at DESC, id DESC LIMIT 1",
            )?;
            probes
                .iter()
                .map(|p| {
                    let ok = client
                        .query_opt(&stmt, &[p])?
                        .map(|row| row.try_get::<_, bool>(0))
                        .transpose()?;
                    Ok((p.clone(), ok.unwrap_or(false)))
                })
                .collect()
        })
    }

    pub(super) fn pg_probes_run_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.with("read the probes that ran", |client| {
            let rows = client.query(
                "SELECT DISTINCT probe COLLATE \"C\" AS probe FROM runs WHERE started_at >= $1
                 ORDER BY 1",
                &[&millis(since)],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn pg_last_ok_run(
        &self,
        probe: &str,
    ) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        self.with("read the last good run", |client| {
            let row = client.query_opt(
                "SELECT started_at, correlation_id FROM runs
                 WHERE probe = $1 AND outcome = 'ok'
                 ORDER BY started_at DESC, id DESC LIMIT 1",
                &[&probe],
            )?;
            match row {
                Some(row) => Ok(Some((timestamp(row.try_get(0)?)?, row.try_get(1)?))),
                None => Ok(None),
            }
        })
    }

    pub(super) fn pg_outcome_counts(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Outcome, u64)>, StoreError> {
        self.with("count outcomes", |client| {
            let since = millis(since);
            let (filter, args): (&str, Vec<Param<'_>>) = match &probe {
                Some(probe) => ("AND probe = $2", vec![&since, probe]),
                None => ("", vec![&since]),
            };
            let rows = client.query(
                &format!(
                    "SELECT outcome, COUNT(*) FROM runs WHERE started_at >= $1 {filter}
                     GROUP BY outcome"
                ),
                &args,
            )?;
            let mut counts = Vec::new();
            for row in rows {
                let outcome: String = row.try_get(0)?;
                counts.push((parse_outcome(&outcome)?, count(row.try_get(1)?)?));
            }
            counts.sort_by_key(|(o, _)| Outcome::ALL.iter().position(|a| a == o));
            Ok(counts)
        })
    }

    pub(super) fn pg_latency_percentiles(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<Percentiles>, StoreError> {
        self.with("compute latency percentiles", |client| {
            let since = millis(since);
            let (filter, args): (&str, Vec<Param<'_>>) = match &probe {
                Some(probe) => ("AND probe = $2", vec![&since, probe]),
                None => ("", vec![&since]),
            };
            let rows = client.query(
                &format!(
                    "SELECT latency_ms FROM runs
                     WHERE started_at >= $1 AND outcome IN ('ok', 'slow')
                         AND latency_ms IS NOT NULL {filter}
                     ORDER BY latency_ms"
                ),
                &args,
            )?;
            let sorted = rows
                .iter()
                .map(|r| r.try_get::<_, f64>(0))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(nearest_rank(&sorted)?)
        })
    }

    /// Counted afresh on each call, across every member of the fleet: the
    /// SQLite store's incremental count folds in rows by their growing id,
    /// which concurrent writers on PostgreSQL do not commit in id order.
    pub(super) fn pg_messages_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with("count messages", |client| {
            let n: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM runs
                     WHERE started_at >= $1 AND (message_id IS NOT NULL OR interrupted)",
                    &[&millis(since)],
                )?
                .try_get(0)?;
            Ok(count(n)?)
        })
    }

    pub(super) fn pg_pending_notifications(&self) -> Result<u64, StoreError> {
        self.with("count pending notifications", |client| {
            let n: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND NOT dead",
                    &[],
                )?
                .try_get(0)?;
            Ok(count(n)?)
        })
    }
}

pub(super) fn payloads(outbox: &[OutboxItem]) -> Result<Vec<String>, PgFailure> {
    Ok(outbox
        .iter()
        .map(|item| encode("notification", &item.notification))
        .collect::<Result<Vec<_>, _>>()?)
}

fn upsert_state(
    tx: &mut Transaction<'_>,
    key: &str,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), PgFailure> {
    tx.execute(
        "INSERT INTO alert_state (probe, state, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (probe) DO UPDATE
         SET state = excluded.state, updated_at = excluded.updated_at",
        &[&key, &state, &millis(now)],
    )?;
    Ok(())
}

pub(super) fn insert_outbox(
    tx: &mut Transaction<'_>,
    outbox: &[OutboxItem],
    payloads: &[String],
    correlation_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), PgFailure> {
    let insert = tx.prepare(
        "INSERT INTO outbox (notification_id, channel, probe, correlation_id, payload,
             created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )?;
    for (item, payload) in outbox.iter().zip(payloads) {
        tx.execute(
            &insert,
            &[
                &item.notification.id,
                &item.channel,
                &item.notification.probe,
                &correlation_id,
                payload,
                &millis(now),
            ],
        )?;
    }
    Ok(())
}

/// Counts one run into its probe-hour and probe-day. The row is created
/// empty first and then locked, so two members counting runs of one hour
/// at once add up instead of one overwriting the other.
fn count_run(
    tx: &mut Transaction<'_>,
    run: &RunResult,
    interrupted: bool,
) -> Result<(), PgFailure> {
    let row = rollups::run_row(run, interrupted);
    for grain in [Grain::Hour, Grain::Day] {
        let (table, key) = (grain.table(), grain.key());
        let at = grain.of(millis(run.started_at));
        tx.execute(
            &format!(
                "INSERT INTO {table} (probe, {key}, tally) VALUES ($1, $2, '{{}}')
                 ON CONFLICT (probe, {key}) DO NOTHING"
            ),
            &[&run.probe, &at],
        )?;
        let stored: String = tx
            .query_one(
                &format!("SELECT tally FROM {table} WHERE probe = $1 AND {key} = $2 FOR UPDATE"),
                &[&run.probe, &at],
            )?
            .try_get(0)?;
        tx.execute(
            &format!("UPDATE {table} SET tally = $3 WHERE probe = $1 AND {key} = $2"),
            &[&run.probe, &at, &rollups::merged(Some(&stored), &row)?],
        )?;
    }
    Ok(())
}

fn decode_runs(rows: &[Row]) -> Result<Vec<StoredRun>, PgFailure> {
    rows.iter().map(|row| Ok(raw_run(row)?.decode()?)).collect()
}

fn raw_run(row: &Row) -> Result<RawRun, postgres::Error> {
    Ok(RawRun {
        probe: row.try_get(0)?,
        correlation_id: row.try_get(1)?,
        instance: row.try_get(2)?,
        started_at: row.try_get(3)?,
        outcome: row.try_get(4)?,
        reason: row.try_get(5)?,
        code: row.try_get(6)?,
        latency_ms: row.try_get(7)?,
        threshold_ms: row.try_get(8)?,
        timeout_ms: row.try_get(9)?,
        submit_ms: row.try_get(10)?,
        sent_ms: row.try_get(11)?,
        delivered_ms: row.try_get(12)?,
        received_ms: row.try_get(13)?,
        message_id: row.try_get(14)?,
        attempts: row.try_get(15)?,
        findings: row.try_get(16)?,
        interrupted: row.try_get(17)?,
    })
}
