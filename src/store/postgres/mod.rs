//! The PostgreSQL store, for a fleet of daemons sharing one database
//! (`[canary] store = "postgres://..."`). It speaks through the synchronous
//! `postgres` client, so its methods block exactly like the SQLite store's
//! and async callers run both through `spawn_blocking`: one [`Backend`]
//! trait covers both without an async variant of every method. Here that
//! is a must, not a courtesy: the driver blocks on a runtime of its own,
//! which panics on an async worker thread.
//!
//! One connection per process behind a mutex, like the SQLite handle; a
//! connection the server dropped is replaced on the next call, so a
//! database restart heals without a restart of the canary.
//!
//! Not every store operation is here yet: [`NOT_YET_PORTED`] names the
//! ones that are SQLite-only, and the config refuses a `postgres://` store
//! while the list is not empty, rather than failing at run time.

mod dsn;
mod outbox;
mod rollups;
mod runs;
mod schema;
mod started;
mod tls;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;

use super::backend::Backend;
use super::control::RawSilence;
use super::error::{ConnectProblem, Failure};
use super::{
    BeginRun, Begun, Lease, OutboxActions, OutboxEntry, OutboxItem, Percentiles, Pruned, Silence,
    StartedRun, StoreError, StoredRun, Tally, millis, timestamp,
};
use crate::alert::AlertState;
use crate::probe::{Outcome, RunResult};

pub use dsn::{CONNECT_TIMEOUT, DsnError, PgDsn, SslMode};
pub use schema::supported_version;

/// The store's operations that only the SQLite store implements so far,
/// by group, as the config's refusal names them.
pub const NOT_YET_PORTED: &[&str] = &[
    "finding crashed holders (a holder's liveness is a lock file on the local disk, which other members cannot see: recover_crashed, recover_if_dead)",
    "the commands opening it (check, daemon, drill, doctor, history and silence open the SQLite store by its type, not through the Backend trait)",
];

/// A handle on a PostgreSQL store; cheap to clone, shared by all tasks of a process.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    dsn: PgDsn,
    client: Mutex<Option<postgres::Client>>,
    /// What went wrong lately, for `/healthz` and the metrics.
    health: super::HealthLog,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.inner.dsn.target())
            .finish_non_exhaustive()
    }
}

/// A failure inside one operation, before the target and operation are attached.
#[derive(Debug)]
pub(crate) enum PgFailure {
    Sql(postgres::Error),
    TooNew {
        found: i64,
        supported: i64,
    },
    Corrupt(String),
    UnknownNotification {
        notification_id: String,
        channel: String,
    },
}

impl From<postgres::Error> for PgFailure {
    fn from(e: postgres::Error) -> PgFailure {
        PgFailure::Sql(e)
    }
}

impl From<Failure> for PgFailure {
    fn from(e: Failure) -> PgFailure {
        match e {
            Failure::Corrupt(detail) => PgFailure::Corrupt(detail),
            other => PgFailure::Corrupt(format!("{other:?}")),
        }
    }
}

impl PgFailure {
    fn into_store_error(self, target: &str, op: &'static str) -> StoreError {
        let target = target.to_string();
        match self {
            PgFailure::Sql(source) => StoreError::Postgres { target, op, source },
            PgFailure::TooNew { found, supported } => StoreError::PgTooNew {
                target,
                found,
                supported,
            },
            PgFailure::Corrupt(detail) => StoreError::PgCorrupt { target, op, detail },
            PgFailure::UnknownNotification {
                notification_id,
                channel,
            } => StoreError::UnknownNotification {
                path: target.into(),
                notification_id,
                channel,
            },
        }
    }
}

