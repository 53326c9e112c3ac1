//! The PostgreSQL store's own behaviour: migrations under concurrent
//! starts, refusing a newer schema, connection failures in an operator's
//! words, TLS, and healing a dropped connection. What both backends share
//! is tested in `backend_suite`.

use super::testing::{TestDb, server, test_db};
use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
}

#[test]
fn migrations_run_once_when_several_members_start_together() {
    let Some(db) = test_db() else { return };
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let dsn = db.dsn.clone();
            std::thread::spawn(move || PgStore::connect(&dsn).map(|s| s.schema_version()))
        })
        .collect();
    for start in starts {
        let version = start.join().unwrap().unwrap().unwrap();
        assert_eq!(version, supported_version());
    }
    // One row per step applied: a step applied twice would have failed on
    // the primary key, and one applied by nobody would be missing.
    let steps: i64 = db
        .admin()
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(steps, supported_version());
    // Reconnecting to a current database applies nothing.
    PgStore::connect(&db.dsn).unwrap();
    let steps: i64 = db
        .admin()
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(steps, supported_version());
}

#[test]
fn a_schema_from_a_newer_sms_canary_is_refused_naming_both_versions() {
    let Some(db) = test_db() else { return };
    PgStore::connect(&db.dsn).unwrap();
    let newer = supported_version() + 3;
    db.admin()
        .execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&newer],
        )
        .unwrap();
    let err = PgStore::connect(&db.dsn).unwrap_err();
    assert!(
        matches!(err, StoreError::PgTooNew { found, supported, .. } if found == newer && supported == supported_version()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {newer} is newer"))
            && message.contains(&format!("({})", supported_version())),
        "{message}"
    );
}

/// The server's DSN with `user`, a password and `database` swapped in.
fn variant(user: &str, database: &str) -> PgDsn {
    let server = server();
    let rest = server.split_once('@').map(|(_, r)| r).unwrap_or_default();
    let host = rest.split('/').next().unwrap_or_default();
    format!("postgres://{user}:pw-secret-123@{host}/{database}?connect_timeout=5")
        .parse()
        .unwrap()
}

