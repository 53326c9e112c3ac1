//! What can go wrong with the state store. Every message names the database
//! file, because cron runs, a daemon and an operator's `history` may all be
//! looking at different state dirs and the first question is always "which one?".

use std::path::PathBuf;

/// An error from the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state dir could not be created.
    #[error("state store {}: cannot create the state dir: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused an operation (locked past the busy timeout, disk full, not a database…).
    #[error("state store {}: {op}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        /// What the store was doing, e.g. "record run".
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer sms-canary; running old code on it could lose data.
    #[error(
        "state store {}: schema version {found} is newer than this sms-canary supports ({supported}); upgrade sms-canary or point state_dir elsewhere",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A row could not be decoded: a bad timestamp, an unknown outcome, broken JSON.
    #[error("state store {}: {op}: corrupt data: {detail}", path.display())]
    Corrupt {
        path: PathBuf,
        op: &'static str,
        detail: String,
    },
    /// A value could not be turned into JSON for storage.
    #[error("state store {}: {op}: cannot encode {what}: {source}", path.display())]
    Encode {
        path: PathBuf,
        op: &'static str,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// `integrity_check` found problems.
    #[error("state store {}: integrity check failed: {}", path.display(), problems.join("; "))]
    Integrity {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// A process's liveness lock file could not be created or locked.
    #[error("state store {}: holder lock file: {source}", path.display())]
    Holder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The PostgreSQL server could not be reached or refused the connection.
    /// `target` is the DSN without its password.
    #[error("state store {target}: {problem}")]
    Connect {
        target: String,
        problem: ConnectProblem,
    },
    /// PostgreSQL refused an operation on an open connection.
    #[error("state store {target}: {op}: {source}")]
    Postgres {
        target: String,
        op: &'static str,
        #[source]
        source: postgres::Error,
    },
    /// The database was migrated by a newer sms-canary.
    #[error(
        "state store {target}: schema version {found} is newer than this sms-canary supports ({supported}); upgrade sms-canary or point `store` at another database"
    )]
    PgTooNew {
        target: String,
        found: i64,
        supported: i64,
    },
    /// A PostgreSQL row could not be decoded.
    #[error("state store {target}: {op}: corrupt data: {detail}")]
    PgCorrupt {
        target: String,
        op: &'static str,
        detail: String,
    },
    /// An outbox update named a notification the store does not hold.
    #[error("state store {}: no outbox entry for notification {notification_id} on channel {channel}", path.display())]
    UnknownNotification {
        path: PathBuf,
        notification_id: String,
        channel: String,
    },
}

/// Why connecting to a PostgreSQL store failed, in the words an operator
/// acts on. The server's own message is kept; it never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectProblem {
    #[error(
        "cannot reach the server ({0}); is PostgreSQL running there, and are the host and port right?"
    )]
    Unreachable(String),
    #[error(
        "the server refused the credentials ({0}); check the user and password in [canary] store"
    )]
    Credentials(String),
    #[error("the database does not exist on the server ({0}); create it or fix the DSN")]
    NoDatabase(String),
    #[error(
        "TLS failed ({0}); with sslmode=require the server's certificate must be valid for its host name"
    )]
    Tls(String),
    #[error("the server ended the connection ({0})")]
    Other(String),
}

/// A failure inside one store operation, before the path and the operation
/// name are attached: lets the bodies use `?` on both SQLite and decoding.
#[derive(Debug)]
pub(crate) enum Failure {
    Sql(rusqlite::Error),
    Corrupt(String),
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    TooNew {
        found: i64,
        supported: i64,
    },
    Integrity(Vec<String>),
    UnknownNotification {
        notification_id: String,
        channel: String,
    },
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

impl Failure {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Failure {
        Failure::Corrupt(what.to_string())
    }

    /// Says which record a corrupt value belongs to.
    pub(crate) fn context(self, what: &str) -> Failure {
        match self {
            Failure::Corrupt(detail) => Failure::Corrupt(format!("{what}: {detail}")),
            other => other,
        }
    }

    pub(crate) fn into_store_error(self, path: PathBuf, op: &'static str) -> StoreError {
        match self {
            Failure::Sql(source) => StoreError::Sqlite { path, op, source },
            Failure::Corrupt(detail) => StoreError::Corrupt { path, op, detail },
            Failure::Encode { what, source } => StoreError::Encode {
                path,
                op,
                what,
                source,
            },
            Failure::TooNew { found, supported } => StoreError::TooNew {
                path,
                found,
                supported,
            },
            Failure::Integrity(problems) => StoreError::Integrity { path, problems },
            Failure::UnknownNotification {
                notification_id,
                channel,
            } => StoreError::UnknownNotification {
                path,
                notification_id,
                channel,
            },
        }
    }
}
