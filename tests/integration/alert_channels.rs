//! Alert channels against real receivers: small axum apps on 127.0.0.1:0
//! standing in for Slack, a webhook consumer and Alertmanager, and a real SMTP
//! server (Python's aiosmtpd) for email. Channels are built from TOML the way
//! the daemon builds them, and every status class is checked to map to the
//! error class the outbox acts on.
//!
//! The SMTP server runs under `SMS_CANARY_TEST_PYTHON` when set (it must have
//! `aiosmtpd==1.4.6` installed); otherwise the test builds a venv under the
//! target directory on first run and installs aiosmtpd from PyPI into it. No
//! python3 at all is a test failure, not a skip: this must run in CI.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sms_canary::alert::{Channel, ChannelError, Notification, Severity, Transition, build_channel};
use sms_canary::config::Config;
use sms_canary::gateway::ErrorClass;
use sms_canary::probe::Outcome;
use tokio::net::TcpListener;

// ---------------------------------------------------------------- fixtures

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53)
        .single()
        .expect("valid time")
}

fn since() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 10, 0)
        .single()
        .expect("valid time")
}

/// A critical "lost" alert with everything a notice can carry.
fn firing() -> Notification {
    Notification {
        id: ulid::Ulid::generate().to_string(),
        transition: Transition::Firing,
        probe: "us-east-twilio".into(),
        instance: "canary-1".into(),
        severity: Severity::Critical,
        outcome: Outcome::Lost,
        reason: Some("not received within 120s <after acceptance> & no receipt".into()),
        code: Some("30003".into()),
        latency_ms: None,
        threshold_ms: 30000.0,
        correlation_ids: vec!["cid-3333".into(), "cid-2222".into(), "cid-1111".into()],
        firing_since: Some(since()),
        at: at(),
        schema_version: sms_canary::alert::NOTIFICATION_SCHEMA_VERSION,
        gateway: Some("twilio-us".into()),
        receiver: Some("inbox".into()),
        message_id: Some("SM0123456789abcdef0123456789abcdef".into()),
        destination: Some("+********100".into()),
        phases_ms: [("submit".to_string(), 812.0), ("sent".to_string(), 1104.0)]
            .into_iter()
            .collect(),
        progress: Some(
            "accepted 812ms, sent 1s 104ms, no delivery receipt, nothing arrived within 2m".into(),
        ),
        failing_since: Some(since() - chrono::Duration::minutes(10)),
        failed_runs: 3,
        last_ok: Some(sms_canary::alert::LastOk {
            at: since() - chrono::Duration::minutes(15),
            correlation_id: "cid-0000".into(),
        }),
        findings: vec![sms_canary::probe::Finding::FakeDlr],
        links: vec![
            sms_canary::alert::Link {
                label: "Runbook".into(),
                url: "https://wiki.example.com/runbooks/sms?probe=us-east-twilio".into(),
            },
            sms_canary::alert::Link {
                label: "Dashboard".into(),
                url: "https://grafana.example.com/d/sms?var-probe=us-east-twilio".into(),
            },
        ],
        follows: None,
    }
}

fn resolved() -> Notification {
    Notification {
        transition: Transition::Resolved,
        outcome: Outcome::Ok,
        reason: None,
        code: None,
        latency_ms: Some(4210.0),
        findings: vec![],
        last_ok: None,
        follows: Some("01FIRINGNOTICE".into()),
        ..firing()
    }
}

/// Loads `[alerts.NAME]` from TOML and builds the channel as the daemon
/// does. Settings that cannot work are refused as the config loads (as a
/// permanent error here, with the config's message).
fn build(name: &str, table: &str) -> Result<Box<dyn Channel>, ChannelError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    let text = format!("[canary]\nprobes = []\n\n[alerts.{name}]\n{table}\n");
    std::fs::write(&path, text).expect("write config");
    let config = Config::load_with_env(&path, &|_| None).map_err(|e| ChannelError {
        class: ErrorClass::Permanent,
        reason: e.to_string(),
        code: None,
        retry_after: None,
    })?;
    build_channel(name, &config.alerts[name])
}

