//! Alert sinks going down and coming back, through the real outbox path:
//! notifications queued by `Monitor::record`, delivered by
//! `Monitor::deliver_due`, on a clock the test sets, to real channels — Slack and a webhook on small
//! HTTP servers, email on a real SMTP server (aiosmtpd). Slack answers 503
//! during its outage; the webhook's and the SMTP server's ports are closed
//! (connections refused) and opened again on the same port. Time is injected:
//! each pass runs at the moment the store says the next retry is due, so a
//! backoff of minutes takes no time.
//!
//! A sink that comes back gets every notification, none more than twice; a
//! sink that never does leaves dead letters that `sms-canary history` lists
//! and `sms_canary_outbox_dead_letters` counts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::monitor::{Delivered, Monitor};
use sms_canary::probe::{Outcome, Phases, RunResult};
use sms_canary::store::Store;
use tokio::task::JoinHandle;

use crate::alert_channels::SmtpServer;

/// An HTTP alert receiver that can fail (any status) or go away entirely
/// (its port closed) and come back on the same port. Every answer closes the
/// connection, so a client's pooled connection cannot outlive an outage.
struct Sink {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Keep what is posted even when answering an error: a receiver that
    /// took the notification but whose answer got lost.
    keep_failed: Arc<AtomicBool>,
    /// (path, body) of every request kept.
    received: Arc<Mutex<Vec<(String, Value)>>>,
    server: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct SinkState {
    status: Arc<AtomicU16>,
    keep_failed: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn take(State(s): State<SinkState>, uri: Uri, body: Bytes) -> impl IntoResponse {
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
    if status.is_success() || s.keep_failed.load(Ordering::SeqCst) {
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        s.received
            .lock()
            .unwrap()
            .push((uri.path().to_string(), value));
    }
    (status, [(header::CONNECTION, "close")], "ok")
}

impl Sink {
    async fn start() -> Sink {
        let mut sink = Sink {
            addr: "127.0.0.1:0".parse().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            keep_failed: Arc::default(),
            received: Arc::default(),
            server: None,
        };
        sink.up().await;
        sink
    }

    /// Listens (again) on its port.
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let state = SinkState {
            status: Arc::clone(&self.status),
            keep_failed: Arc::clone(&self.keep_failed),
            received: Arc::clone(&self.received),
        };
        let app = Router::new()
            .route("/{*path}", post(take))
            .with_state(state);
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Closes its port: connections are refused until [`Sink::up`].
    async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn write_config(dir: &Path, slack: SocketAddr, hook: SocketAddr, smtp: u16, attempts: u32) {
    let config = format!(
        r#"[canary]
instance = "outage-test"
notify_retry = {{ attempts = {attempts}, initial = "30s", factor = 2.0 }}

[defaults]
failure_threshold = 1
success_threshold = 1
reminder = "0s"

[gateways.sandbox]
kind = "mock"

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"

[alerts.slack]
kind = "slack"
webhook_url = "http://{slack}/services/T0/B0/x"

[alerts.hook]
kind = "webhook"
url = "http://{hook}/alerts"

[alerts.mail]
kind = "email"
smtp_url = "smtp://127.0.0.1:{smtp}"
from = "canary@example.com"
to = ["oncall@example.com"]
"#
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    std::fs::write(
        dir.join("probes/p.toml"),
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\n\
         to = \"+15005550100\"\nalerts = [\"slack\", \"hook\", \"mail\"]\n",
    )
    .unwrap();
}

fn run_result(i: usize, outcome: Outcome) -> RunResult {
    RunResult {
        probe: "p".into(),
        gateway: "sandbox".into(),
        receiver: "inbox".into(),
        correlation_id: format!("01OUTAGE{i:018}"),
        started_at: Utc::now(),
        outcome,
        reason: (outcome != Outcome::Ok).then(|| "not seen before the timeout".into()),
        code: None,
        latency: (outcome == Outcome::Ok).then(|| Duration::from_millis(900)),
        threshold: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        phases: Phases::default(),
        message_id: Some(format!("SM{i}")),
        attempts: 1,
        findings: vec![],
        gateway_errors: vec![],
    }
}

/// The monitor, with `n` notifications (firing, resolved, firing, …) queued
/// for each of the three channels.
async fn queue(dir: &Path, n: usize) -> (Stepped, Arc<Metrics>) {
    let config = Config::load(&dir.join("config.toml")).unwrap();
    let store = Store::open(&config.canary.state_dir).unwrap();
    let metrics = Arc::new(Metrics::new("outage-test"));
    let now = Arc::new(Mutex::new(Utc::now()));
    let clock = Arc::clone(&now);
    let monitor = Monitor::with_clock(
        &config,
        store,
        Some(Arc::clone(&metrics)),
        Arc::new(move || *clock.lock().unwrap()),
    )
    .unwrap();
    let monitor = Stepped { monitor, now };
    let probe = config.probe("p").unwrap();
    for i in 0..n {
        let outcome = if i % 2 == 0 {
            Outcome::Lost
        } else {
            Outcome::Ok
        };
        let t = monitor
            .record(probe, &run_result(i, outcome), false)
            .await
            .unwrap();
        assert!(t.is_some(), "run {i} changes the alert");
    }
    (monitor, metrics)
}

/// (notification id, channel) of every outbox row.
fn outbox(dir: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(dir.join(".sms-canary/state.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT notification_id, channel FROM outbox ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The monitor on a clock the test sets, so a backoff schedule of minutes
/// is stepped through without waiting for it.
struct Stepped {
    monitor: Arc<Monitor>,
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl std::ops::Deref for Stepped {
    type Target = Monitor;
    fn deref(&self) -> &Monitor {
        &self.monitor
    }
}

impl Stepped {
    /// One delivery pass with the clock at `at`.
    async fn deliver_at(&self, at: DateTime<Utc>) -> Delivered {
        *self.now.lock().unwrap() = at;
        self.monitor.deliver_due().await.unwrap()
    }
}

/// One delivery pass at the moment the next entry is due (the injected
/// clock jumps there), and that moment.
async fn next_pass(monitor: &Stepped, floor: DateTime<Utc>) -> (Delivered, DateTime<Utc>) {
    let due = monitor
        .store()
        .next_notification_due()
        .unwrap()
        .expect("something pending");
    let at = due.max(floor);
    (monitor.deliver_at(at).await, at)
}

/// How often each key arrived.
fn tally(keys: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for k in keys {
        *seen.entry(k).or_default() += 1;
    }
    seen
}

/// The run a Slack message is about: its first correlation id (each run
/// here causes one notification, so it names the notification).
fn slack_run(body: &Value) -> String {
    let blocks = body["blocks"].as_array().unwrap();
    let context = blocks
        .iter()
        .find(|b| b["type"] == "context")
        .and_then(|b| b["elements"][0]["text"].as_str())
        .unwrap();
    let ids = context.strip_prefix("Correlation ids: `").unwrap();
    ids[..ids.find('`').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_down_for_a_while_then_up_get_every_notification_at_most_twice() {
    let slack = Sink::start().await;
    let mut hook = Sink::start().await;
    let smtp = tokio::task::spawn_blocking(|| SmtpServer::start_on(0))
        .await
        .unwrap();
    let smtp_port = smtp.port;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_config(dir, slack.addr, hook.addr, smtp_port, 6);
    let (monitor, _metrics) = queue(dir, 4).await;
    let rows = outbox(dir);
    assert_eq!(rows.len(), 12, "4 notifications x 3 channels");

    // The outage: Slack answers 503, the webhook's and the SMTP server's ports are closed.
    slack.answer(503);
    hook.down().await;
    drop(smtp);
    // At the store's precision (milliseconds), so backoff times compare exactly.
    let t0 = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let (d, at) = next_pass(&monitor, t0).await;
    assert_eq!((d.sent, d.retrying, d.dead), (0, 12, 0), "all down: {d:?}");
    // Backoff: nothing is retried before its time (30 s after the failure).
    let early = monitor.deliver_at(at + chrono::Duration::seconds(29)).await;
    assert_eq!(early, Delivered::default(), "retried before its backoff");
    let (d, at) = next_pass(&monitor, at).await;
    assert_eq!((d.sent, d.retrying), (0, 12), "still down: {d:?}");
    assert_eq!(at, t0 + chrono::Duration::seconds(30), "the first retry");

    // Slack comes back half way first: it takes each notification but its
    // answer is a 502, so each is sent again — the one duplicate allowed.
    slack.keep_failed.store(true, Ordering::SeqCst);
    slack.answer(502);
    let (d, at) = next_pass(&monitor, at).await;
    assert_eq!((d.sent, d.retrying), (0, 12), "still failing: {d:?}");
    slack.keep_failed.store(false, Ordering::SeqCst);
    // Back, on the same addresses.
    slack.answer(200);
    hook.up().await;
    let smtp = tokio::task::spawn_blocking(move || SmtpServer::start_on(smtp_port))
        .await
        .unwrap();
    let mut passes = 0;
    let mut floor = at;
    while monitor.store().pending_notifications().unwrap() > 0 {
        let (d, at) = next_pass(&monitor, floor).await;
        assert_eq!(d.dead, 0, "nothing dead-lettered within the budget: {d:?}");
        floor = at;
        passes += 1;
        assert!(passes < 10, "the outbox does not drain");
    }
    assert_eq!(monitor.store().dead_letter_count().unwrap(), 0);

    let ids: Vec<String> = {
        let mut ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        ids.dedup();
        ids
    };
    assert_eq!(ids.len(), 4);
    // Webhook and email carry the notification id; Slack names the run.
    let hooked = tally(
        hook.bodies("/alerts")
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string()),
    );
    let mailed = tally(smtp.messages().iter().map(|m| {
        m["headers"]["X-SMS-Canary-Notification-ID"]
            .as_str()
            .unwrap()
            .to_string()
    }));
    let slacked = tally(slack.bodies("/services/T0/B0/x").iter().map(slack_run));
    let runs: Vec<String> = (0..4)
        .map(|i| run_result(i, Outcome::Ok).correlation_id)
        .collect();
    for (sink, seen, want) in [
        ("webhook", &hooked, &ids),
        ("email", &mailed, &ids),
        ("slack", &slacked, &runs),
    ] {
        let keys: Vec<&String> = seen.keys().collect();
        let mut want: Vec<&String> = want.iter().collect();
        want.sort();
        assert_eq!(keys, want, "{sink} got every notification, and only those");
        assert!(
            seen.values().all(|&n| n <= 2),
            "{sink}: none more than twice: {seen:?}"
        );
    }
    assert!(
        slacked.values().all(|&n| n == 2),
        "Slack took each once while failing, and once more: {slacked:?}"
    );
    assert!(hooked.values().chain(mailed.values()).all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_never_recovers_leaves_dead_letters_that_history_lists() {
    let slack = Sink::start().await;
    let mut hook = Sink::start().await;
    let smtp = tokio::task::spawn_blocking(|| SmtpServer::start_on(0))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_config(dir, slack.addr, hook.addr, smtp.port, 3);
    let (monitor, metrics) = queue(dir, 2).await;
    // Slack and email are fine; the webhook's port is closed for good.
    hook.down().await;
    let mut floor = Utc::now();
    let mut total = Delivered::default();
    for _ in 0..10 {
        if monitor.store().pending_notifications().unwrap() == 0 {
            break;
        }
        let (d, at) = next_pass(&monitor, floor).await;
        floor = at;
        total.sent += d.sent;
        total.retrying += d.retrying;
        total.dead += d.dead;
    }
    // Three attempts each: two retries, then a dead letter.
    assert_eq!((total.sent, total.retrying, total.dead), (4, 4, 2));
    assert_eq!(monitor.store().pending_notifications().unwrap(), 0);
    let dead = monitor.store().dead_letters(10).unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .all(|d| d.channel == "hook" && d.dead && d.attempts == 3),
        "{dead:?}"
    );
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("sms_canary_outbox_dead_letters{") && l.ends_with(" 2")),
        "{text}"
    );
    assert_eq!(slack.bodies("/services/T0/B0/x").len(), 2);
    assert_eq!(smtp.messages().len(), 2);

    // What an operator sees.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["history"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("notifications: 0 pending, 2 dead-lettered"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("dead letter"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, entry) in lines.iter().zip(&dead) {
        assert!(
            line.contains("hook")
                && line.contains(&entry.notification.headline())
                && line.contains("after 3 attempts"),
            "{line}"
        );
    }
}
