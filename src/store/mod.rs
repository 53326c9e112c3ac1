//! The state store: one SQLite file (`state.db` in the `state_dir`) holding
//! what must outlive a process: recorded runs, each probe's alert state, the
//! notification outbox, silences, and the leases that keep overlapping cron
//! runs of one probe apart. Cron runs and a daemon share the file, so it runs
//! in WAL mode (readers never block the writer) with a busy timeout (writers
//! queue instead of failing), and everything a run changes is written in one
//! transaction, so a crash leaves either all of it or none of it.
//!
//! The methods are synchronous: SQLite is local and a call takes
//! microseconds to milliseconds. Async callers run them through
//! `tokio::task::spawn_blocking` so a slow disk or a busy lock never stalls
//! the runtime's workers.

mod backend;
#[cfg(test)]
mod backend_suite;
mod control;
mod error;
mod holder;
mod outbox;
pub mod postgres;
mod rollups;
mod runs;
mod schema;
mod sent;
mod started;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::alert::Notification;
use crate::probe::{Finding, Outcome, Phases};

pub use backend::Backend;
use error::Failure;
pub use error::{ConnectProblem, StoreError};
pub use holder::{HOLDERS_DIR, Holder, Recovered, recover_crashed, recover_if_dead};
pub use outbox::OutboxActions;
pub use postgres::{PgDsn, PgStore};
pub use rollups::{Histogram, PRUNE_BATCH, Pruned, Tally};
pub use started::{BeginRun, Begun, COST_GUARD_KEY, CRASH_REASON, StartedRun};

/// How long a store failure makes the store count as failing (`/healthz`,
/// `sms_canary_store_up`): long enough that failures every few runs keep it
/// failing, short enough that a store that healed shows it within a minute.
pub const HEALTH_WINDOW: Duration = Duration::from_secs(60);

/// The database file's name inside the `state_dir`.
pub const DB_FILE: &str = "state.db";

/// How long a writer waits for another process's transaction before giving
/// up: far longer than any of our transactions, short enough that a wedged
/// peer surfaces as an error rather than a hung cron job.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the state store; cheap to clone, shared by all tasks of a process.
///
/// A rusqlite `Connection` is `Send` but not `Sync`, so the handle owns one
/// behind a mutex: calls from one process take turns, and other processes
/// take turns through SQLite's own locking. Every method blocks; from async
/// code call it inside `tokio::task::spawn_blocking`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// The cost guard's running count; taken only while holding `conn`.
    sent: Mutex<sent::SentWindow>,
    /// What went wrong lately, for `/healthz` and the metrics.
    health: HealthLog,
}

/// The store's failures since it was opened: a store that fails its
/// operations (a corrupt page, a disk gone read-only, a lock held past the
/// busy timeout) must not look healthy because a trivial write still works.
#[derive(Debug, Default)]
struct Health {
    /// Failed operations, by what the store was doing.
    errors: std::collections::BTreeMap<&'static str, u64>,
    /// The latest failure: when, and what it said.
    last: Option<(std::time::Instant, String)>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// One notification to queue for one channel, written with its run.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub channel: String,
    pub notification: Notification,
}

/// A queued notification for one channel and its delivery history.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub channel: String,
    pub notification: Notification,
    /// Delivery attempts made so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    /// Out of retries: kept as a dead letter, never sent again.
    pub dead: bool,
}

/// A run as recorded. Times are kept to the millisecond, durations to the microsecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    pub probe: String,
    pub correlation_id: String,
    /// The sms-canary instance that ran it.
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub code: Option<String>,
    pub latency: Option<Duration>,
    pub threshold: Duration,
    pub timeout: Duration,
    pub phases: Phases,
    pub message_id: Option<String>,
    pub attempts: u32,
    pub findings: Vec<Finding>,
    /// Stored by a daemon shutting down mid-run: the outcome is what was
    /// known then, not a verdict on the pipeline.
    pub interrupted: bool,
}