fn must_build(name: &str, table: &str) -> Box<dyn Channel> {
    build(name, table).unwrap_or_else(|e| panic!("channel {name} should build: {e}"))
}

// ------------------------------------------------- an HTTP capture server

#[derive(Debug, Clone)]
struct Captured {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_string())
    }
}

/// What the server answers: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Clone)]
struct Capture {
    requests: Arc<Mutex<Vec<Captured>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Capture {
    fn set_answer(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    fn requests(&self) -> Vec<Captured> {
        self.requests.lock().expect("lock").clone()
    }

    fn last(&self) -> Captured {
        self.requests().pop().expect("a request was received")
    }
}

async fn record(
    State(capture): State<Capture>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    capture.requests.lock().expect("lock").push(Captured {
        path: uri.path().to_string(),
        headers,
        body,
    });
    let (status, headers, body) = capture.answer.lock().expect("lock").clone();
    let mut response = (StatusCode::from_u16(status).expect("valid status"), body).into_response();
    for (k, v) in headers {
        response
            .headers_mut()
            .insert(k, v.parse().expect("header value"));
    }
    response
}

/// Starts a server answering every request with `answer`; returns its base URL.
async fn capture_server(answer: Answer) -> (Capture, String) {
    let capture = Capture {
        requests: Arc::default(),
        answer: Arc::new(Mutex::new(answer)),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().fallback(record).with_state(capture.clone());
    tokio::spawn(axum::serve(listener, app).into_future());
    (capture, base)
}

/// An address where nothing listens.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

// ------------------------------------------------------------------ Slack

const SLACK_TOKEN: &str = "XXXXsecretXXXXtokenXXXX";

fn slack(base: &str) -> Box<dyn Channel> {
    must_build(
        "team",
        &format!("kind = \"slack\"\nwebhook_url = \"{base}/services/T000/B000/{SLACK_TOKEN}\""),
    )
}

#[tokio::test]
async fn slack_posts_blocks_with_a_plain_text_fallback() {
    let (capture, base) = capture_server((200, vec![], "ok")).await;
    let channel = slack(&base);
    assert_eq!((channel.name(), channel.kind()), ("team", "slack"));
    let n = firing();
    channel.send(&n).await.expect("delivered");

    let req = capture.last();
    assert_eq!(req.path, format!("/services/T000/B000/{SLACK_TOKEN}"));
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = req.json();

    let text = body["text"].as_str().expect("text fallback");
    assert_eq!(text, n.text());
    for needle in [
        "not received within 120s",
        "30003",
        "cid-3333, cid-2222, cid-1111",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert!(
        body.get("attachments").is_none(),
        "colour-free: no attachments"
    );

    let blocks = body["blocks"].as_array().expect("blocks");
    let kinds: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "header", "section", "section", "section", "section", "actions", "context"
        ]
    );
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "CRITICAL us-east-twilio: lost");
    // mrkdwn control characters in the provider's words are escaped.
    assert_eq!(
        blocks[1]["text"]["text"],
        "*Reason*\nnot received within 120s &lt;after acceptance&gt; &amp; no receipt"
    );
    assert_eq!(
        blocks[2]["text"]["text"],
        "*Run*\naccepted 812ms, sent 1s 104ms, no delivery receipt, nothing arrived within 2m"
    );
    assert!(
        blocks[3]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("fake DLR")
    );
    let fields: Vec<&str> = blocks[4]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    for expected in [
        "*Probe*\nus-east-twilio",
        "*Outcome*\nlost",
        "*Severity*\ncritical",
        "*Latency*\nnone (nothing arrived) (threshold 30s)",
        "*Provider code*\n30003",
        "*Route*\ngateway twilio-us → receiver inbox, to +********100",
        "*Provider message id*\nSM0123456789abcdef0123456789abcdef",
        "*Failing since*\n2025-03-14T09:00:00Z (3 failed runs)",
        "*Firing since*\n2025-03-14T09:10:00Z",
        "*Last good run*\n2025-03-14T08:55:00Z (cid-0000)",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:#?}"
        );
    }
    assert!(
        fields.len() <= 10,
        "Slack takes at most 10 fields: {fields:#?}"
    );
    // Buttons for the runbook and the dashboard.
    let buttons: Vec<(&str, &str)> = blocks[5]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["text"]["text"].as_str().unwrap(),
                b["url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [
            (
                "Runbook",
                "https://wiki.example.com/runbooks/sms?probe=us-east-twilio"
            ),
            (
                "Dashboard",
                "https://grafana.example.com/d/sms?var-probe=us-east-twilio"
            )
        ]
    );
    let context = blocks[6]["elements"][0]["text"].as_str().expect("context");
    for needle in [
        "`cid-3333`",
        "`cid-2222`",
        "`cid-1111`",
        "2025-03-14T09:26:53Z",
    ] {
        assert!(context.contains(needle), "{needle} missing from {context}");
    }
}

