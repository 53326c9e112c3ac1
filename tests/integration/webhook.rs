//! The webhook routes over real HTTP: Twilio-signed requests are accepted and
//! matched by token; unsigned, badly signed, oversized and malformed ones are
//! refused with 403 / 413 / 400.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sms_canary::config::Config;
use sms_canary::receiver::webhook::{Hooks, router};
use sms_canary::receiver::{Event, Inbox};
use sms_canary::signing::twilio_signature;

const TOKEN: &str = "webhook-test-token";

fn config(verify: bool) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"{TOKEN}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"tw\"\nverify_signatures = {verify}\n\n\
         [canary]\nprobes = []\n",
        "0".repeat(32)
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).unwrap();
    (dir, config)
}

struct Server {
    base: String,
    inbox: Arc<Inbox>,
    hooks: Arc<Hooks>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Serves the routes on 127.0.0.1:0, with a public URL that differs from the
/// bound address the way it does behind a proxy: signatures cover the public one.
async fn serve(verify: bool) -> Server {
    let (dir, config) = config(verify);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let inbox = Inbox::new();
    let public = url::Url::parse("https://canary.example.com/sms").unwrap();
    let hooks = Hooks::new(&config, Arc::clone(&inbox), public);
    tokio::spawn(axum::serve(listener, router(Arc::clone(&hooks))).into_future());
    Server {
        base,
        inbox,
        hooks,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn form(pairs: &[(&str, &str)]) -> (Vec<(String, String)>, String) {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    (params, body)
}

impl Server {
    async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        signature: Option<&str>,
    ) -> u16 {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

const INBOUND: &str = "/hooks/twilio/inbound/inbox";

fn inbound(token: &str) -> (Vec<(String, String)>, String) {
    form(&[
        ("MessageSid", "SM1"),
        ("From", "+15005550006"),
        ("To", "+15005550100"),
        ("Body", &format!("sms-canary p {token}")),
    ])
}

#[tokio::test]
async fn a_signed_inbound_message_reaches_the_waiting_run() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let (params, body) = inbound("abcdefghjk");
    let sig = twilio_signature(
        &format!("https://canary.example.com/sms{INBOUND}"),
        &params,
        TOKEN,
    );
    assert_eq!(s.post(INBOUND, body, Some(&sig)).await, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    assert_eq!(s.hooks.counters().accepted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn wrong_missing_or_misdirected_signatures_are_refused() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let (params, body) = inbound("abcdefghjk");
    let public = format!("https://canary.example.com/sms{INBOUND}");
    let wrong_key = twilio_signature(&public, &params, "not-the-token");
    // Signed for the bound address rather than the public URL the provider called.
    let wrong_url = twilio_signature(&format!("{}{INBOUND}", s.base), &params, TOKEN);
    assert_eq!(s.post(INBOUND, body.clone(), Some(&wrong_key)).await, 403);
    assert_eq!(s.post(INBOUND, body.clone(), Some(&wrong_url)).await, 403);
    assert_eq!(s.post(INBOUND, body.clone(), None).await, 403);
    assert_eq!(s.post(INBOUND, body, Some("garbage")).await, 403);
    // A signature over other parameters does not carry over to a tampered body.
    let (_, tampered) = inbound("zzzzzzzzzz");
    let good = twilio_signature(&public, &params, TOKEN);
    assert_eq!(s.post(INBOUND, tampered, Some(&good)).await, 403);
    assert!(
        waiter.try_recv().is_none(),
        "nothing refused may reach a run"
    );
    assert_eq!(s.hooks.counters().forbidden.load(Ordering::Relaxed), 5);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_malformed_ones_400() {
    let s = serve(true).await;
    let huge = format!("Body={}", "x".repeat(200 * 1024));
    assert_eq!(s.post(INBOUND, huge, None).await, 413);
    assert_eq!(s.post(INBOUND, vec![0xff, 0xfe, 0x00], None).await, 400);
    // Signed, but not an inbound message.
    let (params, body) = form(&[("Foo", "bar")]);
    let sig = twilio_signature(
        &format!("https://canary.example.com/sms{INBOUND}"),
        &params,
        TOKEN,
    );
    assert_eq!(s.post(INBOUND, body, Some(&sig)).await, 400);
    assert_eq!(
        s.post("/hooks/twilio/inbound/nobody", "Body=x", None).await,
        404
    );
}

#[tokio::test]
async fn status_callbacks_are_signed_with_the_gateway_token_and_routed_by_run() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let path = "/hooks/twilio/status/tw?run=abcdefghjk";
    let (params, body) = form(&[
        ("MessageSid", "SM1"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ]);
    let sig = twilio_signature(
        &format!("https://canary.example.com/sms{path}"),
        &params,
        TOKEN,
    );
    assert_eq!(s.post(path, body.clone(), Some("bad")).await, 403);
    assert_eq!(s.post(path, body, Some(&sig)).await, 200);
    match waiter.try_recv() {
        Some(Event::Receipt(r)) => {
            assert!(r.status.is_failure());
            assert_eq!(r.error_code.as_deref(), Some("30003"));
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    assert_eq!(
        s.post("/hooks/twilio/status/unknown?run=x", "a=b", None)
            .await,
        404
    );
}

#[tokio::test]
async fn signature_checks_can_be_turned_off_per_receiver() {
    let s = serve(false).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let (_, body) = inbound("abcdefghjk");
    assert_eq!(s.post(INBOUND, body, None).await, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
}
