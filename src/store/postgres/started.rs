//! Runs written ahead on PostgreSQL, and the store's half of starting a
//! run: the cost guard, the probe's lease and the write-ahead in one
//! transaction. Across a fleet the cost guard's count must not let two
//! members both take the last message of the budget, so the transaction
//! takes an advisory lock for the count: members starting runs take turns
//! for the few milliseconds it holds.

use postgres::Transaction;

use super::{PgFailure, PgStore};
use crate::store::started::{BeginRun, Begun, COST_GUARD_KEY, CRASH_REASON, StartedRun};
use crate::store::{StoreError, count, duration_ms, millis, timestamp};

/// The advisory lock the cost guard's count is taken under ("smscost").
const COST_GUARD_LOCK: i64 = 0x0073_6d73_636f_7374;

/// Which runs sent (or may have sent) a message: the cost guard counts them.
const SENT: &str = "(message_id IS NOT NULL OR interrupted)";

impl PgStore {
    pub(super) fn pg_begin_run(&self, begin: &BeginRun) -> Result<Begun, StoreError> {
        let run = &begin.run;
        let day = chrono::Duration::hours(24);
        let since = run.started_at - day;
        self.with("begin run", |client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COST_GUARD_LOCK])?;
            let recorded: i64 = tx
                .query_one(
                    &format!("SELECT COUNT(*) FROM runs WHERE started_at >= $1 AND {SENT}"),
                    &[&millis(since)],
                )?
                .try_get(0)?;
            // Every member's runs in flight are written ahead here; this
            // process's are among them, or counted by the caller if not.
            let going: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM started_runs WHERE started_at >= $1",
                    &[&millis(since)],
                )?
                .try_get(0)?;
            let sent = count(recorded)?.saturating_add(count(going)?.max(begin.in_flight));
            if sent >= u64::from(begin.cap) {
                let n = sent - u64::from(begin.cap);
                let oldest: Option<i64> = tx
                    .query_opt(
                        &format!(
                            "SELECT started_at FROM runs WHERE started_at >= $1 AND {SENT}
                             ORDER BY started_at LIMIT 1 OFFSET $2"
                        ),
                        &[&millis(since), &i64::try_from(n).unwrap_or(i64::MAX)],
                    )?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                let oldest = oldest.map(timestamp).transpose()?;
                return Ok(Begun::CostGuard {
                    sent,
                    resumes_at: oldest.unwrap_or(run.started_at) + day,
                });
            }
            let ttl = i64::try_from(begin.lease_ttl.as_millis()).unwrap_or(i64::MAX);
            let now = millis(run.started_at);
            let taken = tx.execute(
                "INSERT INTO leases (probe, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (probe) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
                &[&run.probe, &run.holder, &now.saturating_add(ttl), &now],
            )?;
            if taken == 0 {
                let holder: String = tx
                    .query_one("SELECT holder FROM leases WHERE probe = $1", &[&run.probe])?
                    .try_get(0)?;
                return Ok(Begun::LeaseHeld { holder });
            }
            write_ahead(&mut tx, run)?;
            let cost_guard_firing = tx
                .query_opt(
                    "SELECT (state::jsonb ->> 'firing') IS NOT NULL FROM alert_state
                     WHERE probe = $1",
                    &[&COST_GUARD_KEY],
                )?
                .map(|row| row.try_get::<_, bool>(0))
                .transpose()?
                .unwrap_or(false);
            tx.commit()?;
            Ok(Begun::Started { cost_guard_firing })
        })
    }

    pub(super) fn pg_interrupt_run(
        &self,
        correlation_id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.with("record interrupted run", |client| {
            let mut tx = client.transaction()?;
            let started = tx.query_opt(
                "SELECT probe, holder FROM started_runs WHERE correlation_id = $1 FOR UPDATE",
                &[&correlation_id],
            )?;
            let Some(row) = started else {
                return Ok(false);
            };
            let (probe, holder): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            record_interrupted(&mut tx, "correlation_id = $1", correlation_id, reason)?;
            tx.execute(
                "DELETE FROM leases WHERE probe = $1 AND holder = $2",
                &[&probe, &holder],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    pub(super) fn pg_start_run(&self, run: &StartedRun) -> Result<(), StoreError> {
        self.with("write run ahead", |client| {
            let mut tx = client.transaction()?;
            write_ahead(&mut tx, run)?;
            tx.commit()?;
            Ok(())
        })
    }

    pub(super) fn pg_started_runs(&self) -> Result<Vec<String>, StoreError> {
        self.with("read started runs", |client| {
            let rows = client.query(
                "SELECT correlation_id FROM started_runs ORDER BY started_at",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn pg_holders_in_store(&self) -> Result<Vec<String>, StoreError> {
        self.with("read holders", |client| {
            let rows = client.query(
                "SELECT holder FROM started_runs UNION SELECT holder FROM leases",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn pg_recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        self.with("recover interrupted runs", |client| {
            let mut tx = client.transaction()?;
            let ids = tx
                .query(
                    "SELECT correlation_id FROM started_runs WHERE holder = $1
                     ORDER BY started_at FOR UPDATE",
                    &[&holder],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            record_interrupted(&mut tx, "holder = $1", holder, CRASH_REASON)?;
            tx.execute("DELETE FROM leases WHERE holder = $1", &[&holder])?;
            tx.commit()?;
            Ok(ids)
        })
    }
}

fn write_ahead(tx: &mut Transaction<'_>, run: &StartedRun) -> Result<(), PgFailure> {
    tx.execute(
        "INSERT INTO started_runs (correlation_id, probe, instance, holder, started_at,
             threshold_ms, timeout_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (correlation_id) DO NOTHING",
        &[
            &run.correlation_id,
            &run.probe,
            &run.instance,
            &run.holder,
            &millis(run.started_at),
            &duration_ms(run.threshold),
            &duration_ms(run.timeout),
        ],
    )?;
    Ok(())
}

/// Records the started runs `filter` (on `$1`) picks as interrupted and
/// drops their started rows, as the SQLite store does.
fn record_interrupted(
    tx: &mut Transaction<'_>,
    filter: &str,
    value: &str,
    reason: &str,
) -> Result<(), PgFailure> {
    tx.execute(
        &format!(
            "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome, reason,
                 threshold_ms, timeout_ms, attempts, findings, interrupted)
             SELECT probe, correlation_id, instance, started_at, 'error', $2,
                 threshold_ms, timeout_ms, 0, '[]', TRUE
             FROM started_runs WHERE {filter}
             ON CONFLICT (correlation_id) DO NOTHING"
        ),
        &[&value, &reason],
    )?;
    tx.execute(
        &format!("DELETE FROM started_runs WHERE {filter}"),
        &[&value],
    )?;
    Ok(())
}