#[tokio::test]
async fn slack_resolved_notice_says_so() {
    let (capture, base) = capture_server((200, vec![], "ok")).await;
    slack(&base).send(&resolved()).await.expect("delivered");
    let body = capture.last().json();
    let header = body["blocks"][0]["text"]["text"].as_str().expect("header");
    assert_eq!(header, "RESOLVED us-east-twilio: ok");
    assert!(
        body["text"]
            .as_str()
            .expect("text")
            .contains("Latency: 4s 210ms")
    );
}

#[tokio::test]
async fn slack_statuses_map_to_error_classes() {
    let (capture, base) = capture_server((200, vec![], "ok")).await;
    let channel = slack(&base);
    let n = firing();
    let cases: [(Answer, Option<ErrorClass>); 8] = [
        ((200, vec![], "ok"), None),
        ((500, vec![], "rollup_error"), Some(ErrorClass::Transient)),
        ((503, vec![], "unavailable"), Some(ErrorClass::Transient)),
        (
            (400, vec![], "invalid_payload"),
            Some(ErrorClass::Permanent),
        ),
        ((403, vec![], "invalid_token"), Some(ErrorClass::Permanent)),
        (
            (404, vec![], "channel_not_found"),
            Some(ErrorClass::Permanent),
        ),
        (
            (410, vec![], "channel_is_archived"),
            Some(ErrorClass::Permanent),
        ),
        (
            (302, vec![("location", "/elsewhere")], ""),
            Some(ErrorClass::Permanent),
        ),
    ];
    for (answer, expected) in cases {
        let (status, _, body) = answer.clone();
        capture.set_answer(answer);
        match (channel.send(&n).await, expected) {
            (Ok(()), None) => {}
            (Err(e), Some(class)) => {
                assert_eq!(e.class, class, "{status}: {e}");
                assert!(e.reason.contains(&status.to_string()), "{status}: {e}");
                assert!(e.reason.contains(body), "{status}: body missing from {e}");
                assert!(
                    !e.reason.contains(SLACK_TOKEN),
                    "the webhook URL leaked: {e}"
                );
            }
            (got, want) => panic!("{status}: got {got:?}, want {want:?}"),
        }
    }
    // A redirect is not followed: only the one request per case arrived.
    assert_eq!(capture.requests().len(), 8);
}

