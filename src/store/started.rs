//! Runs written ahead: a run is stored as *started* before its message is
//! sent, and the row is replaced by the recorded run in the transaction
//! that records it. A started row that outlives its process (found by
//! [`super::holder::recover_crashed`]) becomes an interrupted run, so a
//! crash at any moment leaves every message sent with exactly one run.
//!
//! [`Store::begin_run`] is the store's half of starting a run: the cost
//! guard's count, the probe's lease and the write-ahead, in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::Failure;
use super::{Store, StoreError, duration_ms, millis, timestamp};

/// The alert-state key of the cost guard's own alert (see
/// [`crate::alert::CANARY_KEY_PREFIX`]).
pub const COST_GUARD_KEY: &str = "canary:cost-guard";

/// What [`Store::begin_run`] needs besides the run itself.
#[derive(Debug, Clone)]
pub struct BeginRun {
    pub run: StartedRun,
    /// How long the lease holds if nobody releases it.
    pub lease_ttl: Duration,
    /// Messages allowed in the 24 hours before `run.started_at`.
    pub cap: u32,
    /// Runs this process has begun and not yet recorded: they may send too.
    pub in_flight: u64,
}

/// How [`Store::begin_run`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// Leased and written ahead: the message may be sent.
    Started {
        /// The cost guard's own alert was firing: sending resumes, so it resolves.
        cost_guard_firing: bool,
    },
    /// The cost guard's budget is spent; nothing was written.
    CostGuard {
        /// Messages counted in the last 24 hours (this process's runs in flight included).
        sent: u64,
        /// When the oldest of them leaves the window, so that one more may go.
        resumes_at: DateTime<Utc>,
    },
    /// Another holder's lease is live; nothing was written.
    LeaseHeld { holder: String },
}

/// Why a recovered run ended: stored as its reason, shown by `history`.
pub const CRASH_REASON: &str =
    "interrupted: the process running it stopped before the run ended (crash or kill)";

/// A run about to send its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedRun {
    pub probe: String,
    pub correlation_id: String,
    /// The sms-canary instance running it.
    pub instance: String,
    /// The process running it (see [`super::Holder`]).
    pub holder: String,
    pub started_at: DateTime<Utc>,
    pub threshold: Duration,
    pub timeout: Duration,
}

