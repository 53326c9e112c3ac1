//! The daemon, in-process and as a process: probes run on their schedules,
//! alerts fire and resolve, /healthz and /readyz answer on the admin
//! listener, manual runs through the run API return their result, a bad reload keeps the old config, SIGTERM stops it cleanly,
//! a kill -9 mid-write leaves a store that passes its integrity check, and the
//! cost guard stops sending at the day's cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sms_canary::daemon::{self, Clock, Control, DaemonOptions};
use sms_canary::mock_carrier::{Faults, MockCarrier, MockConfig, MockHandle, NumberConfig};
use sms_canary::store::Store;

use crate::capture::Capture;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The bearer token of the daemons these tests start.
pub(crate) const API_TOKEN: &str = "test-api-token";

fn daemon_config(listen: SocketAddr, mock: &str, alerts: SocketAddr) -> String {
    format!(
        r#"[canary]
listen = "{listen}"
admin_listen = "127.0.0.1:0"
api_token = "{API_TOKEN}"
heartbeat_url = "http://{alerts}/heartbeat"
notify_retry = {{ attempts = 5, initial = "50ms", factor = 1.0 }}

[defaults]
schedule = "* * * * * *"   # every second
timeout = "900ms"
threshold = "800ms"
failure_threshold = 2
reminder = "0s"
alerts = ["hook"]

[gateways.carrier]
kind = "twilio"
account_sid = "AC{zeros}"
auth_token = "mock-auth-token"
base_url = "{mock}"

[receivers.inbox]
kind = "webhook"
gateway = "carrier"

[alerts.hook]
kind = "webhook"
url = "http://{alerts}/alerts"
"#,
        zeros = "0".repeat(32)
    )
}

const PROBE: &str = "name = \"p\"\ngateway = \"carrier\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n";

