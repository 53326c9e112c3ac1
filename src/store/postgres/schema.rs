//! The PostgreSQL schema and its migrations. Like the SQLite file's
//! `user_version`, the version is a number that only grows: step `i` of
//! [`MIGRATIONS`] moves a database from version `i` to `i + 1`, and each
//! applied step is a row of `schema_version`. Several daemons may start
//! against one database at once: the steps run in one transaction under a
//! transaction-scoped advisory lock, so exactly one of them applies each
//! step and the others find it done. A database newer than the code is
//! refused, naming both versions.
//!
//! Columns mirror the SQLite schema (unix milliseconds as BIGINT, durations
//! as milliseconds in DOUBLE PRECISION), so both backends store and compare
//! the same numbers.

use postgres::Transaction;

use super::PgFailure;

/// The advisory lock key every sms-canary migrating a database takes
/// ("smscanry" in ASCII): other applications sharing the database are
/// unlikely to pick it.
const MIGRATION_LOCK: i64 = 0x736d_7363_616e_7279;

/// The schema steps, oldest first. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite store holds at its version 8.
    r#"
CREATE TABLE runs (
    id             BIGSERIAL PRIMARY KEY,
    probe          TEXT             NOT NULL,
    correlation_id TEXT             NOT NULL UNIQUE,
    instance       TEXT             NOT NULL,
    started_at     BIGINT           NOT NULL,
    outcome        TEXT             NOT NULL,
    reason         TEXT,
    code           TEXT,
    latency_ms     DOUBLE PRECISION,
    threshold_ms   DOUBLE PRECISION NOT NULL,
    timeout_ms     DOUBLE PRECISION NOT NULL,
    submit_ms      DOUBLE PRECISION,
    sent_ms        DOUBLE PRECISION,
    delivered_ms   DOUBLE PRECISION,
    received_ms    DOUBLE PRECISION,
    message_id     TEXT,
    attempts       BIGINT           NOT NULL,
    findings       TEXT             NOT NULL,
    interrupted    BOOLEAN          NOT NULL
);
CREATE INDEX runs_probe_started ON runs (probe, started_at);
CREATE INDEX runs_started ON runs (started_at);
-- Incidents read the failed runs alone.
CREATE INDEX runs_failed ON runs (probe, started_at) WHERE outcome != 'ok';

CREATE TABLE alert_state (
    probe      TEXT   PRIMARY KEY,
    state      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    probe           TEXT    NOT NULL,
    correlation_id  TEXT    REFERENCES runs (correlation_id),
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    dead            BOOLEAN NOT NULL DEFAULT FALSE,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    delivered_ref   TEXT,
    -- Insertion order, where SQLite has its rowid: oldest first among equals.
    seq             BIGSERIAL NOT NULL,
    PRIMARY KEY (notification_id, channel)
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND NOT dead;
CREATE INDEX outbox_run ON outbox (correlation_id);

CREATE TABLE silences (
    probe      TEXT   PRIMARY KEY,
    until      BIGINT NOT NULL,
    reason     TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE leases (
    probe      TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE heartbeat (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);

CREATE TABLE started_runs (
    correlation_id TEXT             PRIMARY KEY,
    probe          TEXT             NOT NULL,
    instance       TEXT             NOT NULL,
    holder         TEXT             NOT NULL,
    started_at     BIGINT           NOT NULL,
    threshold_ms   DOUBLE PRECISION NOT NULL,
    timeout_ms     DOUBLE PRECISION NOT NULL
);
CREATE INDEX started_runs_holder ON started_runs (holder);

CREATE TABLE rollups (
    probe TEXT   NOT NULL,
    hour  BIGINT NOT NULL,
    tally TEXT   NOT NULL,
    PRIMARY KEY (probe, hour)
);
CREATE INDEX rollups_hour ON rollups (hour);

CREATE TABLE daily_rollups (
    probe TEXT   NOT NULL,
    day   BIGINT NOT NULL,
    tally TEXT   NOT NULL,
    PRIMARY KEY (probe, day)
);
CREATE INDEX daily_rollups_day ON daily_rollups (day);

-- Counts of what operators did by hand (dead letters re-queued or purged).
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

-- When each receiving phone last gave a sign of life (a ping, a message).
CREATE TABLE receiver_heard (
    receiver TEXT   PRIMARY KEY,
    heard_at BIGINT NOT NULL
);
"#,
];

/// The schema version this code writes.
pub fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database (the first schema on the connection's `search_path`)
/// up to [`supported_version`], or refuses a newer one.
pub(super) fn migrate(client: &mut postgres::Client) -> Result<(), PgFailure> {
    let mut tx = client.transaction()?;
    // Held until this transaction ends: a second daemon starting now waits
    // here and then finds every step applied.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT      PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found = version(&mut tx)?;
    let supported = supported_version();
    if found > supported {
        return Err(PgFailure::TooNew { found, supported });
    }
    let done = usize::try_from(found)
        .map_err(|_| PgFailure::Corrupt(format!("negative schema version {found}")))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.batch_execute(step)?;
        // A primary key: a step applied twice fails instead of passing unseen.
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The database's schema version: 0 for a database never migrated.
pub(super) fn version(tx: &mut Transaction<'_>) -> Result<i64, PgFailure> {
    let row = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])?;
    Ok(row.get(0))
}
