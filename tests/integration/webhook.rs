//! The webhook routes over real HTTP: Twilio-signed requests are accepted and
//! matched by token; unsigned, badly signed, oversized and malformed ones are
//! refused with 403 / 413 / 400.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sms_canary::config::Config;
use sms_canary::providers::twilio::signature::sign as twilio_signature;
#[allow(unused_imports)]
use sms_canary::providers::vonage::signature::{
    SignatureMethod as VonageMethod, sign as vonage_signature, verify as verify_vonage_signature,
};
use sms_canary::receiver::webhook::{Hooks, router};
use sms_canary::receiver::{Event, Inbox};
use sms_canary::signing::body_signature;

const TOKEN: &str = "webhook-test-token";
const VSECRET: &str = "vonage-signature-secret";
const JSECRET: &str = "json-hmac-secret";

fn config(verify: bool) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"{TOKEN}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"tw\"\nverify_signatures = {verify}\n\n\
         [gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nsignature_secret = \"{VSECRET}\"\n\n\
         [gateways.vu]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\n\n\
         [receivers.vinbox]\nkind = \"webhook\"\ngateway = \"vg\"\n\n\
         [receivers.uinbox]\nkind = \"webhook\"\ngateway = \"vu\"\n\n\
         [receivers.jinbox]\nkind = \"webhook\"\njson_secret = \"{JSECRET}\"\njson_body = \"$.message.text\"\n\n\
         [receivers.nosecret]\nkind = \"webhook\"\n\n\
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

fn vonage_inbound(
    token: &str,
    timestamp: i64,
    secret: Option<&str>,
) -> (Vec<(String, String)>, String) {
    let mut params: Vec<(String, String)> = [
        ("msisdn", "447700900001"),
        ("to", "447700900000"),
        ("messageId", "0A00000012345678"),
        ("text", &format!("sms-canary p {token}")),
        ("type", "text"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    params.push(("timestamp".into(), timestamp.to_string()));
    if let Some(secret) = secret {
        let sig = vonage_signature(&params, secret, VonageMethod::Md5hash);
        params.push(("sig".into(), sig));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    (params, body)
}

#[tokio::test]
async fn vonage_inbound_is_checked_when_the_account_signs() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let now = chrono::Utc::now().timestamp();
    let path = "/hooks/vonage/inbound/vinbox";
    let (_, unsigned) = vonage_inbound("abcdefghjk", now, None);
    let (_, wrong) = vonage_inbound("abcdefghjk", now, Some("another-secret"));
    let (_, stale) = vonage_inbound("abcdefghjk", now - 3600, Some(VSECRET));
    assert_eq!(s.post(path, unsigned, None).await, 403);
    assert_eq!(s.post(path, wrong, None).await, 403);
    assert_eq!(
        s.post(path, stale, None).await,
        403,
        "a replay an hour old is refused"
    );
    assert!(waiter.try_recv().is_none());
    let (_, good) = vonage_inbound("abcdefghjk", now, Some(VSECRET));
    assert_eq!(s.post(path, good.clone(), None).await, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    // Vonage's default delivery is a GET with the fields in the query.
    let get = s
        .client
        .get(format!("{}{path}?{good}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
}

#[tokio::test]
async fn vonage_inbound_from_an_account_that_does_not_sign_is_accepted_unsigned() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let (_, body) = vonage_inbound("abcdefghjk", chrono::Utc::now().timestamp(), None);
    assert_eq!(
        s.post("/hooks/vonage/inbound/uinbox", body, None).await,
        200
    );
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    // JSON bodies work too; without text it is malformed.
    let json = serde_json::json!({"msisdn": "447700900001", "to": "447700900000", "text": "sms-canary p abcdefghjk"});
    let r = s
        .client
        .post(format!("{}/hooks/vonage/inbound/uinbox", s.base))
        .json(&json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .client
        .post(format!("{}/hooks/vonage/inbound/uinbox", s.base))
        .json(&serde_json::json!({"msisdn": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn vonage_receipts_end_runs_with_the_code_explained() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let now = chrono::Utc::now().timestamp().to_string();
    let mut params: Vec<(String, String)> = [
        ("messageId", "0A1"),
        ("status", "failed"),
        ("err-code", "15"),
        ("timestamp", now.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = vonage_signature(&params, VSECRET, VonageMethod::Md5hash);
    params.push(("sig".into(), sig));
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    assert_eq!(
        s.post(
            "/hooks/vonage/receipt/vg?run=abcdefghjk",
            "status=failed&err-code=15",
            None
        )
        .await,
        403
    );
    assert_eq!(
        s.post("/hooks/vonage/receipt/vg?run=abcdefghjk", body, None)
            .await,
        200
    );
    match waiter.try_recv() {
        Some(Event::Receipt(r)) => {
            assert!(r.status.is_failure());
            assert_eq!(r.error_code.as_deref(), Some("15"));
            assert!(r.explanation.unwrap().contains("insufficient funds"));
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    assert_eq!(
        s.post("/hooks/vonage/receipt/tw?run=x", "status=delivered", None)
            .await,
        404,
        "not a Vonage gateway"
    );
}

#[tokio::test]
async fn json_webhooks_need_a_valid_body_signature() {
    let s = serve(true).await;
    let mut waiter = s.inbox.register("abcdefghjk");
    let body =
        serde_json::to_vec(&serde_json::json!({"message": {"text": "sms-canary p abcdefghjk"}}))
            .unwrap();
    let post = |sig: Option<String>, body: Vec<u8>| {
        let mut req = s
            .client
            .post(format!("{}/hooks/json/jinbox", s.base))
            .body(body);
        if let Some(sig) = sig {
            req = req.header("X-Signature-256", sig);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None, body.clone()).await, 403);
    assert_eq!(
        post(Some(body_signature(&body, "wrong")), body.clone()).await,
        403
    );
    assert_eq!(
        post(Some(body_signature(b"other", JSECRET)), body.clone()).await,
        403
    );
    assert!(waiter.try_recv().is_none());
    assert_eq!(
        post(Some(body_signature(&body, JSECRET)), body.clone()).await,
        200
    );
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    let not_json = b"{nope".to_vec();
    assert_eq!(
        post(Some(body_signature(&not_json, JSECRET)), not_json).await,
        400
    );
    let no_text = b"{\"message\": {}}".to_vec();
    assert_eq!(
        post(Some(body_signature(&no_text, JSECRET)), no_text).await,
        400
    );
    // A receiver without a secret cannot check signatures, so it refuses.
    let r = s
        .client
        .post(format!("{}/hooks/json/nosecret", s.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}