impl PgStore {
    /// Connects to the database and brings its schema up to date (or
    /// refuses a newer one). Several processes may do this at once.
    pub fn connect(dsn: &PgDsn) -> Result<PgStore, StoreError> {
        let mut client = connect(dsn)?;
        schema::migrate(&mut client)
            .map_err(|e| e.into_store_error(dsn.target(), "migrate schema"))?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                dsn: dsn.clone(),
                client: Mutex::new(Some(client)),
                health: super::HealthLog::default(),
            }),
        })
    }

    /// The DSN without its password.
    pub fn target(&self) -> &str {
        self.inner.dsn.target()
    }

    /// The database's schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with("read schema version", |client| {
            let mut tx = client.transaction()?;
            schema::version(&mut tx)
        })
    }

    /// Runs `f` on the connection, connecting first if there is none or the
    /// server dropped it.
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, PgFailure>,
    ) -> Result<T, StoreError> {
        // A panic mid-transaction drops the transaction, which rolls back.
        let mut slot = self
            .inner
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(postgres::Client::is_closed) {
            *slot = None;
            match connect(&self.inner.dsn) {
                Ok(client) => *slot = Some(client),
                Err(e) => {
                    self.inner.health.failed(op, &e);
                    return Err(e);
                }
            }
        }
        let Some(client) = slot.as_mut() else {
            unreachable!("connected just above");
        };
        let result = f(client).map_err(|e| e.into_store_error(self.target(), op));
        if client.is_closed() {
            *slot = None;
        }
        drop(slot);
        if let Err(e) = &result {
            self.inner.health.failed(op, e);
        }
        result
    }

    /// Checks the database answers and holds no run both written ahead and
    /// recorded (recording one deletes its started row in the same
    /// transaction). Foreign keys are enforced by the server as rows are
    /// written, so there is nothing to re-check for them.
    pub(super) fn pg_integrity_check(&self) -> Result<(), StoreError> {
        self.with("integrity check", |client| {
            let problems: Vec<String> = client
                .query(
                    "SELECT correlation_id FROM started_runs
                     WHERE correlation_id IN (SELECT correlation_id FROM runs)",
                    &[],
                )?
                .iter()
                .map(|r| {
                    r.try_get::<_, String>(0)
                        .map(|id| format!("run {id} is both started and recorded"))
                })
                .collect::<Result<_, _>>()?;
            if problems.is_empty() {
                Ok(())
            } else {
                Err(PgFailure::Corrupt(problems.join("; ")))
            }
        })
    }
}

/// Opens a connection, naming what went wrong in an operator's terms.
fn connect(dsn: &PgDsn) -> Result<postgres::Client, StoreError> {
    let config = dsn.config();
    let connected = match dsn.ssl() {
        SslMode::Disable => config.connect(postgres::NoTls),
        mode => {
            let tls = tls::connector(mode).map_err(|e| StoreError::Connect {
                target: dsn.target().to_string(),
                problem: ConnectProblem::Tls(e.to_string()),
            })?;
            config.connect(tls)
        }
    };
    connected.map_err(|e| StoreError::Connect {
        target: dsn.target().to_string(),
        problem: classify(&e),
    })
}

/// Sorts a connection failure into what the operator has to fix.
fn classify(e: &postgres::Error) -> ConnectProblem {
    if let Some(db) = e.as_db_error() {
        let said = db.message().to_string();
        return match *db.code() {
            SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                ConnectProblem::Credentials(said)
            }
            SqlState::INVALID_CATALOG_NAME => ConnectProblem::NoDatabase(said),
            _ => ConnectProblem::Other(said),
        };
    }
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("TLS") || chain.contains("certificate") {
        ConnectProblem::Tls(chain)
    } else if chain.contains("password") {
        // The server asked for a password the DSN does not carry.
        ConnectProblem::Credentials(chain)
    } else if chain.contains("connecting") || chain.contains("timeout") {
        ConnectProblem::Unreachable(chain)
    } else {
        ConnectProblem::Other(chain)
    }
}

impl Backend for PgStore {
    fn location(&self) -> String {
        self.target().to_string()
    }

    fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with("touch", |client| {
            client.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                &[&millis(now)],
            )?;
            Ok(())
        })
    }

    fn note_heard(&self, receiver: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with("note a receiver heard", |client| {
            client.execute(
                "INSERT INTO receiver_heard (receiver, heard_at) VALUES ($1, $2)
                 ON CONFLICT (receiver) DO UPDATE
                     SET heard_at = GREATEST(receiver_heard.heard_at, excluded.heard_at)",
                &[&receiver, &millis(at)],
            )?;
            Ok(())
        })
    }

    fn last_heard(&self, receiver: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read when a receiver was heard", |client| {
            let row = client.query_opt(
                "SELECT heard_at FROM receiver_heard WHERE receiver = $1",
                &[&receiver],
            )?;
            Ok(row.map(|r| timestamp(r.get(0))).transpose()?)
        })
    }

    fn silence(
        &self,
        probe: &str,
        until: DateTime<Utc>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("silence probe", |client| {
            client.execute(
                "INSERT INTO silences (probe, until, reason, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (probe) DO UPDATE SET until = excluded.until,
                     reason = excluded.reason, created_at = excluded.created_at",
                &[&probe, &millis(until), &reason, &millis(now)],
            )?;
            Ok(())
        })
    }

    fn unsilence(&self, probe: &str) -> Result<bool, StoreError> {
        self.with("unsilence probe", |client| {
            Ok(client.execute("DELETE FROM silences WHERE probe = $1", &[&probe])? > 0)
        })
    }

    fn silenced(&self, probe: &str, now: DateTime<Utc>) -> Result<Option<Silence>, StoreError> {
        self.with("read silence", |client| {
            let row = client.query_opt(
                "SELECT probe, until, reason, created_at FROM silences
                 WHERE probe = $1 AND until > $2",
                &[&probe, &millis(now)],
            )?;
            Ok(row.map(raw_silence).map(RawSilence::decode).transpose()?)
        })
    }

    fn next_silence_end(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read silences", |client| {
            let until: Option<i64> = client
                .query_one(
                    "SELECT MIN(until) FROM silences WHERE until > $1",
                    &[&millis(now)],
                )?
                .get(0);
            Ok(until.map(timestamp).transpose()?)
        })
    }

    fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        self.with("read silences", |client| {
            let rows = client.query(
                "SELECT probe, until, reason, created_at FROM silences WHERE until > $1
                 ORDER BY probe COLLATE \"C\"",
                &[&millis(now)],
            )?;
            Ok(rows
                .into_iter()
                .map(|row| raw_silence(row).decode())
                .collect::<Result<_, _>>()?)
        })
    }

    fn acquire_lease(
        &self,
        probe: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with("acquire lease", |client| {
            let now = millis(now);
            let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            // One statement: of two members racing for a free lease, the
            // row lock lets one insert and makes the other see its lease.
            let taken = client.execute(
                "INSERT INTO leases (probe, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (probe) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
                &[&probe, &holder, &now.saturating_add(ttl), &now],
            )?;
            Ok(taken > 0)
        })
    }

    fn release_leases_except(&self, holder: &str, keep: &[String]) -> Result<u64, StoreError> {
        self.with("release stale leases", |client| {
            Ok(client.execute(
                "DELETE FROM leases WHERE holder = $1 AND NOT (probe = ANY($2))",
                &[&holder, &keep],
            )?)
        })
    }

    fn release_lease(&self, probe: &str, holder: &str) -> Result<(), StoreError> {
        self.with("release lease", |client| {
            client.execute(
                "DELETE FROM leases WHERE probe = $1 AND holder = $2",
                &[&probe, &holder],
            )?;
            Ok(())
        })
    }

    fn live_leases(&self, now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError> {
        self.with("read leases", |client| {
            let rows = client.query(
                "SELECT probe, holder, expires_at FROM leases WHERE expires_at > $1
                 ORDER BY probe COLLATE \"C\"",
                &[&millis(now)],
            )?;
            rows.into_iter()
                .map(|row| {
                    Ok(Lease {
                        probe: row.try_get(0)?,
                        holder: row.try_get(1)?,
                        expires_at: timestamp(row.try_get(2)?)?,
                    })
                })
                .collect()
        })
    }

    fn record_run(
        &self,
        run: &RunResult,
        instance: &str,
        interrupted: bool,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.pg_record_run(run, instance, interrupted, state, outbox, now)
    }

    fn record_alert(
        &self,
        key: &str,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.pg_record_alert(key, state, outbox, now)
    }

    fn alert_state(&self, probe: &str) -> Result<AlertState, StoreError> {
        self.pg_alert_state(probe)
    }

    fn alert_states(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        self.pg_alert_states(false)
    }

    fn alert_states_to_reconcile(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        self.pg_alert_states(true)
    }

    fn recent_runs(&self, probe: Option<&str>, limit: usize) -> Result<Vec<StoredRun>, StoreError> {
        self.pg_recent_runs(probe, limit)
    }

    fn runs_since(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.pg_runs_since(probe, since, limit)
    }

    fn recent_correlation_ids(&self, probe: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.pg_recent_correlation_ids(probe, limit)
    }

    fn last_ok_flags(&self, probes: &[String]) -> Result<Vec<(String, bool)>, StoreError> {
        self.pg_last_ok_flags(probes)
    }

    fn probes_run_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.pg_probes_run_since(since)
    }

    fn last_ok_run(&self, probe: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        self.pg_last_ok_run(probe)
    }

    fn outcome_counts(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Outcome, u64)>, StoreError> {
        self.pg_outcome_counts(probe, since)
    }

    fn latency_percentiles(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<Percentiles>, StoreError> {
        self.pg_latency_percentiles(probe, since)
    }

    fn messages_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.pg_messages_since(since)
    }

    fn pending_notifications(&self) -> Result<u64, StoreError> {
        self.pg_pending_notifications()
    }

    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.pg_due_notifications(now, limit)
    }

    fn claim_next(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.pg_claim_next(claimer, now, hold)
    }

    fn claim(
        &self,
        notification_id: &str,
        channel: &str,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.pg_claim(notification_id, channel, claimer, now, hold)
    }

    fn queue(&self, outbox: &[OutboxItem], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.pg_queue(outbox, now)
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.pg_undelivered(limit)
    }

    fn retry_dead(&self, id: Option<&str>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.pg_retry_dead(id, now)
    }

    fn purge_dead(
        &self,
        id: Option<&str>,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        self.pg_purge_dead(id, before)
    }

    fn mark_delivered_as(
        &self,
        notification_id: &str,
        channel: &str,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.pg_mark_delivered_as(notification_id, channel, reference, now)
    }

    fn delivered_ref(
        &self,
        notification_id: &str,
        channel: &str,
    ) -> Result<Option<String>, StoreError> {
        self.pg_delivered_ref(notification_id, channel)
    }

    fn mark_failed(
        &self,
        notification_id: &str,
        channel: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.pg_mark_failed(notification_id, channel, error, retry_at, now)
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.pg_dead_letter_count()
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.pg_dead_letters(limit)
    }

    fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.pg_next_notification_due()
    }

    fn begin_run(&self, begin: &BeginRun) -> Result<Begun, StoreError> {
        self.pg_begin_run(begin)
    }

    fn interrupt_run(&self, correlation_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.pg_interrupt_run(correlation_id, reason)
    }

    fn start_run(&self, run: &StartedRun) -> Result<(), StoreError> {
        self.pg_start_run(run)
    }

    fn started_runs(&self) -> Result<Vec<String>, StoreError> {
        self.pg_started_runs()
    }

    fn holders_in_store(&self) -> Result<Vec<String>, StoreError> {
        self.pg_holders_in_store()
    }

    fn recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        self.pg_recover_holder(holder)
    }

    fn tally(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.pg_tally(probe, since)
    }

    fn hourly(
        &self,
        probe: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Tally)>, StoreError> {
        self.pg_hourly(probe, since)
    }

    fn counted_probes(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.pg_counted_probes(since)
    }

    fn prune(
        &self,
        runs_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        self.pg_prune(runs_before, rollups_before)
    }

    fn size_bytes(&self) -> u64 {
        self.pg_size_bytes()
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        self.pg_integrity_check()
    }

    fn quick_check(&self) -> Result<(), StoreError> {
        self.with("quick check", |client| {
            client.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }

    fn error_counts(&self) -> Vec<(&'static str, u64)> {
        self.inner.health.error_counts()
    }

    fn failed_within(&self, window: Duration) -> Option<String> {
        self.inner.health.failed_within(window)
    }

    fn outbox_actions(&self) -> Result<OutboxActions, StoreError> {
        self.pg_outbox_actions()
    }

    fn counts(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.pg_counts(probe, since)
    }

    fn incident_runs(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        self.pg_incident_runs(probe, since, limit)
    }
}

fn raw_silence(row: postgres::Row) -> RawSilence {
    RawSilence {
        probe: row.get(0),
        until: row.get(1),
        reason: row.get(2),
        created_at: row.get(3),
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