impl StoredRun {
    /// The run as the engine reported it, for a notice told after the fact
    /// (a silence that ended). The store keeps no gateway or receiver name,
    /// nor the gateway errors: those are empty.
    pub fn into_result(self) -> crate::probe::RunResult {
        crate::probe::RunResult {
            probe: self.probe,
            gateway: String::new(),
            receiver: String::new(),
            correlation_id: self.correlation_id,
            started_at: self.started_at,
            outcome: self.outcome,
            reason: self.reason,
            code: self.code,
            latency: self.latency,
            threshold: self.threshold,
            timeout: self.timeout,
            phases: self.phases,
            message_id: self.message_id,
            attempts: self.attempts,
            findings: self.findings,
            gateway_errors: Vec::new(),
        }
    }
}

/// A maintenance silence: the probe runs and records, but notifies nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub probe: String,
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A probe's lease as it stands: who may run the probe, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub probe: String,
    /// `<kind>-<pid>-<id>`, e.g. `check-4242-01J…`.
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// Nearest-rank latency percentiles over the runs that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// How many latencies they were computed from.
    pub count: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

impl Store {
    /// Opens (creating if needed) `state.db` in `state_dir`, configures the
    /// connection and brings the schema up to date.
    ///
    /// The store holds run history, alert state and queued notifications:
    /// a state dir it creates is `0700`, and the database with its `-wal` and
    /// `-shm` files is `0600`, whatever the umask.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let create_dir = |source| StoreError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        if !state_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .and_then(|()| {
                    std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(create_dir)?;
        }
        let path = state_dir.join(DB_FILE);
        // Created here so that it never exists with the umask's mode; SQLite
        // gives the -wal and -shm files the database's own permissions. If
        // it cannot be created, opening it below says why in SQLite's words.
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .is_ok();
        if !created && std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            tracing::warn!(
                path = %path.display(),
                "the state store is an empty file (0 bytes): starting a new one; if it held runs \
                 and alert state, that was lost (truncated: a full disk, a copy or restore gone wrong)"
            );
        }
        let fail = |op| {
            let path = path.clone();
            move |e: Failure| e.into_store_error(path, op)
        };
        let mut conn = Connection::open(&path).map_err(|e| fail("open")(e.into()))?;
        configure(&conn).map_err(fail("configure"))?;
        // Files an older version made (or a umask made looser) are tightened.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
        schema::migrate(&mut conn).map_err(fail("migrate schema"))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                conn: Mutex::new(conn),
                sent: Mutex::default(),
                health: HealthLog::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// SQLite's quick check (`PRAGMA quick_check`) of the file as it is on
    /// disk: the structure of every page, in time linear in its size.
    /// `doctor` and the daemon's start run it, and the daemon now and then.
    /// It reads through a connection of its own: the shared one may hold
    /// the pages in its cache and never see that the file under them was
    /// damaged, until another process's write makes it read them again.
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let checked = (|| {
            let conn = Connection::open_with_flags(
                &self.inner.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let mut stmt = conn.prepare("PRAGMA quick_check")?;
            let problems = stmt
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|line| line != "ok")
                .collect::<Vec<_>>();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(Failure::Integrity(problems))
            }
        })()
        .map_err(|e: Failure| e.into_store_error(self.inner.path.clone(), "quick check"));
        if let Err(e) = &checked {
            self.failed("quick check", e);
        }
        checked
    }

    /// Runs SQLite's full integrity check, a foreign-key check and a check
    /// that no run is both written ahead and recorded; `Ok` when all are
    /// clean, otherwise every problem they reported.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        self.with("integrity check", |conn| {
            let mut problems = Vec::new();
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            for line in stmt.query_map([], |row| row.get::<_, String>(0))? {
                let line = line?;
                if line != "ok" {
                    problems.push(line);
                }
            }
            let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
            let orphans = stmt.query_map([], |row| {
                Ok(format!(
                    "{} row {} has no parent in {}",
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                    row.get::<_, String>(2)?,
                ))
            })?;
            for orphan in orphans {
                problems.push(orphan?);
            }
            // Recording a run deletes its started row in the same transaction.
            let mut stmt = conn.prepare(
                "SELECT correlation_id FROM started_runs
                 WHERE correlation_id IN (SELECT correlation_id FROM runs)",
            )?;
            for id in stmt.query_map([], |row| row.get::<_, String>(0))? {
                problems.push(format!("run {} is both started and recorded", id?));
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(Failure::Integrity(problems))
            }
        })
    }

    /// Messages submitted (runs the gateway accepted, so with a message id)
    /// since `since`, across all probes: what the cost guard counts. A run
    /// cut off by a shutdown or a crash counts too: its message may have
    /// gone out before the answer was recorded, and a cost guard errs high.
    /// Counted incrementally (see `sent`): a call costs the runs recorded
    /// since the last one, not the day's.
    pub fn messages_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with("count messages", |conn| {
            self.inner
                .sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .count_since(conn, since)
        })
    }

    /// A trivial write, for the daemon's /healthz: proves the file is
    /// writable and not locked out by another process.
    pub fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with("touch", |conn| {
            conn.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                [millis(now)],
            )?;
            Ok(())
        })
    }

    /// Runs `f` on the connection, attaching the path and `op` to its errors.
    fn with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave a transaction half
        // done (rusqlite rolls back on drop), so a poisoned lock still
        // guards a consistent connection.
        let mut conn = self
            .inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut conn).map_err(|e| e.into_store_error(self.inner.path.clone(), op));
        drop(conn);
        if let Err(e) = &result {
            self.failed(op, e);
        }
        result
    }

    /// Counts a failed operation for [`Store::failed_within`] and the metrics.
    fn failed(&self, op: &'static str, e: &StoreError) {
        self.inner.health.failed(op, e);
    }

    /// Failed operations since the store was opened, by operation (the
    /// `op` label of `sms_canary_store_errors_total`).
    pub fn error_counts(&self) -> Vec<(&'static str, u64)> {
        self.inner.health.error_counts()
    }

    /// The latest failure, if it happened within `window`.
    pub fn failed_within(&self, window: Duration) -> Option<String> {
        self.inner.health.failed_within(window)
    }
}

