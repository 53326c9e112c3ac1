//! The state store through its public API, as cron runs and the daemon use
//! it: atomic and idempotent run records, the outbox lifecycle, leases,
//! silences, the history queries, migrations, two processes' worth of
//! connections writing at once, and a writer killed with SIGKILL mid-write
//! (the test binary re-executes itself as that writer).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sms_canary::alert::{AlertState, Notification, Transition};
use sms_canary::probe::{Outcome, Phases, RunResult};
use sms_canary::store::{OutboxItem, Store, StoreError};

/// A fixed instant plus `secs`.
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
}

fn run(probe: &str, id: &str, at: DateTime<Utc>, outcome: Outcome, latency_ms: u64) -> RunResult {
    let arrived = matches!(outcome, Outcome::Ok | Outcome::Slow);
    let latency = arrived.then(|| Duration::from_millis(latency_ms));
    RunResult {
        probe: probe.into(),
        gateway: "sandbox".into(),
        receiver: "inbox".into(),
        correlation_id: id.into(),
        started_at: at,
        outcome,
        reason: None,
        code: None,
        latency,
        threshold: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        phases: Phases {
            submit: Some(Duration::from_millis(100)),
            received: latency,
            ..Phases::default()
        },
        message_id: Some(format!("SM-{id}")),
        attempts: 1,
        findings: vec![],
        gateway_errors: vec![],
    }
}

/// One notice caused by `run`, queued for each of `channels` under one id.
fn notices(run: &RunResult, channels: &[&str], at: DateTime<Utc>) -> Vec<OutboxItem> {
    let state = AlertState::default();
    let facts = sms_canary::alert::Facts::default();
    let notice = Notification::new(Transition::Firing, run, "test", &state, &state, facts, at);
    channels
        .iter()
        .map(|channel| OutboxItem {
            channel: channel.to_string(),
            notification: notice.clone(),
        })
        .collect()
}

fn failing(n: u32) -> AlertState {
    AlertState {
        consecutive_failures: n,
        ..AlertState::default()
    }
}

#[test]
fn record_run_is_atomic_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = run("p", "01RUN", t(0), Outcome::Lost, 0);
    let items = notices(&r, &["slack", "mail"], t(60));
    assert!(
        store
            .record_run(&r, "i", false, &failing(1), &items, t(60))
            .unwrap()
    );
    let again = notices(&r, &["slack"], t(61));
    assert!(
        !store
            .record_run(&r, "i", false, &failing(9), &again, t(61))
            .unwrap()
    );
    assert_eq!(store.recent_runs(None, 10).unwrap().len(), 1);
    assert_eq!(store.alert_state("p").unwrap(), failing(1));
    assert_eq!(store.pending_notifications().unwrap(), 2);

    // A run whose outbox write fails leaves nothing behind: not the run, not
    // the state. (The same notice twice on one channel breaks the outbox key.)
    let r2 = run("p", "02RUN", t(300), Outcome::Lost, 0);
    let mut dup = notices(&r2, &["slack"], t(360));
    dup.push(dup[0].clone());
    assert!(
        store
            .record_run(&r2, "i", false, &failing(2), &dup, t(360))
            .is_err()
    );
    assert_eq!(store.recent_correlation_ids("p", 10).unwrap(), ["01RUN"]);
    assert_eq!(store.alert_state("p").unwrap(), failing(1));
    assert_eq!(store.pending_notifications().unwrap(), 2);
    store.integrity_check().unwrap();
}

#[test]
fn outbox_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = run("p", "01RUN", t(0), Outcome::Lost, 0);
    let items = notices(&r, &["slack", "mail"], t(0));
    let id = items[0].notification.id.clone();
    store
        .record_run(&r, "i", false, &failing(2), &items, t(0))
        .unwrap();

    let due = store.due_notifications(t(0), 10).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].notification, items[0].notification);

    // slack fails and is retried at t(30): not due before, due at t(30).
    store
        .mark_failed(&id, "slack", "HTTP 503", Some(t(30)), t(1))
        .unwrap();
    let channels = |now| -> Vec<String> {
        let due = store.due_notifications(now, 10).unwrap();
        due.into_iter().map(|e| e.channel).collect()
    };
    assert_eq!(channels(t(29)), ["mail"]);
    assert_eq!(channels(t(30)), ["slack", "mail"]);
    store.mark_delivered(&id, "slack", t(31)).unwrap();
    assert_eq!(channels(t(31)), ["mail"]);
    assert_eq!(store.pending_notifications().unwrap(), 1);

    // mail fails for good: a dead letter, neither due nor pending.
    store
        .mark_failed(&id, "mail", "550 no such user", None, t(32))
        .unwrap();
    assert!(channels(t(10_000)).is_empty());
    assert_eq!(store.pending_notifications().unwrap(), 0);
    assert_eq!(store.next_notification_due().unwrap(), None);
    let dead = store.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].channel, "mail");
    assert_eq!(dead[0].last_error.as_deref(), Some("550 no such user"));
    assert!(dead[0].dead);
}