/// Starts the daemon in this process on the real clock, as `sms-canary
/// daemon` would; returns its control channel and its task. Its admin
/// listener takes any free port unless `options` name one.
pub(crate) fn spawn_daemon(
    config: std::path::PathBuf,
    mut options: DaemonOptions,
) -> (
    tokio::sync::mpsc::Sender<Control>,
    tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
) {
    options
        .admin_listen
        .get_or_insert(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(daemon::run(
        config,
        options,
        Arc::new(Clock::system()),
        rx,
        tx.clone(),
    ));
    (tx, task)
}

/// A mock carrier that delivers the probe's number to the daemon at `listen`.
async fn carrier_delivering_to(
    listen: SocketAddr,
    latency: Duration,
    faults: Faults,
) -> MockHandle {
    let mut mock = MockConfig {
        latency: sms_canary::mock_carrier::LatencyModel::Fixed(latency),
        faults,
        ..MockConfig::default()
    };
    let owned = NumberConfig {
        owned: true,
        inbound_url: Some(format!("http://{listen}/hooks/twilio/inbound/inbox")),
        ..NumberConfig::default()
    };
    mock.numbers.insert("+15005550100".into(), owned);
    MockCarrier::start(
        mock,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_schedules_alerts_resolves_serves_and_stops() {
    let listen = free_addr();
    let dropping = Faults {
        drop_rate: 1.0,
        ..Faults::default()
    };
    let carrier = carrier_delivering_to(listen, Duration::from_millis(20), dropping).await;
    let (capture, alerts) = Capture::start(crate::capture::ANY_PORT).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let spare = format!(
        "\n[gateways.spare]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"mock-auth-token\"\nbase_url = \"{}\"\n",
        "0".repeat(32),
        carrier.base_url()
    );
    std::fs::write(
        &path,
        daemon_config(listen, &carrier.base_url(), alerts) + &spare,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(dir.path().join("probes/p.toml"), PROBE).unwrap();
    // Disabled: never scheduled, but a manual run may still name it.
    // Its gateway serves no enabled probe, so nothing else would start it.
    let off = PROBE
        .replace("\"p\"", "\"off\"")
        .replace("\"carrier\"", "\"spare\"")
        + "enabled = false\n";
    std::fs::write(dir.path().join("probes/off.toml"), off).unwrap();

    let admin = free_addr();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        path.clone(),
        DaemonOptions {
            preflight: false,
            grace: Duration::from_secs(5),
            admin_listen: Some(admin),
            ..DaemonOptions::default()
        },
    );

    // Every message dropped: two lost runs in a row fire the alert.
    assert_eq!(
        capture.wait_for(1, Duration::from_secs(15)).await,
        ["firing"]
    );
    let http = reqwest::Client::new();
    let get = |p: &str| {
        let r = http.get(format!("http://{admin}{p}")).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz").await, 200);
    assert_eq!(get("/readyz").await, 200);
    // The carrier recovers: the next good run resolves it.
    carrier.set_faults(Faults::default());
    assert_eq!(
        capture.wait_for(2, Duration::from_secs(15)).await,
        ["firing", "resolved"]
    );
    // A manual run answers with its result when it ends within `wait`.
    let run: serde_json::Value = http
        .post(format!("http://{admin}/probes/p/run?wait=20s"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(run["outcome"] == "ok" || run["outcome"] == "slow", "{run}");
    assert_eq!(
        http.post(format!("http://{admin}/probes/nope/run"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let off: serde_json::Value = http
        .post(format!("http://{admin}/probes/off/run?wait=20s"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        off["probe"], "off",
        "a disabled probe runs when asked: {off}"
    );
    // A broken config on reload is refused; the daemon keeps going.
    std::fs::write(&path, "[canary]\nlisten = 12\n").unwrap();
    tx.send(Control::Reload).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get("/healthz").await, 200);
    tx.send(Control::Shutdown).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops within the grace")
        .unwrap()
        .unwrap();
    let store = Store::open(&dir.path().join(".sms-canary")).unwrap();
    store.integrity_check().unwrap();
    assert!(store.recent_runs(Some("p"), 100).unwrap().len() >= 4);
    assert_eq!(store.pending_notifications().unwrap(), 0);
    carrier.shutdown().await;
}

/// The daemon binary, killed with SIGKILL mid-work and restarted: the store
/// passes its integrity check, runs are neither lost nor duplicated, and
/// SIGTERM then stops it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_write_then_restart_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"[canary]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[defaults]
schedule = "* * * * * *"
timeout = "2s"
threshold = "1s"
[gateways.sandbox]
kind = "mock"
latency = "10ms"
[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for i in 0..5 {
        let probe = PROBE
            .replace("\"p\"", &format!("\"p{i}\""))
            .replace("carrier", "sandbox")
            .replace("100\"", &format!("10{i}\""));
        std::fs::write(dir.path().join(format!("probes/p{i}.toml")), probe).unwrap();
    }
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args(["daemon", "--no-preflight"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let store_dir = dir.path().join(".sms-canary");
    let count = || {
        Store::open(&store_dir)
            .unwrap()
            .recent_runs(None, 100_000)
            .unwrap()
            .len()
    };
    // Waits (bounded) until the store holds more than `n` runs; reading while
    // the daemon writes is itself part of the test (WAL readers never block).
    let db = store_dir.join("state.db");
    let more_than = |n: usize| {
        let db = db.clone();
        let count = &count;
        async move {
            for _ in 0..200 {
                if db.exists() && count() > n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the daemon recorded no more than {n} runs in 20s");
        }
    };
    let mut child = start();
    more_than(4).await;
    // Kill it mid-work: five probes a second keep it writing.
    tokio::time::sleep(Duration::from_millis(370)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = Store::open(&store_dir).unwrap();
    store.integrity_check().expect("integrity after kill -9");
    let after_kill = count();
    assert!(
        after_kill >= 5,
        "runs recorded before the kill: {after_kill}"
    );

    let child = start();
    more_than(after_kill).await;
    let status = std::process::Command::new("kill")
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
    let runs = store.recent_runs(None, 100_000).unwrap();
    assert!(
        runs.len() > after_kill,
        "the restarted daemon ran probes: {} > {after_kill}",
        runs.len()
    );
    let mut ids: Vec<&str> = runs.iter().map(|r| r.correlation_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), runs.len(), "no run recorded twice");
}

#[test]
fn the_daemon_refuses_to_start_when_preflight_fails_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[canary]\nlisten = \"127.0.0.1:0\"\n[gateways.v]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\n\
                  base_url = \"http://127.0.0.1:1\"\n[receivers.inbox]\nkind = \"webhook\"\n";
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["daemon"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("preflight failed") && err.contains("unreachable"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_cut_off_by_shutdown_are_recorded_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[canary]\nlisten = \"127.0.0.1:0\"\n[defaults]\nschedule = \"* * * * * *\"\ntimeout = \"30s\"\nthreshold = \"1s\"\n\
                  [gateways.sandbox]\nkind = \"mock\"\nlatency = \"10ms\"\n[gateways.sandbox.numbers.\"+15005550191\"]\ndrop = true\n\
                  [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n";
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    let probe = PROBE
        .replace("carrier", "sandbox")
        .replace("+15005550100", "+15005550191");
    std::fs::write(dir.path().join("probes/p.toml"), probe).unwrap();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        dir.path().join("config.toml"),
        DaemonOptions {
            preflight: false,
            grace: Duration::from_millis(300),
            ..DaemonOptions::default()
        },
    );
    // The first run starts within a second and waits 30s for a message that never comes.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let asked = tokio::time::Instant::now();
    tx.send(Control::Shutdown).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the grace period bounds the stop"
    );
    let store = Store::open(&dir.path().join(".sms-canary")).unwrap();
    let runs = store.recent_runs(Some("p"), 10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].interrupted);
    assert!(runs[0].reason.as_deref().unwrap().contains("interrupted"));
    // An interrupted run says nothing about the pipeline: no failure counted.
    assert_eq!(store.alert_state("p").unwrap().consecutive_failures, 0);
}

/// The cost guard in a long-running daemon: a run recorded by another process
/// (a cron check) counts, the daemon sends until the day's cap and then skips
/// every slot, however many calls of the guard follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stops_sending_at_the_daily_cap_counting_other_processes() {
    let listen = free_addr();
    let carrier = carrier_delivering_to(listen, Duration::from_millis(10), Faults::default()).await;
    let (capture, alerts) = Capture::start(crate::capture::ANY_PORT).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = daemon_config(listen, &carrier.base_url(), alerts).replace(
        "failure_threshold = 2",
        "failure_threshold = 2\nmax_messages_per_day = 3",
    );
    std::fs::write(&path, config).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(dir.path().join("probes/p.toml"), PROBE).unwrap();
    // A cron check sent one message an hour ago, through the same store.
    let cron_run = {
        let store = Store::open(&dir.path().join(".sms-canary")).unwrap();
        let run = sms_canary::probe::RunResult {
            probe: "p".into(),
            gateway: "carrier".into(),
            receiver: "inbox".into(),
            correlation_id: "cron-run".into(),
            started_at: chrono::Utc::now() - chrono::Duration::hours(1),
            outcome: sms_canary::probe::Outcome::Ok,
            reason: None,
            code: None,
            latency: Some(Duration::from_millis(20)),
            threshold: Duration::from_millis(800),
            timeout: Duration::from_millis(900),
            phases: Default::default(),
            message_id: Some("SM-cron".into()),
            attempts: 1,
            findings: Vec::new(),
            gateway_errors: Vec::new(),
        };
        store
            .record_run(
                &run,
                "cron",
                false,
                &Default::default(),
                &[],
                chrono::Utc::now(),
            )
            .unwrap();
        run
    };

    let admin = free_addr();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        path.clone(),
        DaemonOptions {
            preflight: false,
            admin_listen: Some(admin),
            ..DaemonOptions::default()
        },
    );
    let messages = || async {
        let list: serde_json::Value =
            reqwest::get(format!("{}/_mock/messages", carrier.base_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        // Each round trip lists its outbound message and the inbound copy.
        list["messages"].as_array().map_or(0, |all| {
            all.iter().filter(|m| m["direction"] != "inbound").count()
        })
    };
    // Two runs reach the cap of three; the slots after them are skipped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while messages().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon sent nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The slots after it are skipped, counted, and the probe shows as not
    // checked; the canary's own alert says why, once.
    let metrics = || async {
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let skipped = |m: &str| {
        crate::never_silent::sample(
            m,
            "sms_canary_probe_skipped_total",
            &[("probe", "p"), ("reason", "cost_guard")],
        )
        .unwrap_or(0.0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut m = metrics().await;
    while skipped(&m) < 3.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slot skipped:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = metrics().await;
    }
    assert_eq!(messages().await, 2, "sent past the daily cap");
    assert_eq!(
        crate::never_silent::sample(&m, "sms_canary_probe_up", &[("probe", "p")]),
        Some(0.0),
        "{m}"
    );
    capture.wait_for(1, Duration::from_secs(10)).await;
    let notices = capture.received.lock().unwrap().clone();
    let about: Vec<&str> = notices.iter().filter_map(|n| n["probe"].as_str()).collect();
    assert_eq!(about, ["canary:cost-guard"], "{notices:?}");
    tx.send(Control::Shutdown).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    let store = Store::open(&dir.path().join(".sms-canary")).unwrap();
    let runs = store.recent_runs(Some("p"), 100).unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs.iter()
            .any(|r| r.correlation_id == cron_run.correlation_id)
    );
    assert_eq!(store.messages_since(cron_run.started_at).unwrap(), 3);
    carrier.shutdown().await;
}