/// A store's failures since it was opened, shared by both backends.
#[derive(Debug, Default)]
pub(crate) struct HealthLog(Mutex<Health>);

impl HealthLog {
    pub(crate) fn failed(&self, op: &'static str, e: &StoreError) {
        let mut health = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *health.errors.entry(op).or_default() += 1;
        health.last = Some((std::time::Instant::now(), e.to_string()));
    }

    pub(crate) fn error_counts(&self) -> Vec<(&'static str, u64)> {
        let health = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        health.errors.iter().map(|(op, n)| (*op, *n)).collect()
    }

    pub(crate) fn failed_within(&self, window: Duration) -> Option<String> {
        let health = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        health
            .last
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= window)
            .map(|(_, e)| e.clone())
    }
}

fn configure(conn: &Connection) -> Result<(), Failure> {
    // First, so that even switching the journal mode waits for other processes.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        // With WAL, NORMAL loses no committed transaction on a process crash
        // and keeps the file consistent on power loss; FULL would add an
        // fsync per commit for nothing a monitor needs.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    } else {
        // Some filesystems (network mounts) refuse WAL; a rollback journal
        // needs FULL to stay consistent on power loss.
        tracing::warn!(journal_mode = %mode, "state store: WAL unavailable, using a rollback journal");
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// A timestamp as stored: unix milliseconds.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn timestamp(ms: i64) -> Result<DateTime<Utc>, Failure> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Failure::corrupt(format!("timestamp {ms} ms is out of range")))
}

/// A duration as stored: milliseconds with microsecond precision.
fn duration_ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

fn duration(ms: f64) -> Result<Duration, Failure> {
    if ms.is_finite() && ms >= 0.0 {
        Ok(Duration::from_micros((ms * 1e3).round() as u64))
    } else {
        Err(Failure::corrupt(format!("duration {ms} ms")))
    }
}

fn opt_duration(ms: Option<f64>) -> Result<Option<Duration>, Failure> {
    ms.map(duration).transpose()
}

/// A count or limit as SQLite binds it; limits past `i64::MAX` mean "all".
fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> Result<u64, Failure> {
    u64::try_from(n).map_err(|_| Failure::corrupt(format!("negative count {n}")))
}