fn connect_problem(dsn: &PgDsn) -> (ConnectProblem, String) {
    match PgStore::connect(dsn) {
        Err(err @ StoreError::Connect { .. }) => {
            let message = err.to_string();
            assert!(!message.contains("pw-secret-123"), "{message}");
            assert!(message.contains(dsn.target()), "{message}");
            let StoreError::Connect { problem, .. } = err else {
                unreachable!()
            };
            (problem, message)
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[test]
fn an_unknown_user_is_a_credentials_error_without_the_password() {
    let Some(_db) = test_db() else { return };
    let (problem, message) = connect_problem(&variant("no_such_canary_role", "test"));
    assert!(
        matches!(problem, ConnectProblem::Credentials(_)),
        "{message}"
    );
    assert!(message.contains("check the user and password"), "{message}");
}

#[test]
fn a_missing_database_is_named_as_missing() {
    let Some(_db) = test_db() else { return };
    let (problem, message) = connect_problem(&variant("postgres", "no_such_canary_db"));
    assert!(
        matches!(problem, ConnectProblem::NoDatabase(_)),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn an_unreachable_server_is_an_error_within_the_timeout() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn: PgDsn = format!("postgres://canary:pw-secret-123@127.0.0.1:{port}/canary")
        .parse()
        .unwrap();
    let started = std::time::Instant::now();
    let (problem, message) = connect_problem(&dsn);
    assert!(
        matches!(problem, ConnectProblem::Unreachable(_)),
        "{message}"
    );
    assert!(message.contains("is PostgreSQL running"), "{message}");
    assert!(
        started.elapsed() < CONNECT_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
}

fn server_has_tls(db: &TestDb) -> bool {
    db.admin()
        .query_one("SHOW ssl", &[])
        .map(|row| row.get::<_, String>(0) == "on")
        .unwrap_or(false)
}

#[test]
fn prefer_encrypts_and_require_verifies_the_certificate() {
    let Some(db) = test_db() else { return };
    if !server_has_tls(&db) {
        eprintln!("skipped: the test server has ssl = off");
        return;
    }
    let store = PgStore::connect(&db.dsn_with("sslmode=prefer")).unwrap();
    let encrypted = store
        .with("test", |client| {
            Ok(client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .get::<_, bool>(0))
        })
        .unwrap();
    assert!(encrypted, "prefer uses the TLS the server offers");
    // The local server's certificate is self-signed: require refuses it.
    let (problem, message) = connect_problem(&db.dsn_with("sslmode=require"));
    assert!(matches!(problem, ConnectProblem::Tls(_)), "{message}");
    let plain = PgStore::connect(&db.dsn_with("sslmode=disable")).unwrap();
    let encrypted = plain
        .with("test", |client| {
            Ok(client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .get::<_, bool>(0))
        })
        .unwrap();
    assert!(!encrypted, "disable stays in clear text");
}

#[test]
fn a_connection_the_server_dropped_is_replaced() {
    let Some(db) = test_db() else { return };
    let store = PgStore::connect(&db.dsn).unwrap();
    store.touch(t(0)).unwrap();
    let pid: i32 = store
        .with("test", |client| {
            Ok(client.query_one("SELECT pg_backend_pid()", &[])?.get(0))
        })
        .unwrap();
    db.admin()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    // The call that finds the connection gone may fail; the next reconnects.
    let _ = store.touch(t(1));
    store.touch(t(2)).unwrap();
    let at: i64 = db
        .admin()
        .query_one("SELECT at FROM heartbeat", &[])
        .unwrap()
        .get(0);
    assert_eq!(at, millis(t(2)));
}

#[test]
fn debug_shows_the_target_not_the_password() {
    let Some(db) = test_db() else { return };
    let store = PgStore::connect(&db.dsn).unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.contains("127.0.0.1") || shown.contains('@'),
        "{shown}"
    );
    assert_eq!(store.location(), db.dsn.target());
}

#[test]
fn members_recording_runs_of_one_hour_at_once_all_count_in_the_rollups() {
    let Some(db) = test_db() else { return };
    let members: Vec<PgStore> = (0..4).map(|_| PgStore::connect(&db.dsn).unwrap()).collect();
    std::thread::scope(|s| {
        for (m, member) in members.iter().enumerate() {
            s.spawn(move || {
                for i in 0..10 {
                    let r =
                        crate::store::testing::run("p", &format!("m{m}-{i}"), t(i), Outcome::Ok);
                    assert!(
                        member
                            .record_run(&r, "i", false, &AlertState::default(), &[], t(i))
                            .unwrap()
                    );
                }
            });
        }
    });
    for table in ["rollups", "daily_rollups"] {
        let tally: String = db
            .admin()
            .query_one(&format!("SELECT tally FROM {table} WHERE probe = 'p'"), &[])
            .unwrap()
            .get(0);
        let tally: serde_json::Value = serde_json::from_str(&tally).unwrap();
        assert_eq!(tally["outcomes"]["ok"], 40, "{table}: {tally}");
    }
    assert_eq!(members[0].messages_since(t(0)).unwrap(), 40);
}

#[test]
fn a_corrupt_row_is_an_error_not_a_panic() {
    let Some(db) = test_db() else { return };
    let store = PgStore::connect(&db.dsn).unwrap();
    let r = crate::store::testing::run("a", "bad", t(0), Outcome::Ok);
    store
        .record_run(&r, "i", false, &AlertState::default(), &[], t(0))
        .unwrap();
    let mut admin = db.admin();
    admin
        .batch_execute(
            "UPDATE runs SET outcome = 'exploded';
             INSERT INTO alert_state (probe, state, updated_at) VALUES ('b', '{', 0)",
        )
        .unwrap();
    let err = store.recent_runs(None, 1).unwrap_err().to_string();
    assert!(err.contains("run bad") && err.contains("exploded"), "{err}");
    assert!(matches!(
        store.outcome_counts(None, t(0)),
        Err(StoreError::PgCorrupt { .. })
    ));
    assert!(matches!(
        store.alert_state("b"),
        Err(StoreError::PgCorrupt { .. })
    ));
    // Not JSON: the reconcile filter's cast fails in the database, an error too.
    assert!(store.alert_states().is_err());
    assert!(store.alert_states_to_reconcile().is_err());
}

#[test]
fn the_cost_guard_holds_across_members_starting_runs_at_once() {
    use crate::store::{BeginRun, Begun, StartedRun};
    let Some(db) = test_db() else { return };
    let members: Vec<PgStore> = (0..4).map(|_| PgStore::connect(&db.dsn).unwrap()).collect();
    let started = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (m, member) in members.iter().enumerate() {
            let started = &started;
            s.spawn(move || {
                for i in 0..5 {
                    let begin = BeginRun {
                        run: StartedRun {
                            probe: format!("p{m}-{i}"),
                            correlation_id: format!("m{m}-{i}"),
                            instance: "i".into(),
                            holder: format!("member-{m}"),
                            started_at: t(i),
                            threshold: Duration::from_secs(5),
                            timeout: Duration::from_secs(60),
                        },
                        lease_ttl: Duration::from_secs(600),
                        cap: 7,
                        in_flight: 0,
                    };
                    if let Begun::Started { .. } = member.begin_run(&begin).unwrap() {
                        started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    // Twenty runs asked for, seven allowed in the fleet's day.
    assert_eq!(started.into_inner(), 7);
    assert_eq!(members[0].started_runs().unwrap().len(), 7);
}

#[test]
fn integrity_check_reports_a_run_both_started_and_recorded() {
    let Some(db) = test_db() else { return };
    let store = PgStore::connect(&db.dsn).unwrap();
    let r = crate::store::testing::run("a", "twice", t(0), Outcome::Ok);
    store
        .record_run(&r, "i", false, &AlertState::default(), &[], t(0))
        .unwrap();
    store.integrity_check().unwrap();
    db.admin()
        .execute(
            "INSERT INTO started_runs (correlation_id, probe, instance, holder, started_at,
                 threshold_ms, timeout_ms) VALUES ('twice', 'a', 'i', 'h', 0, 1, 1)",
            &[],
        )
        .unwrap();
    let err = store.integrity_check().unwrap_err().to_string();
    assert!(
        err.contains("run twice is both started and recorded"),
        "{err}"
    );
}

/// Async callers use the store as they use SQLite's: inside
/// `spawn_blocking`, where the driver's own blocking runtime is allowed.
#[test]
fn works_from_async_code_through_spawn_blocking() {
    let Some(db) = test_db() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(from_async(db.dsn.clone()));
}

async fn from_async(dsn: PgDsn) {
    let store = tokio::task::spawn_blocking(move || PgStore::connect(&dsn))
        .await
        .unwrap()
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                let r = crate::store::testing::run("p", &format!("a{i}"), t(i), Outcome::Ok);
                store.record_run(&r, "i", false, &AlertState::default(), &[], t(i))
            })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap());
    }
    let recent = tokio::task::spawn_blocking(move || store.recent_runs(Some("p"), 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recent.len(), 8);
}
