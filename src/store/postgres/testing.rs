//! A database of its own for each test: a fresh schema on the test server,
//! put first on the connection's `search_path` and dropped afterwards.
//! The server is `$SMS_CANARY_TEST_POSTGRES`, else the local one with trust
//! auth; on a machine without it the tests skip, saying so, unless
//! `SMS_CANARY_REQUIRE_PEERS=1`, where a missing server fails them.

use super::PgDsn;

/// The server the tests use when no variable names one.
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema for one test; dropped with it.
pub(crate) struct TestDb {
    /// Connects into the test's schema.
    pub dsn: PgDsn,
    pub schema: String,
    server: String,
}

impl TestDb {
    /// A DSN for the same server and schema with `params` added (e.g.
    /// `sslmode=require`).
    pub fn dsn_with(&self, params: &str) -> PgDsn {
        format!("{}?{params}&{}", self.server, search_path(&self.schema))
            .parse()
            .unwrap()
    }

    /// A plain connection to the server, into the test's schema.
    pub fn admin(&self) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.server, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .unwrap();
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn search_path(schema: &str) -> String {
    format!("options=-c%20search_path%3D{schema}")
}

/// The server's DSN, for tests that need it bare.
pub(crate) fn server() -> String {
    std::env::var("SMS_CANARY_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

/// A fresh schema on the test server, or `None` (having said why) when
/// there is no server and peers are not required.
pub(crate) fn test_db() -> Option<TestDb> {
    let server = server();
    let mut client = match postgres::Client::connect(&server, postgres::NoTls) {
        Ok(client) => client,
        Err(e) => {
            let required = std::env::var("SMS_CANARY_REQUIRE_PEERS")
                .is_ok_and(|v| !matches!(v.trim(), "" | "0"));
            let why = format!(
                "PostgreSQL at {} is not reachable ({e}); install it (Debian/Ubuntu: apt-get install postgresql) \
                 or set SMS_CANARY_TEST_POSTGRES",
                server.split('@').next_back().unwrap_or_default()
            );
            assert!(!required, "SMS_CANARY_REQUIRE_PEERS is set: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let schema = format!("t_{}", ulid::Ulid::generate().to_string().to_lowercase());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let dsn = format!("{server}?{}", search_path(&schema))
        .parse()
        .unwrap();
    Some(TestDb {
        dsn,
        schema,
        server,
    })
}