#[tokio::test]
async fn slack_rate_limit_is_transient_with_retry_after() {
    let (_capture, base) = capture_server((429, vec![("retry-after", "7")], "rate_limited")).await;
    let e = slack(&base).send(&firing()).await.expect_err("429");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn slack_unreachable_is_transient_and_never_shows_the_url() {
    let addr = closed_port().await;
    let e = slack(&format!("http://{addr}"))
        .send(&firing())
        .await
        .expect_err("down");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    assert!(
        !e.reason.contains(SLACK_TOKEN),
        "the webhook URL leaked: {e}"
    );
    assert!(
        !e.reason.contains("/services/"),
        "the webhook URL leaked: {e}"
    );
}

#[test]
fn slack_bad_url_is_permanent_at_build_without_quoting_it() {
    let e = build(
        "team",
        "kind = \"slack\"\nwebhook_url = \"not a url XXXXsecret\"",
    )
    .err()
    .expect("refused");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(!e.reason.contains("XXXXsecret"), "{e}");
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_body_is_the_notification_signed_over_its_bytes() {
    let (capture, base) = capture_server((204, vec![], "")).await;
    let channel = must_build(
        "hook",
        &format!(
            "kind = \"webhook\"\nurl = \"{base}/hooks/canary\"\nsecret = \"s3cret\"\n\
             headers = {{ Authorization = \"Bearer abc\", X-Signature-256 = \"forged\" }}"
        ),
    );
    assert_eq!(channel.kind(), "webhook");
    let n = firing();
    channel.send(&n).await.expect("delivered");

    let req = capture.last();
    assert_eq!(req.path, "/hooks/canary");
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(req.header("authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(
        req.header("x-sms-canary-notification-id"),
        Some(n.id.clone())
    );
    let back: Notification = serde_json::from_slice(&req.body).expect("a Notification");
    assert_eq!(back, n);

    let signature = req.header("x-signature-256").expect("signed");
    assert!(signature.starts_with("sha256="), "{signature}");
    assert!(sms_canary::signing::verify_body_signature(
        &req.body, "s3cret", &signature
    ));
    assert!(!sms_canary::signing::verify_body_signature(
        &req.body, "other", &signature
    ));
}

#[tokio::test]
async fn webhook_without_secret_is_unsigned_and_classifies_statuses() {
    let (capture, base) = capture_server((200, vec![], "")).await;
    let channel = must_build("hook", &format!("kind = \"webhook\"\nurl = \"{base}/h\""));
    channel.send(&resolved()).await.expect("delivered");
    let req = capture.last();
    assert!(req.header("x-signature-256").is_none());
    let back: Notification = serde_json::from_slice(&req.body).expect("a Notification");
    assert_eq!(back, resolved_with_id(&back.id));

    for (status, class) in [
        (500, ErrorClass::Transient),
        (408, ErrorClass::Transient),
        (401, ErrorClass::Permanent),
        (422, ErrorClass::Permanent),
    ] {
        capture.set_answer((status, vec![], "nope"));
        let e = channel.send(&firing()).await.expect_err("refused");
        assert_eq!(e.class, class, "{status}: {e}");
    }
    let addr = closed_port().await;
    let down = must_build(
        "hook",
        &format!("kind = \"webhook\"\nurl = \"http://{addr}/h\""),
    );
    let e = down.send(&firing()).await.expect_err("down");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
}

fn resolved_with_id(id: &str) -> Notification {
    Notification {
        id: id.to_string(),
        ..resolved()
    }
}

#[test]
fn webhook_bad_header_is_permanent_at_build_without_quoting_the_value() {
    let e = build(
        "hook",
        "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nheaders = { \"Bad Name\" = \"v\" }",
    )
    .err()
    .expect("refused");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("Bad Name"), "{e}");
    let e = build(
        "hook",
        "kind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nheaders = { X-Token = \"tok\\nXXXXsecret\" }",
    )
    .err()
    .expect("refused");
    assert!(
        e.reason.contains("X-Token") && !e.reason.contains("XXXXsecret"),
        "{e}"
    );
}

// ----------------------------------------------------------- Alertmanager

fn alertmanager(base: &str) -> Box<dyn Channel> {
    must_build(
        "am",
        &format!(
            "kind = \"alertmanager\"\nurl = \"{base}/am\"\n\
             labels = {{ team = \"messaging\", severity = \"ignored\" }}"
        ),
    )
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn labels(alert: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(alert["labels"].clone()).expect("string labels")
}

#[tokio::test]
async fn alertmanager_firing_posts_labels_annotations_and_a_future_end() {
    let (capture, base) = capture_server((200, vec![], "")).await;
    let channel = alertmanager(&base);
    assert_eq!(channel.kind(), "alertmanager");
    let n = firing();
    channel.send(&n).await.expect("delivered");

    let req = capture.last();
    assert_eq!(req.path, "/am/api/v2/alerts");
    let body = req.json();
    let alerts = body.as_array().expect("an array of alerts");
    let alert = &alerts[0];
    let want: BTreeMap<String, String> = [
        ("alertname", "SmsCanaryProbeFailing"),
        ("probe", "us-east-twilio"),
        ("instance", "canary-1"),
        ("severity", "critical"),
        ("team", "messaging"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels(alert), want);

    let annotations = &alert["annotations"];
    assert_eq!(annotations["summary"], n.headline());
    assert_eq!(annotations["description"], n.text());
    assert_eq!(annotations["reason"], n.reason.clone().expect("reason"));
    assert_eq!(annotations["code"], "30003");
    assert_eq!(
        annotations["correlation_ids"],
        "cid-3333, cid-2222, cid-1111"
    );
    assert_eq!(time(&alert["startsAt"]), since());
    assert!(time(&alert["endsAt"]) > at() + chrono::TimeDelta::hours(1));

    // A critical alert also resolves its warning twin (an escalation from slow).
    assert_eq!(alerts.len(), 2);
    let twin = &alerts[1];
    assert_eq!(labels(twin)["severity"], "warning");
    assert_eq!(time(&twin["endsAt"]), at());
}

#[tokio::test]
async fn alertmanager_resolved_ends_at_the_notice_time() {
    let (capture, base) = capture_server((200, vec![], "")).await;
    let n = resolved();
    alertmanager(&base).send(&n).await.expect("delivered");
    let body = capture.last().json();
    let alert = &body[0];
    assert_eq!(
        labels(alert)["severity"],
        "critical",
        "same labels as when firing"
    );
    assert_eq!(time(&alert["startsAt"]), since());
    assert_eq!(time(&alert["endsAt"]), at());
}

#[tokio::test]
async fn alertmanager_warning_reminder_is_one_alert() {
    let (capture, base) = capture_server((200, vec![], "")).await;
    let n = Notification {
        transition: Transition::Reminder,
        severity: Severity::Warning,
        outcome: Outcome::Slow,
        latency_ms: Some(45000.0),
        ..firing()
    };
    alertmanager(&base).send(&n).await.expect("delivered");
    let body = capture.last().json();
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(labels(&body[0])["severity"], "warning");
    assert!(time(&body[0]["endsAt"]) > at());
}

#[tokio::test]
async fn alertmanager_statuses_map_to_error_classes() {
    let (capture, base) = capture_server((400, vec![], "{\"code\":400,\"message\":\"bad\"}")).await;
    let channel = alertmanager(&base);
    let e = channel.send(&firing()).await.expect_err("400");
    assert_eq!(e.class, ErrorClass::Permanent, "{e}");
    assert!(e.reason.contains("bad"), "{e}");
    capture.set_answer((503, vec![], "busy"));
    let e = channel.send(&firing()).await.expect_err("503");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    let addr = closed_port().await;
    let e = alertmanager(&format!("http://{addr}"))
        .send(&firing())
        .await
        .expect_err("down");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
}

// ------------------------------------------------------------------ email

const AIOSMTPD_VERSION: &str = "1.4.6";
const SMTP_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/alert_smtp.py"
);

/// A Python with aiosmtpd.
pub(crate) fn python() -> PathBuf {
    let smtpd = crate::python::Package {
        pip: "aiosmtpd==1.4.6",
        check: "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '1.4.6')",
    };
    crate::python::with(&format!("aiosmtpd-{AIOSMTPD_VERSION}"), &[smtpd])
}

/// The SMTP server: killed on drop (and it exits by itself when its stdin,
/// held here, closes with the test process).
pub(crate) struct SmtpServer {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    fn start() -> SmtpServer {
        SmtpServer::start_on(0)
    }

    /// On `port`, or on a free one for 0: a server stopped (dropped) and
    /// started again on its port looks to clients like an outage that ended.
    pub(crate) fn start_on(port: u16) -> SmtpServer {
        let python = python();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(python)
            .arg(SMTP_SCRIPT)
            .arg(dir.path())
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        let port = match read.ok().and_then(|_| line.trim().parse().ok()) {
            Some(port) => port,
            None => {
                let _ = child.kill();
                panic!("the SMTP server did not print its port (got {line:?})");
            }
        };
        SmtpServer { child, port, dir }
    }

    /// The messages received so far, in order.
    pub(crate) fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(p).expect("read a message"))
                    .expect("a JSON message")
            })
            .collect()
    }
}

