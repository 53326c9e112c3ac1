//! Cron mode: `check` run repeatedly against one state dir, as cron would.
//! Failures count across runs, alerts fire and resolve, undelivered
//! notifications are retried by the next run, overlapping runs are locked out,
//! silences hold notifications back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::capture::Capture;

const GOOD: &str = "+15005550100";
const DROPPED: &str = "+15005550191";

fn config(alert_addr: SocketAddr, attempts: u32) -> String {
    format!(
        r#"[canary]
listen = "127.0.0.1:0"
notify_retry = {{ attempts = {attempts}, initial = "10ms", factor = 1.0 }}

[defaults]
timeout = "1s"
threshold = "900ms"
failure_threshold = 2
alerts = ["hook"]

[gateways.sandbox]
kind = "mock"
latency = "20ms"
[gateways.sandbox.numbers."{DROPPED}"]
drop = true

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"

[alerts.hook]
kind = "webhook"
url = "http://{alert_addr}/alerts"
"#
    )
}

struct Cron {
    dir: tempfile::TempDir,
}

impl Cron {
    fn new(alert_addr: SocketAddr, attempts: u32, to: &str) -> Cron {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config(alert_addr, attempts)).unwrap();
        std::fs::create_dir(dir.path().join("probes")).unwrap();
        let cron = Cron { dir };
        cron.point_to(to);
        cron
    }

    fn point_to(&self, to: &str) {
        let probe = format!(
            "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n"
        );
        std::fs::write(self.dir.path().join("probes/p.toml"), probe).unwrap();
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    async fn run(&self, args: &[&str]) -> Output {
        let dir = self.path();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
                .args(&args)
                .current_dir(dir)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    async fn check(&self) -> i32 {
        self.run(&["check"]).await.status.code().unwrap()
    }

    async fn history(&self) -> String {
        String::from_utf8_lossy(&self.run(&["history"]).await.stdout).into_owned()
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_after_consecutive_failures_and_resolve_across_cron_runs() {
    let (capture, addr) = Capture::start(crate::capture::ANY_PORT).await;
    let cron = Cron::new(addr, 5, DROPPED);
    assert_eq!(cron.check().await, 2);
    assert!(
        capture.transitions().is_empty(),
        "one failure heals silently"
    );
    assert_eq!(cron.check().await, 2);
    assert_eq!(capture.transitions(), ["firing"]);
    let firing: Value = capture.received.lock().unwrap()[0].clone();
    assert_eq!(firing["probe"], "p");
    assert_eq!(firing["outcome"], "lost");
    assert_eq!(
        firing["correlation_ids"].as_array().unwrap().len(),
        2,
        "both failed runs: {firing}"
    );
    assert!(
        firing["reason"]
            .as_str()
            .unwrap()
            .contains("nothing arrived")
    );
    // A third failure: still firing, nothing new (reminder is an hour).
    assert_eq!(cron.check().await, 2);
    assert_eq!(capture.transitions(), ["firing"]);
    cron.point_to(GOOD);
    assert_eq!(cron.check().await, 0);
    assert_eq!(capture.transitions(), ["firing", "resolved"]);
    let history = cron.history().await;
    assert!(history.contains("4 runs (1 ok, 3 lost)"), "{history}");
    assert!(history.contains("0 pending, 0 dead-lettered"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_then_up_loses_no_notification() {
    let addr = free_addr();
    let cron = Cron::new(addr, 5, DROPPED);
    assert_eq!(cron.check().await, 2);
    assert_eq!(cron.check().await, 2);
    let history = cron.history().await;
    assert!(history.contains("FIRING critical p"), "{history}");
    assert!(
        history.contains("1 pending"),
        "the firing notice waits in the outbox: {history}"
    );
    // The sink comes back; the next cron run delivers what is owed, once.
    let (capture, _) = Capture::start(addr).await;
    assert_eq!(cron.check().await, 2);
    assert_eq!(capture.transitions(), ["firing"]);
    assert!(cron.history().await.contains("0 pending"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_never_recovers_yields_dead_letters_history_shows() {
    let cron = Cron::new(free_addr(), 2, DROPPED);
    for _ in 0..3 {
        assert_eq!(cron.check().await, 2);
    }
    let history = cron.history().await;
    assert!(history.contains("0 pending, 1 dead-lettered"), "{history}");
    assert!(
        history.contains("dead letter  hook  CRITICAL p: lost  after 2 attempts"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_run_is_locked_out_and_sends_nothing() {
    let (_capture, addr) = Capture::start(crate::capture::ANY_PORT).await;
    let cron = Cron::new(addr, 5, GOOD);
    let store = sms_canary::store::Store::open(&cron.path().join(".sms-canary")).unwrap();
    let now = chrono::Utc::now();
    // A live process (this one) holds the lease: a dead one's would be
    // taken over at once.
    let alive = sms_canary::store::Holder::claim(&store, "check").unwrap();
    assert!(
        store
            .acquire_lease("p", alive.name(), Duration::from_secs(600), now)
            .unwrap()
    );
    let out = cron.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("UNKNOWN") && text.contains("not sent"),
        "{text}"
    );
    assert!(
        store.recent_runs(Some("p"), 10).unwrap().is_empty(),
        "nothing was sent or recorded"
    );
    store.release_lease("p", alive.name()).unwrap();
    assert_eq!(cron.check().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_probe_records_runs_but_notifies_nobody() {
    let (capture, addr) = Capture::start(crate::capture::ANY_PORT).await;
    let cron = Cron::new(addr, 5, DROPPED);
    let out = cron
        .run(&[
            "silence",
            "p",
            "--for",
            "1h",
            "--reason",
            "carrier maintenance",
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..2 {
        assert_eq!(cron.check().await, 2);
    }
    assert!(capture.transitions().is_empty());
    let history = cron.history().await;
    assert!(
        history.contains("silenced p until") && history.contains("carrier maintenance"),
        "{history}"
    );
    assert!(history.contains("2 runs (2 lost)"), "{history}");
    assert_eq!(cron.run(&["unsilence", "p"]).await.status.code(), Some(0));
    assert!(!cron.history().await.contains("silenced p"));
    assert_eq!(
        cron.run(&["silence", "nope", "--for", "1h"])
            .await
            .status
            .code(),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_guard_stops_sending_at_the_daily_cap_and_says_so_through_the_alerts() {
    let (capture, addr) = Capture::start(crate::capture::ANY_PORT).await;
    let cron = Cron::new(addr, 5, GOOD);
    let set_cap = |cap: u32| {
        let config = config(addr, 5).replace(
            "failure_threshold = 2",
            &format!("failure_threshold = 2\nmax_messages_per_day = {cap}"),
        );
        std::fs::write(cron.path().join("config.toml"), config).unwrap();
    };
    set_cap(2);
    assert_eq!(cron.check().await, 0);
    assert_eq!(cron.check().await, 0);
    assert!(capture.transitions().is_empty());
    let out = cron.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cost guard reached: 2 of 2 messages in the last 24h"),
        "{stdout}"
    );
    assert!(cron.history().await.contains("2 runs (2 ok)"));
    // Spending the budget stops the monitoring: that is an alert of its own,
    // at once, not a quiet stop.
    let sent = capture.received.lock().unwrap().clone();
    assert_eq!(capture.transitions(), ["firing"], "{sent:?}");
    assert_eq!(sent[0]["probe"], "canary:cost-guard");
    assert_eq!(sent[0]["severity"], "critical");
    let reason = sent[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 of 2 messages") && reason.contains("probes are not running until"),
        "{reason}"
    );
    // Skipped again: counted, not re-sent (a reminder waits for `reminder`).
    assert_eq!(cron.check().await, 3);
    assert_eq!(capture.transitions(), ["firing"]);
    // A bigger budget lets the probe run again, which resolves it.
    set_cap(10);
    assert_eq!(cron.check().await, 0);
    assert_eq!(capture.transitions(), ["firing", "resolved"]);
    let resolved = capture.received.lock().unwrap()[1].clone();
    assert_eq!(resolved["probe"], "canary:cost-guard");
}
