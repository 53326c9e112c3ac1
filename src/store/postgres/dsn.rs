//! Where a PostgreSQL store lives: `[canary] store = "postgres://..."`, read
//! and checked once. The DSN carries the password, so this type never shows
//! it: errors, `Debug`, logs and `validate`'s plan print [`PgDsn::target`],
//! the DSN with the password left out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

/// The query parameters a DSN may carry; anything else is refused so that a
/// typo (`sslmod=require`) does not silently connect in clear text.
const PARAMS: &[&str] = &["sslmode", "connect_timeout", "application_name", "options"];

/// How long connecting waits when the DSN sets no `connect_timeout`: an
/// unreachable server is an error within seconds, never a hung cron job.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a DSN asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Clear text only.
    Disable,
    /// TLS when the server offers it (PostgreSQL's default).
    Prefer,
    /// TLS or no connection; the server's certificate is verified against
    /// the platform's trusted roots.
    Require,
}

/// A PostgreSQL connection string as configured; its password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct PgDsn {
    /// The DSN as given (after `${VAR}` expansion); holds the password.
    raw: String,
    /// `postgres://user@host:port/db`, for messages.
    target: String,
    ssl: SslMode,
}

/// Why a DSN was refused. The messages never quote the DSN itself: its
/// password may be in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("not a URL ({0}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    Syntax(String),
    #[error(
        "scheme `{0}` is not a PostgreSQL DSN; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    Scheme(String),
    #[error("the DSN names no host; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    NoHost,
    #[error("the DSN names no user; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    NoUser,
    #[error("the DSN names no database; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    NoDatabase,
    #[error("unknown parameter `{0}` (known: {known})", known = PARAMS.join(", "))]
    UnknownParam(String),
    #[error("sslmode `{0}` is not one of disable, prefer, require")]
    SslMode(String),
    #[error("{0}")]
    Invalid(String),
}

impl PgDsn {
    /// `postgres://user@host:port/db`: the DSN without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn ssl(&self) -> SslMode {
        self.ssl
    }

    /// The driver's settings, with [`CONNECT_TIMEOUT`] unless the DSN sets one.
    pub(crate) fn config(&self) -> postgres::Config {
        // Checked by `from_str`, which parsed this very string.
        let mut config =
            postgres::Config::from_str(&self.raw).unwrap_or_else(|_| postgres::Config::new());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sms-canary");
        }
        config
    }
}

impl FromStr for PgDsn {
    type Err = DsnError;

    fn from_str(raw: &str) -> Result<PgDsn, DsnError> {
        // url's messages quote no input, so they are safe to pass on.
        let url = Url::parse(raw).map_err(|e| DsnError::Syntax(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(DsnError::Scheme(url.scheme().to_string()));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(DsnError::NoHost)?;
        if url.username().is_empty() {
            return Err(DsnError::NoUser);
        }
        let database = url.path().trim_start_matches('/');
        if database.is_empty() || database.contains('/') {
            return Err(DsnError::NoDatabase);
        }
        let mut ssl = SslMode::Prefer;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    ssl = match value.as_ref() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        other => return Err(DsnError::SslMode(other.to_string())),
                    }
                }
                "connect_timeout" if value.parse::<u64>().is_err() => {
                    return Err(DsnError::Invalid(format!(
                        "connect_timeout `{value}` is not a whole number of seconds"
                    )));
                }
                known if PARAMS.contains(&known) => {}
                other => return Err(DsnError::UnknownParam(other.to_string())),
            }
        }
        // The driver's own reading must agree; its messages name the
        // offending parameter, never the password.
        postgres::Config::from_str(raw)
            .map_err(|e| DsnError::Invalid(format!("the driver refused it: {e}")))?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(PgDsn {
            raw: raw.to_string(),
            target: format!(
                "{}://{}@{host}{port}/{database}",
                url.scheme(),
                url.username()
            ),
            ssl,
        })
    }
}

impl fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgDsn").field(&self.target).finish()
    }
}

impl fmt::Display for PgDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.target)
    }
}

impl<'de> Deserialize<'de> for PgDsn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_prints() {
        let dsn: PgDsn = "postgres://canary:s3cr%40t-pw@db.internal:5433/canary?sslmode=require"
            .parse()
            .unwrap();
        assert_eq!(dsn.target(), "postgres://canary@db.internal:5433/canary");
        assert_eq!(dsn.ssl(), SslMode::Require);
        for shown in [format!("{dsn}"), format!("{dsn:?}"), format!("{dsn:#?}")] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
        }
        let config = dsn.config();
        assert_eq!(config.get_password(), Some(&b"s3cr@t-pw"[..]));
        assert_eq!(config.get_dbname(), Some("canary"));
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn bad_dsns_are_refused_without_quoting_them() {
        for (raw, expect) in [
            ("db.internal/canary", "not a URL"),
            ("mysql://u:pw-secret@h/db", "scheme `mysql`"),
            ("postgres://u:pw-secret@/db", "empty host"),
            ("postgres:///db", "no host"),
            ("postgres://h/db", "no user"),
            ("postgres://u:pw-secret@h", "no database"),
            ("postgres://u:pw-secret@h/", "no database"),
            (
                "postgres://u:pw-secret@h/db?sslmod=require",
                "unknown parameter `sslmod`",
            ),
            (
                "postgres://u:pw-secret@h/db?sslmode=verify-full",
                "sslmode `verify-full`",
            ),
            (
                "postgres://u:pw-secret@h/db?connect_timeout=soon",
                "connect_timeout",
            ),
        ] {
            let err = raw.parse::<PgDsn>().unwrap_err().to_string();
            assert!(err.contains(expect), "{raw}: {err}");
            assert!(!err.contains("pw-secret"), "{raw}: {err}");
        }
    }

    #[test]
    fn prefer_is_the_default_and_postgresql_is_a_scheme_too() {
        let dsn: PgDsn = "postgresql://u@127.0.0.1/test?connect_timeout=3"
            .parse()
            .unwrap();
        assert_eq!(dsn.ssl(), SslMode::Prefer);
        assert_eq!(
            dsn.config().get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }
}