#[test]
fn leases_keep_a_second_holder_out_while_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = Store::open(dir.path()).unwrap();
    let ttl = Duration::from_secs(300);
    assert!(store.acquire_lease("p", "cron-a", ttl, t(0)).unwrap());
    assert!(!other.acquire_lease("p", "cron-b", ttl, t(299)).unwrap());
    assert!(other.acquire_lease("p", "cron-b", ttl, t(300)).unwrap());
    assert!(!store.acquire_lease("p", "cron-a", ttl, t(301)).unwrap());
    other.release_lease("p", "cron-b").unwrap();
    assert!(store.acquire_lease("p", "cron-a", ttl, t(302)).unwrap());
}

#[test]
fn silences_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .silence("p", t(7200), Some("carrier maintenance"), t(0))
        .unwrap();
    let s = store.silenced("p", t(7199)).unwrap().unwrap();
    assert_eq!(
        (s.until, s.reason.as_deref()),
        (t(7200), Some("carrier maintenance"))
    );
    assert_eq!(store.silences(t(7199)).unwrap().len(), 1);
    assert!(store.silenced("p", t(7200)).unwrap().is_none());
    assert!(store.silences(t(7200)).unwrap().is_empty());
}

#[test]
fn percentiles_match_a_hand_computed_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Ten arrivals: 100, 200, …, 1000 ms (inserted out of order), one slow
    // arrival of 9000 ms, and a lost run that must not count.
    let latencies = [500, 100, 900, 300, 700, 200, 1000, 400, 800, 600];
    for (i, ms) in latencies.into_iter().enumerate() {
        let r = run("p", &format!("ok-{i}"), t(i as i64), Outcome::Ok, ms);
        store
            .record_run(&r, "i", false, &failing(0), &[], t(0))
            .unwrap();
    }
    let slow = run("p", "slow", t(20), Outcome::Slow, 9000);
    store
        .record_run(&slow, "i", false, &failing(1), &[], t(0))
        .unwrap();
    let lost = run("p", "lost", t(21), Outcome::Lost, 0);
    store
        .record_run(&lost, "i", false, &failing(2), &[], t(0))
        .unwrap();

    // n = 11, sorted 100..1000, 9000. Nearest rank: p50 = ceil(5.5) = 6th
    // = 600; p95 = ceil(10.45) = 11th = 9000; p99 = ceil(10.89) = 11th.
    let p = store.latency_percentiles(Some("p"), t(0)).unwrap().unwrap();
    assert_eq!(p.count, 11);
    assert_eq!(p.p50, Duration::from_millis(600));
    assert_eq!(p.p95, Duration::from_millis(9000));
    assert_eq!(p.p99, Duration::from_millis(9000));
    // From t(5): 200, 1000, 400, 800, 600, 9000 → p50 = 3rd = 600.
    let p = store.latency_percentiles(None, t(5)).unwrap().unwrap();
    assert_eq!((p.count, p.p50), (6, Duration::from_millis(600)));
    assert!(store.latency_percentiles(None, t(22)).unwrap().is_none());
    assert_eq!(
        store.outcome_counts(None, t(0)).unwrap(),
        [(Outcome::Ok, 10), (Outcome::Slow, 1), (Outcome::Lost, 1)]
    );
}

#[test]
fn messages_since_counts_submitted_messages_of_all_probes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (i, (probe, at)) in [("a", 0), ("b", 100), ("a", 200)].into_iter().enumerate() {
        let r = run(probe, &i.to_string(), t(at), Outcome::Ok, 500);
        store
            .record_run(&r, "i", false, &failing(0), &[], t(at))
            .unwrap();
    }
    let mut refused = run("a", "refused", t(300), Outcome::Rejected, 0);
    refused.message_id = None;
    store
        .record_run(&refused, "i", false, &failing(1), &[], t(300))
        .unwrap();
    assert_eq!(store.messages_since(t(0)).unwrap(), 3);
    assert_eq!(store.messages_since(t(100)).unwrap(), 2);
    assert_eq!(store.messages_since(t(301)).unwrap(), 0);
}

#[test]
fn migrates_an_empty_file_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    std::fs::write(&db, b"").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.path(), db);
    store.touch(t(0)).unwrap();
    store.integrity_check().unwrap();
    drop(store);

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("state.db") && message.contains("newer"),
        "{message}"
    );
}

