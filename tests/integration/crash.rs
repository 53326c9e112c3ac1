//! Crash safety: the real daemon binary, under load, killed with SIGKILL at
//! random moments and restarted, again and again. The mock carrier and the
//! alert sink live in the test process, so they outlive every kill and see
//! everything the daemon did. After each kill the store must pass its
//! integrity check and keep every run it had; at the end every message the
//! carrier accepted maps to exactly one recorded run, and every notification
//! the store queued reached the sink at least once (and only a few times).
//! A cron `check` killed mid-run is likewise recorded by the next one, or
//! by a daemon running beside it.
//!
//! `SMS_CANARY_DAEMON_KILLS` sets the number of kills (default 5; the chaos
//! drill runs 100 or more), `SMS_CANARY_CRASH_SEED` the seed of the random
//! kill moments and fault flips (printed, so a failure can be replayed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig};
use sms_canary::probe::TOKEN_LEN;
use sms_canary::store::{CRASH_REASON, Store};

use crate::capture::Capture;

const PROBES: usize = 8;

/// A small seeded generator (splitmix64): reproducible kill moments without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn number(i: usize) -> String {
    format!("+1500555{:04}", 100 + i)
}

/// Every probe every second; one failure fires, one good run resolves, so
/// each flip of a number's fault yields a notification.
fn write_config(dir: &Path, listen: SocketAddr, mock: &str, sink: SocketAddr) {
    let config = format!(
        r#"[canary]
listen = "{listen}"
admin_listen = "127.0.0.1:0"
notify_retry = {{ attempts = 8, initial = "50ms", factor = 2.0 }}

[defaults]
schedule = "* * * * * *"
timeout = "300ms"
threshold = "250ms"
failure_threshold = 1
success_threshold = 1
reminder = "0s"
alerts = ["sink"]
max_messages_per_day = 1000000   # long drills send thousands

[gateways.carrier]
kind = "twilio"
account_sid = "AC{zeros}"
auth_token = "mock-auth-token"
base_url = "{mock}"

[receivers.inbox]
kind = "webhook"
gateway = "carrier"

[alerts.sink]
kind = "webhook"
url = "http://{sink}/alerts"
"#,
        zeros = "0".repeat(32)
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    for i in 0..PROBES {
        let probe = format!(
            "name = \"p{i}\"\ngateway = \"carrier\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{}\"\n",
            number(i)
        );
        std::fs::write(dir.join(format!("probes/p{i}.toml")), probe).unwrap();
    }
}

fn start_daemon(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["daemon", "--no-preflight"])
        .current_dir(dir)
        .env("RUST_LOG", "sms_canary=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Every correlation id recorded, each once (the store's UNIQUE index is
/// what is being relied on; the count proves it).
fn recorded(store: &Store) -> BTreeSet<String> {
    let runs = store.recent_runs(None, usize::MAX).unwrap();
    let ids: BTreeSet<String> = runs.iter().map(|r| r.correlation_id.clone()).collect();
    assert_eq!(ids.len(), runs.len(), "a run recorded twice");
    ids
}

/// (notification id, delivered, dead) of every outbox row.
fn outbox(dir: &Path) -> Vec<(String, bool, bool)> {
    let conn = rusqlite::Connection::open(dir.join(".sms-canary/state.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT notification_id, delivered_at IS NOT NULL, dead FROM outbox")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// How many times the sink received each notification id.
fn received(capture: &Capture) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for n in capture.received.lock().unwrap().iter() {
        *seen
            .entry(n["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

/// Bodies of the messages the carrier accepted (outbound).
async fn accepted(carrier: &MockHandle) -> Vec<String> {
    let list: Value = reqwest::get(format!("{}/_mock/messages", carrier.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] != "inbound")
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}

fn flip(carrier: &MockHandle, listen: SocketAddr, i: usize, drop: bool) {
    carrier.set_number(
        &number(i),
        NumberConfig {
            inbound_url: Some(format!("http://{listen}/hooks/twilio/inbound/inbox")),
            drop,
            ..NumberConfig::default()
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_no_run_and_no_notification() {
    let kills = env_number("SMS_CANARY_DAEMON_KILLS", 5);
    let seed = env_number("SMS_CANARY_CRASH_SEED", 0x5eed_c0de);
    let mut rng = Rng(seed);
    let began = Instant::now();

    let listen = free_addr();
    let mock = MockConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(20)),
        ..MockConfig::default()
    };
    let carrier = MockCarrier::start(
        mock,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let mut dropping: Vec<bool> = (0..PROBES).map(|i| i % 2 == 0).collect();
    for (i, &drop) in dropping.iter().enumerate() {
        flip(&carrier, listen, i, drop);
    }
    let (capture, sink) = Capture::start(crate::capture::ANY_PORT).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_config(dir, listen, &carrier.base_url(), sink);
    let store_dir = dir.join(".sms-canary");

    let mut known = BTreeSet::new();
    for round in 0..kills {
        let mut child = start_daemon(dir);
        let alive = Duration::from_millis(rng.range(50, 800));
        tokio::time::sleep(alive).await;
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "round {round}: the daemon exited on its own ({status}) after a crash:\n{}",
                log_tail(dir)
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !store_dir.join("state.db").exists() {
            continue;
        }
        let store = Store::open(&store_dir).unwrap();
        store
            .integrity_check()
            .unwrap_or_else(|e| panic!("round {round}: after kill -9: {e}"));
        let now = recorded(&store);
        let lost: Vec<_> = known.difference(&now).collect();
        assert!(lost.is_empty(), "round {round}: runs disappeared: {lost:?}");
        known = now;
        // Some numbers change behaviour, so alerts fire and resolve across kills.
        for (i, dropping) in dropping.iter_mut().enumerate() {
            if rng.range(0, 4) == 0 {
                *dropping = !*dropping;
                flip(&carrier, listen, i, *dropping);
            }
        }
    }

    // The last start: half the probes fail for a while (their alerts fire),
    // then everything heals, every alert resolves, and the outbox drains.
    for i in 0..PROBES {
        flip(&carrier, listen, i, i % 2 == 0);
    }
    let child = start_daemon(dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store_dir.join("state.db").exists()
        || Store::open(&store_dir)
            .unwrap()
            .alert_states()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.firing.is_some())
            .count()
            < PROBES / 2
    {
        assert!(
            Instant::now() < deadline,
            "alerts did not fire:\n{}",
            log_tail(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..PROBES {
        flip(&carrier, listen, i, false);
    }
    let restarted = chrono::Utc::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut why = String::from("no store yet");
        let settled = store_dir.join("state.db").exists() && {
            let store = Store::open(&store_dir).unwrap();
            let runs = store.recent_runs(None, usize::MAX).unwrap();
            let fresh: BTreeSet<&str> = runs
                .iter()
                .filter(|r| r.started_at > restarted && !r.interrupted)
                .map(|r| r.probe.as_str())
                .collect();
            let firing: Vec<String> = store
                .alert_states()
                .unwrap()
                .into_iter()
                .filter(|(_, s)| s.firing.is_some())
                .map(|(p, _)| p)
                .collect();
            let rows = outbox(dir);
            let seen = received(&capture);
            let pending = store.pending_notifications().unwrap();
            let unseen = rows
                .iter()
                .filter(|(id, _, _)| !seen.contains_key(id))
                .count();
            why = format!(
                "{} of {PROBES} probes ran since the restart, firing {firing:?}, \
                 {pending} notifications pending, {unseen} not seen by the sink",
                fresh.len()
            );
            fresh.len() == PROBES && firing.is_empty() && pending == 0 && unseen == 0
        };
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not settle within 30s after {kills} kills: {why}\n{}",
            log_tail(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "SIGTERM is a clean stop");

    let store = Store::open(&store_dir).unwrap();
    store.integrity_check().unwrap();
    let ids = recorded(&store);
    assert!(known.is_subset(&ids), "runs disappeared at the end");
    assert!(
        store.started_runs().unwrap().is_empty(),
        "a graceful stop leaves no run unrecorded"
    );
    let runs = store.recent_runs(None, usize::MAX).unwrap();
    let recovered = runs
        .iter()
        .filter(|r| r.reason.as_deref() == Some(CRASH_REASON))
        .count();

    // Every message the carrier accepted maps to exactly one recorded run,
    // including those cut off by a kill (recorded as interrupted on restart).
    let mut by_token: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        *by_token
            .entry(id[id.len() - TOKEN_LEN..].to_ascii_lowercase())
            .or_default() += 1;
    }
    let bodies = accepted(&carrier).await;
    assert!(!bodies.is_empty());
    for body in &bodies {
        let token = body.rsplit(' ').next().unwrap();
        assert_eq!(
            by_token.get(token).copied(),
            Some(1),
            "the accepted message {body:?} has no run (or several)"
        );
    }

    // Every notification queued was delivered, and at least once to the
    // sink; a kill between sending and marking it sent repeats it, rarely.
    let rows = outbox(dir);
    let seen = received(&capture);
    for (id, delivered, dead) in &rows {
        assert!(*delivered && !*dead, "notification {id} was not delivered");
        assert!(
            seen.contains_key(id),
            "notification {id} never reached the sink"
        );
    }
    let queued: BTreeSet<&String> = rows.iter().map(|(id, _, _)| id).collect();
    for (id, n) in &seen {
        assert!(
            queued.contains(id),
            "the sink got {id}, which the store does not hold"
        );
        assert!(*n <= 3, "notification {id} arrived {n} times");
    }
    let repeated = seen.values().filter(|&&n| n > 1).count();
    println!(
        "crash drill: seed {seed:#x}, {kills} kills survived, {} runs recorded ({recovered} cut off by a kill, \
         recorded as interrupted), {} messages accepted, {} notifications delivered ({repeated} more than once), {:.1}s",
        ids.len(),
        bodies.len(),
        rows.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        rows.len() >= PROBES,
        "alerts fired and resolved: {} notifications",
        rows.len()
    );
    carrier.shutdown().await;
}

/// A cron `check` killed while it waits for its message: the next `check`
/// records that run as interrupted and, the dead process's lease freed at
/// once, runs the probe instead of skipping it as "in progress".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_killed_mid_run_is_recorded_by_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = |drop: bool| {
        format!(
            "[canary]\nlisten = \"127.0.0.1:0\"\n[defaults]\ntimeout = \"60s\"\nthreshold = \"5s\"\n\
             [gateways.sandbox]\nkind = \"mock\"\nlatency = \"10ms\"\n\
             [gateways.sandbox.numbers.\"+15005550100\"]\ndrop = {drop}\n\
             [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        )
    };
    std::fs::write(dir.join("config.toml"), config(true)).unwrap();
    std::fs::create_dir(dir.join("probes")).unwrap();
    std::fs::write(
        dir.join("probes/p.toml"),
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n",
    )
    .unwrap();
    let cwd = dir.to_path_buf();
    let check = move || {
        Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args(["check", "p"])
            .current_dir(&cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let store_dir = dir.join(".sms-canary");
    let mut child = check();
    // Its message is dropped: it waits (up to 60 s) with the run written ahead.
    let deadline = Instant::now() + Duration::from_secs(20);
    let cut = loop {
        if store_dir.join("state.db").exists()
            && let Ok(started) = Store::open(&store_dir).unwrap().started_runs()
            && let [id] = &started[..]
        {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "the check wrote no run ahead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let store = Store::open(&store_dir).unwrap();
    assert!(store.recent_runs(None, 10).unwrap().is_empty());

    std::fs::write(dir.join("config.toml"), config(false)).unwrap();
    let output = tokio::task::spawn_blocking(move || check().wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "the probe ran and passed");
    store.integrity_check().unwrap();
    let runs = store.recent_runs(None, 10).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let interrupted = runs.iter().find(|r| r.correlation_id == cut).unwrap();
    assert!(interrupted.interrupted);
    assert_eq!(interrupted.reason.as_deref(), Some(CRASH_REASON));
    assert!(store.started_runs().unwrap().is_empty());
    assert!(
        std::fs::read_dir(store_dir.join("holders"))
            .unwrap()
            .next()
            .is_none(),
        "no lock file left behind"
    );
}

/// A running daemon notices a process sharing its store (a cron `check`)
/// that died mid-run, and records that run without waiting for a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_records_the_runs_of_a_check_that_died() {
    use sms_canary::daemon::{Control, DaemonOptions};
    use sms_canary::store::StartedRun;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\nprobes = []\n",
    )
    .unwrap();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        dir.join("config.toml"),
        DaemonOptions {
            preflight: false,
            recovery_interval: Duration::from_millis(100),
            ..DaemonOptions::default()
        },
    );
    let store_dir = dir.join(".sms-canary");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store_dir.join("holders").exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A check wrote its run ahead, then died: its lock file is there, unlocked.
    let store = Store::open(&store_dir).unwrap();
    std::fs::write(store_dir.join("holders/check-1-gone.lock"), b"").unwrap();
    store
        .start_run(&StartedRun {
            probe: "cron-probe".into(),
            correlation_id: "01CHECKDIEDMIDRUN000000000".into(),
            instance: "local".into(),
            holder: "check-1-gone".into(),
            started_at: chrono::Utc::now(),
            threshold: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        })
        .unwrap();
    let run = loop {
        if let Some(run) = store.recent_runs(None, 10).unwrap().pop() {
            break run;
        }
        assert!(Instant::now() < deadline, "the daemon never recorded it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run.correlation_id, "01CHECKDIEDMIDRUN000000000");
    assert!(run.interrupted);
    assert_eq!(run.reason.as_deref(), Some(CRASH_REASON));
    assert!(store.started_runs().unwrap().is_empty());
    assert!(!store_dir.join("holders/check-1-gone.lock").exists());
    tx.send(Control::Shutdown).await.unwrap();
    daemon.await.unwrap().unwrap();
    let left: Vec<_> = std::fs::read_dir(store_dir.join("holders"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "the daemon's own lock file goes with it");
}