async fn smtp_server() -> SmtpServer {
    tokio::task::spawn_blocking(SmtpServer::start)
        .await
        .expect("start the SMTP server")
}

fn email_table(port: u16, to: &str) -> String {
    format!(
        "kind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{port}\"\n\
         from = \"SMS Canary <canary@example.com>\"\nto = [{to}]"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_is_delivered_to_a_real_smtp_server() {
    let server = smtp_server().await;
    let channel = must_build(
        "mail",
        &email_table(
            server.port,
            "\"oncall@example.com\", \"Ops <ops@example.org>\"",
        ),
    );
    assert_eq!((channel.name(), channel.kind()), ("mail", "email"));
    let n = firing();
    channel.send(&n).await.expect("delivered");

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["mail_from"], "canary@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "ops@example.org"])
    );
    let headers = &m["headers"];
    assert_eq!(headers["From"], "SMS Canary <canary@example.com>");
    let to = headers["To"].as_str().expect("To");
    assert!(
        to.contains("oncall@example.com") && to.contains("Ops <ops@example.org>"),
        "{to}"
    );
    assert_eq!(headers["Subject"], format!("[sms-canary] {}", n.headline()));
    assert_eq!(headers["Message-ID"], format!("<{}@sms-canary>", n.id));
    assert_eq!(headers["X-SMS-Canary-Notification-ID"], n.id);
    let body = m["body"].as_str().expect("text body");
    for needle in [
        "Reason: not received within 120s <after acceptance> & no receipt",
        "Provider code: 30003",
        "cid-3333, cid-2222, cid-1111",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }

    // Text and HTML, with the facts an on-call person acts on, escaped.
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(
        headers["Subject"],
        "[sms-canary] CRITICAL us-east-twilio: lost"
    );
    for needle in [
        "Run: accepted 812ms, sent 1s 104ms, no delivery receipt, nothing arrived within 2m",
        "Route: gateway twilio-us → receiver inbox, to +********100",
        "Provider message id: SM0123456789abcdef0123456789abcdef",
        "Failing since: 2025-03-14T09:00:00Z (3 failed runs)",
        "Last good run: 2025-03-14T08:55:00Z (cid-0000)",
        "Finding: the delivery receipt said delivered, the message never arrived (fake DLR)",
        "Runbook: https://wiki.example.com/runbooks/sms?probe=us-east-twilio",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    let html = m["html"].as_str().expect("an HTML part");
    assert!(
        html.contains("<h2>CRITICAL us-east-twilio: lost</h2>")
            && html.contains("not received within 120s &lt;after acceptance&gt; &amp; no receipt")
            && html.contains(
                "<a href=\"https://grafana.example.com/d/sms?var-probe=us-east-twilio\">"
            ),
        "{html}"
    );
    assert!(
        headers.get("In-Reply-To").is_none(),
        "a firing starts a thread"
    );

    // A retry is the same message to mail software.
    channel.send(&n).await.expect("delivered again");
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["headers"]["Message-ID"], headers["Message-ID"]);

    // The resolve answers the firing notice's mail: one thread per alert.
    let resolve = Notification {
        follows: Some(n.id.clone()),
        ..resolved()
    };
    channel.send(&resolve).await.expect("delivered");
    let messages = server.messages();
    let h = &messages[2]["headers"];
    assert_eq!(h["Subject"], "[sms-canary] RESOLVED us-east-twilio: ok");
    assert_eq!(h["In-Reply-To"], format!("<{}@sms-canary>", n.id));
    assert_eq!(h["References"], format!("<{}@sms-canary>", n.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_smtp_replies_map_to_error_classes() {
    let server = smtp_server().await;
    let refused = must_build("mail", &email_table(server.port, "\"reject@example.com\""));
    let e = refused.send(&firing()).await.expect_err("550");
    assert_eq!(e.class, ErrorClass::Permanent, "{e}");
    assert!(e.reason.contains("550"), "{e}");

    let busy = must_build("mail", &email_table(server.port, "\"busy@example.com\""));
    let e = busy.send(&firing()).await.expect_err("451");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    assert!(e.reason.contains("451"), "{e}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_server_down_is_transient_and_never_shows_the_password() {
    let addr = closed_port().await;
    let channel = must_build(
        "mail",
        &format!(
            "kind = \"email\"\nsmtp_url = \"smtp://alerts:XXXXpassword@{addr}\"\n\
             from = \"canary@example.com\"\nto = [\"oncall@example.com\"]"
        ),
    );
    let e = channel.send(&firing()).await.expect_err("down");
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    assert!(
        !e.reason.contains("XXXXpassword"),
        "the smtp URL leaked: {e}"
    );
}

#[tokio::test]
async fn email_tls_urls_build_and_fail_transiently_when_down() {
    let addr = closed_port().await;
    for url in [
        format!("smtps://alerts:XXXXpassword@{addr}"),
        format!("smtp://alerts:XXXXpassword@{addr}?tls=required"),
        format!("smtp://{addr}?tls=opportunistic"),
    ] {
        let channel = must_build(
            "mail",
            &format!(
                "kind = \"email\"\nsmtp_url = \"{url}\"\n\
                 from = \"canary@example.com\"\nto = [\"oncall@example.com\"]"
            ),
        );
        let e = channel.send(&firing()).await.expect_err("down");
        assert_eq!(e.class, ErrorClass::Transient, "{e}");
        assert!(
            !e.reason.contains("XXXXpassword"),
            "the smtp URL leaked: {e}"
        );
    }
}

#[test]
fn email_bad_config_is_permanent_at_build() {
    let e = build(
        "mail",
        "kind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\n\
         from = \"canary@example.com\"\nto = [\"oncall@example.com\", \"not an address\"]",
    )
    .err()
    .expect("bad to");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("not an address"), "{e}");

    let e = build(
        "mail",
        "kind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\n\
         from = \"canary.example.com\"\nto = [\"oncall@example.com\"]",
    )
    .err()
    .expect("bad from");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("canary.example.com"), "{e}");

    let e = build(
        "mail",
        "kind = \"email\"\nsmtp_url = \"gopher://alerts:XXXXpassword@127.0.0.1\"\n\
         from = \"canary@example.com\"\nto = [\"oncall@example.com\"]",
    )
    .err()
    .expect("bad scheme");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("gopher://"), "{e}");
    assert!(
        !e.reason.contains("XXXXpassword"),
        "the smtp URL leaked: {e}"
    );

    let e = build(
        "mail",
        "kind = \"email\"\nsmtp_url = \"smtps://alerts:XXXXpassword@127.0.0.1?tls=maybe\"\n\
         from = \"canary@example.com\"\nto = [\"oncall@example.com\"]",
    )
    .err()
    .expect("bad tls");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("tls=maybe"), "{e}");
    assert!(
        !e.reason.contains("XXXXpassword"),
        "the smtp URL leaked: {e}"
    );
}