#[test]
fn two_stores_on_one_file_interleave_writes() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        Store::open(dir.path()).unwrap(),
        Store::open(dir.path()).unwrap(),
    ];
    const EACH: usize = 100;
    std::thread::scope(|scope| {
        for (w, store) in stores.iter().enumerate() {
            scope.spawn(move || {
                let probe = format!("p{w}");
                for i in 0..EACH {
                    let holder = format!("writer-{w}");
                    store
                        .acquire_lease(&probe, &holder, Duration::from_secs(60), t(0))
                        .unwrap();
                    let r = run(&probe, &format!("{w}-{i}"), t(i as i64), Outcome::Lost, 0);
                    let items = notices(&r, &["slack", "mail"], t(i as i64));
                    let state = failing(i as u32 + 1);
                    assert!(
                        store
                            .record_run(&r, "i", false, &state, &items, t(0))
                            .unwrap()
                    );
                    store.touch(t(i as i64)).unwrap();
                    store.release_lease(&probe, &holder).unwrap();
                }
            });
        }
    });
    let store = &stores[0];
    assert_eq!(store.recent_runs(None, usize::MAX).unwrap().len(), 2 * EACH);
    assert_eq!(store.pending_notifications().unwrap(), 4 * EACH as u64);
    assert_eq!(store.alert_state("p1").unwrap(), failing(EACH as u32));
    store.integrity_check().unwrap();
}

/// Where the crash writer writes; unset, [`crash_writer`] does nothing.
const CRASH_WRITER_DIR: &str = "SMS_CANARY_CRASH_WRITER_DIR";
const CRASH_PROBE: &str = "crash";
const CRASH_CHANNELS: [&str; 2] = ["slack", "mail"];

/// Not a test on its own: the writer process for [`survives_kill_9_mid_write`].
/// Records runs forever, each with its alert state (the failure count so
/// far, plus one) and two outbox rows, and prints each committed id.
#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(CRASH_WRITER_DIR) else {
        return;
    };
    let store = Store::open(Path::new(&dir)).unwrap();
    let mut failures = store.alert_state(CRASH_PROBE).unwrap().consecutive_failures;
    loop {
        let id = ulid::Ulid::generate().to_string();
        let now = Utc::now();
        let r = run(CRASH_PROBE, &id, now, Outcome::Lost, 0);
        let items = notices(&r, &CRASH_CHANNELS, now);
        failures += 1;
        store
            .record_run(&r, "crash", false, &failing(failures), &items, now)
            .unwrap();
        println!("committed {id}");
    }
}

/// Kills the writer if a check fails before the test does.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn survives_kill_9_mid_write() {
    let rounds: u32 = std::env::var("SMS_CANARY_CRASH_ROUNDS")
        .ok()
        .map(|n| n.parse().expect("SMS_CANARY_CRASH_ROUNDS is a number"))
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let seed = RandomState::new();
    let mut seen = HashSet::new();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::crash_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_WRITER_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Drained as it comes, so a full pipe never stalls the writer.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            stdout
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("committed ").map(str::to_string))
                .collect::<Vec<_>>()
        });
        let mut child = Reap(child);
        std::thread::sleep(Duration::from_millis(20 + seed.hash_one(round) % 181));
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("round {round}: the writer exited on its own ({status}): {err}");
        }
        child.0.kill().unwrap(); // SIGKILL: no destructors, no rollback, no flush
        child.0.wait().unwrap();
        let committed = reader.join().unwrap();

        let store = Store::open(dir.path()).unwrap();
        store.integrity_check().unwrap();
        let ids: HashSet<String> = store
            .recent_correlation_ids(CRASH_PROBE, usize::MAX)
            .unwrap()
            .into_iter()
            .collect();
        assert!(
            ids.is_superset(&seen),
            "round {round}: runs stored before are gone"
        );
        for id in &committed {
            assert!(
                ids.contains(id),
                "round {round}: committed run {id} is gone"
            );
        }
        // Every run written since the last round has exactly its two outbox
        // rows, and its alert state was written with it: no transaction is
        // half there. Delivering them, as the sender would, keeps each
        // round's check to that round's runs.
        let mut per_run: HashMap<&str, usize> =
            ids.difference(&seen).map(|id| (id.as_str(), 0)).collect();
        for entry in store.due_notifications(Utc::now(), usize::MAX).unwrap() {
            let id = entry.notification.correlation_ids[0].as_str();
            match per_run.get_mut(id) {
                Some(n) => *n += 1,
                None => panic!("round {round}: outbox row for {id}, not a new run"),
            }
            store
                .mark_delivered(&entry.notification.id, &entry.channel, Utc::now())
                .unwrap();
        }
        for (id, n) in &per_run {
            assert_eq!(
                *n,
                CRASH_CHANNELS.len(),
                "round {round}: outbox rows of {id}"
            );
        }
        let state = store.alert_state(CRASH_PROBE).unwrap();
        assert_eq!(
            state.consecutive_failures as usize,
            ids.len(),
            "round {round}"
        );
        seen = ids;
    }
    assert!(
        !seen.is_empty(),
        "no kill landed after a commit: the writer never wrote"
    );
    println!(
        "{rounds} SIGKILL rounds survived, {} runs stored",
        seen.len()
    );
}