impl Store {
    /// Starts a run in the store: checks the cost guard, takes the probe's
    /// lease and writes the run ahead, in one transaction, so a run either
    /// may send with all three done or leaves nothing behind.
    pub fn begin_run(&self, begin: &BeginRun) -> Result<Begun, StoreError> {
        let run = &begin.run;
        let day = chrono::Duration::hours(24);
        let since = run.started_at - day;
        // Counted first: the incremental count keeps its own read snapshot.
        let recorded = self.messages_since(since)?;
        self.with("begin run", |conn| {
            let sent = recorded.saturating_add(begin.in_flight);
            if sent >= u64::from(begin.cap) {
                let oldest = nth_sent_since(conn, since, sent - u64::from(begin.cap))?;
                return Ok(Begun::CostGuard {
                    sent,
                    resumes_at: oldest.unwrap_or(run.started_at) + day,
                });
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(holder) = take_lease(
                &tx,
                &run.probe,
                &run.holder,
                begin.lease_ttl,
                run.started_at,
            )? {
                return Ok(Begun::LeaseHeld { holder });
            }
            write_ahead(&tx, run)?;
            let cost_guard_firing = tx
                .query_row(
                    "SELECT json_extract(state, '$.firing') IS NOT NULL FROM alert_state
                     WHERE probe = ?1",
                    [COST_GUARD_KEY],
                    |row| row.get::<_, bool>(0),
                )
                .optional()?
                .unwrap_or(false);
            tx.commit()?;
            Ok(Begun::Started { cost_guard_firing })
        })
    }

    /// Records a run that was written ahead but will not finish (its task
    /// panicked or was cancelled, its process is shutting down) as an
    /// interrupted `error` run with `reason`, and frees its probe's lease.
    /// Idempotent: a run already recorded, or never started, is left alone
    /// (`false`).
    pub fn interrupt_run(&self, correlation_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.with("record interrupted run", |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let started: Option<(String, String)> = tx
                .query_row(
                    "SELECT probe, holder FROM started_runs WHERE correlation_id = ?1",
                    [correlation_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((probe, holder)) = started else {
                return Ok(false);
            };
            record_interrupted(&tx, "correlation_id = ?1", correlation_id, reason)?;
            tx.execute(
                "DELETE FROM leases WHERE probe = ?1 AND holder = ?2",
                [&probe, &holder],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Writes a run ahead, before its message is sent. Idempotent.
    pub fn start_run(&self, run: &StartedRun) -> Result<(), StoreError> {
        self.with("write run ahead", |conn| {
            let tx = conn.transaction()?;
            write_ahead(&tx, run)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Correlation ids of the runs started and not yet recorded, oldest first.
    pub fn started_runs(&self) -> Result<Vec<String>, StoreError> {
        self.with("read started runs", |conn| {
            let mut stmt =
                conn.prepare("SELECT correlation_id FROM started_runs ORDER BY started_at")?;
            let ids = stmt
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
    }

    /// The holders with runs started and not yet recorded, or leases taken:
    /// what a holder that died leaves behind.
    pub(crate) fn holders_in_store(&self) -> Result<Vec<String>, StoreError> {
        self.with("read holders", |conn| {
            let mut stmt =
                conn.prepare("SELECT holder FROM started_runs UNION SELECT holder FROM leases")?;
            let holders = stmt
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(holders)
        })
    }

    /// For a holder whose process is gone: records each of its started runs
    /// as an interrupted `error` run (no alert state change: it says nothing
    /// about the pipeline) and frees its leases, in one transaction. Returns
    /// the correlation ids recorded.
    pub(crate) fn recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        self.with("recover interrupted runs", |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = {
                let mut stmt = tx.prepare(
                    "SELECT correlation_id FROM started_runs WHERE holder = ?1 ORDER BY started_at",
                )?;
                stmt.query_map([holder], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            record_interrupted(&tx, "holder = ?1", holder, CRASH_REASON)?;
            tx.execute("DELETE FROM leases WHERE holder = ?1", [holder])?;
            tx.commit()?;
            Ok(ids)
        })
    }
}

/// Takes `probe`'s lease for `holder` (free, expired, or its own: renewed);
/// when another holder's lease is live, leaves it and names that holder.
pub(super) fn take_lease(
    tx: &Transaction<'_>,
    probe: &str,
    holder: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<String>, Failure> {
    let now = millis(now);
    let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let taken = tx.execute(
        "INSERT INTO leases (probe, holder, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (probe) DO UPDATE
         SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4",
        params![probe, holder, now.saturating_add(ttl), now],
    )?;
    if taken > 0 {
        return Ok(None);
    }
    Ok(Some(tx.query_row(
        "SELECT holder FROM leases WHERE probe = ?1",
        [probe],
        |row| row.get(0),
    )?))
}

fn write_ahead(tx: &Transaction<'_>, run: &StartedRun) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO started_runs (correlation_id, probe, instance, holder, started_at,
             threshold_ms, timeout_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (correlation_id) DO NOTHING",
        params![
            run.correlation_id,
            run.probe,
            run.instance,
            run.holder,
            millis(run.started_at),
            duration_ms(run.threshold),
            duration_ms(run.timeout),
        ],
    )?;
    Ok(())
}

/// Records the started runs `filter` (on `value`) picks as interrupted and
/// drops their started rows. A run recorded already (it cannot be, as
/// recording deletes the started row, but a hand-edited file may) keeps its
/// record.
fn record_interrupted(
    tx: &Transaction<'_>,
    filter: &str,
    value: &str,
    reason: &str,
) -> Result<(), Failure> {
    tx.execute(
        &format!(
            "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome, reason,
                 threshold_ms, timeout_ms, attempts, findings, interrupted)
             SELECT probe, correlation_id, instance, started_at, 'error', ?2,
                 threshold_ms, timeout_ms, 0, '[]', 1
             FROM started_runs WHERE {filter}
             ON CONFLICT (correlation_id) DO NOTHING"
        ),
        params![value, reason],
    )?;
    tx.execute(&format!("DELETE FROM started_runs WHERE {filter}"), [value])?;
    Ok(())
}

/// The start of the `n`th (from 0) oldest run that sent a message since
/// `since`: when it leaves the cost guard's window, one more message may go.
fn nth_sent_since(
    conn: &rusqlite::Connection,
    since: DateTime<Utc>,
    n: u64,
) -> Result<Option<DateTime<Utc>>, Failure> {
    let at: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT started_at FROM runs WHERE started_at >= ?1 AND {}
                 ORDER BY started_at LIMIT 1 OFFSET ?2",
                super::sent::SENT
            ),
            params![millis(since), i64::try_from(n).unwrap_or(i64::MAX)],
            |row| row.get(0),
        )
        .optional()?;
    at.map(timestamp).transpose()
}
