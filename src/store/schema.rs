//! The database schema and its migrations. The schema version lives in
//! `PRAGMA user_version`: step `i` of [`MIGRATIONS`] moves a file from version
//! `i` to `i + 1`, so a new release only appends steps, never edits old ones.
//! All pending steps run in one transaction, so a crash mid-upgrade leaves the
//! old version intact, and a file newer than the code is refused rather than
//! written by code that does not know its tables.
//!
//! Times are unix milliseconds (INTEGER: compact, ordered, indexable);
//! durations are milliseconds as REAL with microsecond precision, like the
//! JSON report. Tables are STRICT so a wrongly typed write fails loudly.

use rusqlite::{Connection, TransactionBehavior};

use super::error::Failure;

/// The schema steps, oldest first. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: runs, alert state, the notification outbox, silences, leases, heartbeat.
    r#"
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    probe          TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL UNIQUE,
    instance       TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    reason         TEXT,
    code           TEXT,
    latency_ms     REAL,
    threshold_ms   REAL    NOT NULL,
    timeout_ms     REAL    NOT NULL,
    submit_ms      REAL,
    sent_ms        REAL,
    delivered_ms   REAL,
    received_ms    REAL,
    message_id     TEXT,
    attempts       INTEGER NOT NULL,
    findings       TEXT    NOT NULL,
    interrupted    INTEGER NOT NULL CHECK (interrupted IN (0, 1))
) STRICT;
CREATE INDEX runs_probe_started ON runs (probe, started_at);
-- The cost guard counts messages across all probes by time.
CREATE INDEX runs_started ON runs (started_at);

CREATE TABLE alert_state (
    probe      TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE outbox (
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    probe           TEXT    NOT NULL,
    correlation_id  TEXT    REFERENCES runs (correlation_id),
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    dead            INTEGER NOT NULL DEFAULT 0 CHECK (dead IN (0, 1)),
    PRIMARY KEY (notification_id, channel)
) STRICT;
-- The sender's poll only ever looks at pending entries.
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead = 0;
CREATE INDEX outbox_run ON outbox (correlation_id);

CREATE TABLE silences (
    probe      TEXT    PRIMARY KEY,
    until      INTEGER NOT NULL,
    reason     TEXT,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE leases (
    probe      TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
"#,
    // 2: runs written ahead, before their message is sent, so that a run cut
    // off by a crash is found and recorded as interrupted by the next start.
    r#"
CREATE TABLE started_runs (
    correlation_id TEXT    PRIMARY KEY,
    probe          TEXT    NOT NULL,
    instance       TEXT    NOT NULL,
    holder         TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    threshold_ms   REAL    NOT NULL,
    timeout_ms     REAL    NOT NULL
) STRICT;
CREATE INDEX started_runs_holder ON started_runs (holder);
"#,
    // 3: an outbox entry is claimed by one sender before it is sent, so a
    // daemon and a cron check sharing the store never send it both. The
    // claim expires, so a sender that died mid-send leaves it to the next.
    r#"
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
"#,
    // 4: what a channel called a delivered message (Slack's `ts`), so the
    // notices that follow it (a reminder, the resolve) can thread under it.
    r#"
ALTER TABLE outbox ADD COLUMN delivered_ref TEXT;
"#,
    // 5: hourly rollups per probe (see `rollups`), counted as each run is
    // recorded; the runs already stored are counted in by `backfill`.
    r#"
CREATE TABLE rollups (
    probe TEXT    NOT NULL,
    hour  INTEGER NOT NULL,
    tally TEXT    NOT NULL,
    PRIMARY KEY (probe, hour)
) STRICT;
CREATE INDEX rollups_hour ON rollups (hour);
"#,
    // 6: the same tallies a UTC day at a time, so a window of a year reads
    // 365 rows a probe, not 8,760; filled from the hourly rows by
    // `backfill_days`.
    r#"
CREATE TABLE daily_rollups (
    probe TEXT    NOT NULL,
    day   INTEGER NOT NULL,
    tally TEXT    NOT NULL,
    PRIMARY KEY (probe, day)
) STRICT;
CREATE INDEX daily_rollups_day ON daily_rollups (day);
"#,
    // 7: the failed runs alone, so incidents over a month read the few runs
    // that failed, not every run of it.
    r#"
CREATE INDEX runs_failed ON runs (probe, started_at) WHERE outcome != 'ok';
"#,
    // 8: counts of what operators did by hand (dead letters re-queued or
    // purged), kept with the store so the daemon can export what a CLI did.
    r#"
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
"#,
];

/// The step that created the rollups, after which the runs stored before
/// it are counted into them.
const ROLLUPS_STEP: usize = 4;

/// The step that created the daily rollups, after which the hourly ones
/// are added up into them.
const DAILY_ROLLUPS_STEP: usize = 5;

/// The schema version this code writes.
pub(crate) fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the file up to [`supported_version`], or refuses a newer one.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Failure> {
    // The common case (every cron run) reads the version without taking the
    // write lock, so opening an up-to-date store never waits on a writer.
    if user_version(conn)? == supported_version() {
        return Ok(());
    }
    // IMMEDIATE: two processes opening a fresh file at once serialize here,
    // and the second sees the first's version instead of re-running steps.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    let supported = supported_version();
    if found > supported {
        return Err(Failure::TooNew { found, supported });
    }
    let done = usize::try_from(found)
        .map_err(|_| Failure::corrupt(format!("negative schema version {found}")))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(step)?;
        if i == ROLLUPS_STEP {
            super::rollups::backfill(&tx)?;
        }
        if i == DAILY_ROLLUPS_STEP {
            super::rollups::backfill_days(&tx)?;
        }
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), supported_version());
        migrate(&mut conn).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 10);
    }

    #[test]
    fn a_version_1_file_keeps_its_runs_and_outbox_and_gains_the_later_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome,
                 threshold_ms, timeout_ms, attempts, findings, interrupted)
             VALUES ('p', 'old', 'i', 0, 'ok', 1.0, 2.0, 1, '[]', 0)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO outbox (notification_id, channel, probe, correlation_id, payload,
                 created_at, next_attempt_at)
             VALUES ('n', 'c', 'p', 'old', '{}', 0, 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), supported_version());
        let runs: i64 = conn
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        let started: i64 = conn
            .query_row("SELECT COUNT(*) FROM started_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!((runs, started), (1, 0));
        // Its runs are counted into the rollups.
        let rolled: String = conn
            .query_row("SELECT tally FROM rollups WHERE probe = 'p'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(rolled.contains("\"ok\":1"), "{rolled}");
        // And its hours into days.
        let daily: String = conn
            .query_row(
                "SELECT tally FROM daily_rollups WHERE probe = 'p' AND day = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(daily.contains("\"ok\":1"), "{daily}");
        // Its outbox entries are kept, unclaimed.
        let unclaimed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE claimed_by IS NULL AND claimed_until IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unclaimed, 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", supported_version() + 1)
            .unwrap();
        match migrate(&mut conn) {
            Err(Failure::TooNew { found, supported }) => {
                assert_eq!(
                    (found, supported),
                    (supported_version() + 1, supported_version())
                );
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
    }
}