fn small(n: i64, what: &str) -> Result<u32, Failure> {
    u32::try_from(n).map_err(|_| Failure::corrupt(format!("{what} {n} out of range")))
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|source| Failure::Encode { what, source })
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Failure> {
    serde_json::from_str(json).map_err(|e| Failure::corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders shared by the store's unit tests.

    use super::*;
    use crate::alert::{AlertState, Transition};
    use crate::probe::RunResult;

    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        (dir, store)
    }

    /// A fixed instant plus `secs`, at millisecond precision like the store.
    pub fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    pub fn run(probe: &str, id: &str, at: DateTime<Utc>, outcome: Outcome) -> RunResult {
        let arrived = matches!(outcome, Outcome::Ok | Outcome::Slow);
        RunResult {
            probe: probe.into(),
            gateway: "sandbox".into(),
            receiver: "inbox".into(),
            correlation_id: id.into(),
            started_at: at,
            outcome,
            reason: (!arrived).then(|| "not seen before the timeout".into()),
            code: None,
            latency: arrived.then(|| Duration::from_micros(1_234_567)),
            threshold: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            phases: Phases {
                submit: Some(Duration::from_millis(120)),
                sent: None,
                delivered: None,
                received: arrived.then(|| Duration::from_micros(1_234_567)),
            },
            message_id: Some(format!("SM{id}")),
            attempts: 1,
            findings: vec![],
            gateway_errors: vec![],
        }
    }

    /// A firing notice caused by `run`, with a fresh id.
    pub fn notice(run: &RunResult, at: DateTime<Utc>) -> Notification {
        let state = AlertState::default();
        Notification::new(
            Transition::Firing,
            run,
            "test",
            &state,
            &state,
            crate::alert::Facts::default(),
            at,
        )
    }

    pub fn item(channel: &str, run: &RunResult, at: DateTime<Utc>) -> OutboxItem {
        OutboxItem {
            channel: channel.into(),
            notification: notice(run, at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_store_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Store>();
    }

    #[test]
    fn open_creates_the_dir_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("a/b");
        let store = Store::open(&state_dir).unwrap();
        assert_eq!(store.path(), state_dir.join(DB_FILE));
        assert!(format!("{store:?}").contains("state.db"));
        drop(store);
        Store::open(&state_dir).unwrap().integrity_check().unwrap();
    }

    #[test]
    fn uses_wal_and_foreign_keys() {
        let (_dir, store) = store();
        store
            .with("test", |conn| {
                let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
                let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                assert_eq!((mode.as_str(), fk, sync), ("wal", 1, 1));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DB_FILE),
            b"this is not sqlite, not at all....",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(DB_FILE), "{err}");
    }

    #[test]
    fn integrity_check_reports_orphaned_outbox_rows() {
        let (_dir, store) = store();
        store.integrity_check().unwrap();
        store
            .with("test", |conn| {
                conn.pragma_update(None, "foreign_keys", false)?;
                conn.execute(
                    "INSERT INTO outbox (notification_id, channel, probe, correlation_id, payload, created_at, next_attempt_at)
                     VALUES ('n', 'c', 'p', 'no-such-run', '{}', 0, 0)",
                    [],
                )?;
                conn.pragma_update(None, "foreign_keys", true)?;
                Ok(())
            })
            .unwrap();
        match store.integrity_check() {
            Err(StoreError::Integrity { problems, .. }) => {
                assert!(problems[0].contains("outbox"), "{problems:?}");
            }
            other => panic!("expected an integrity error, got {other:?}"),
        }
    }

    #[test]
    fn touch_writes() {
        let (_dir, store) = store();
        store.touch(t(0)).unwrap();
        store.touch(t(1)).unwrap();
        let at: i64 = store
            .with("test", |conn| {
                Ok(conn.query_row("SELECT at FROM heartbeat", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(at, millis(t(1)));
    }

    #[test]
    fn durations_round_trip_to_the_microsecond() {
        for d in [0, 1, 999, 1_234_567, 86_400_000_000] {
            let d = Duration::from_micros(d);
            assert_eq!(duration(duration_ms(d)).unwrap(), d);
        }
        assert!(duration(-1.0).is_err());
        assert!(duration(f64::NAN).is_err());
        assert!(timestamp(i64::MAX).is_err());
    }
}
