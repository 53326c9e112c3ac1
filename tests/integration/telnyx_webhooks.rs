//! Telnyx's webhooks against the real listener, hostile ones first: only a
//! body signed (Ed25519 over `timestamp|body`) with the key of the
//! receiver's own gateway, at most five minutes old, gets through;
//! malformed is 400, unsigned, forged, stale or tampered is 403, too large
//! is 413, and every refusal is counted.

use std::sync::Arc;

use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::providers::telnyx::signature::KeyPair;
use sms_canary::receiver::webhook::{BODY_LIMIT, Hooks, router};
use sms_canary::receiver::{DeliveryStatus, Event, Inbox};
use sms_canary::server::{Limits, serve};

const TOKEN: &str = "abcdefghjk";

struct Listener {
    base: String,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn account() -> KeyPair {
    KeyPair::from_seed([7; 32])
}

async fn listen() -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let other = KeyPair::from_seed([8; 32]).public_key().to_base64();
    let main = format!(
        "[canary]\nprobes = []\n\n\
         [gateways.tx]\nkind = \"telnyx\"\napi_key = \"k\"\npublic_key = \"{}\"\n\n\
         [gateways.other]\nkind = \"telnyx\"\napi_key = \"k\"\npublic_key = \"{other}\"\n\n\
         [gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"t\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"tx\"\n\n\
         [receivers.twinbox]\nkind = \"webhook\"\ngateway = \"tw\"\n",
        account().public_key().to_base64(),
        "0".repeat(32)
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Inbox::new();
    let metrics = Arc::new(Metrics::new("test"));
    let hooks = Hooks::with_metrics(
        &config,
        Arc::clone(&inbox),
        url::Url::parse("https://canary.example.com").unwrap(),
        Some(Arc::clone(&metrics)),
    );
    tokio::spawn(serve(
        listener,
        router(hooks),
        Limits::default(),
        std::future::pending(),
    ));
    Listener {
        base: format!("http://{addr}"),
        inbox,
        metrics,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn received(token: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "data": {
            "event_type": "message.received",
            "id": "e1",
            "payload": {
                "id": "m1",
                "direction": "inbound",
                "from": { "phone_number": "+15005550006" },
                "to": [{ "phone_number": "+15005550100", "status": "webhook_delivered" }],
                "text": format!("sms-canary p {token}"),
            },
            "record_type": "event",
        }
    }))
    .unwrap()
}

fn finalized() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "data": {
            "event_type": "message.finalized",
            "payload": {
                "id": "m2",
                "to": [{ "phone_number": "+15005550100", "status": "delivery_failed" }],
                "errors": [{ "code": "40001", "title": "Not routable" }],
            },
        }
    }))
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Listener {
    async fn post(&self, path: &str, body: Vec<u8>, signed: Option<(&KeyPair, i64)>) -> u16 {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some((key, at)) = signed {
            req = req
                .header("telnyx-timestamp", at.to_string())
                .header("telnyx-signature-ed25519", key.sign(&at.to_string(), &body));
        }
        req.body(body).send().await.unwrap().status().as_u16()
    }

    fn counted(&self, route: &str, result: &str) -> u64 {
        let (route, result) = (format!("route=\"{route}\""), format!("result=\"{result}\""));
        self.metrics
            .render()
            .lines()
            .find(|l| {
                l.starts_with("sms_canary_webhook_requests_total")
                    && l.contains(&route)
                    && l.contains(&result)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bodies_signed_with_the_gateways_key_and_fresh_get_through() {
    let l = listen().await;
    let key = account();
    let path = "/hooks/telnyx/inbound/inbox";
    let mut waiter = l.inbox.register(TOKEN);

    // Unsigned, forged with another key, stale, from the future, tampered.
    assert_eq!(l.post(path, received(TOKEN), None).await, 403);
    let other = KeyPair::from_seed([8; 32]);
    assert_eq!(
        l.post(path, received(TOKEN), Some((&other, now()))).await,
        403
    );
    assert_eq!(
        l.post(path, received(TOKEN), Some((&key, now() - 301)))
            .await,
        403
    );
    assert_eq!(
        l.post(path, received(TOKEN), Some((&key, now() + 301)))
            .await,
        403
    );
    let at = now().to_string();
    let signature = key.sign(&at, &received(TOKEN));
    let mut tampered = received(TOKEN);
    tampered[10] ^= 1;
    let status = l
        .client
        .post(format!("{}{path}", l.base))
        .header("telnyx-timestamp", &at)
        .header("telnyx-signature-ed25519", &signature)
        .body(tampered)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    assert!(
        waiter.try_recv().is_none(),
        "a refused request reached the run"
    );
    assert_eq!(l.counted("telnyx_inbound", "forbidden"), 5);

    // Signed but not an event, or an event without its text: 400.
    assert_eq!(
        l.post(path, b"not json".to_vec(), Some((&key, now())))
            .await,
        400
    );
    let no_text = br#"{"data":{"event_type":"message.received","payload":{"id":"x"}}}"#;
    assert_eq!(
        l.post(path, no_text.to_vec(), Some((&key, now()))).await,
        400
    );
    assert_eq!(l.counted("telnyx_inbound", "malformed"), 2);

    // Too large, declared: refused before it is read.
    let huge = vec![b' '; BODY_LIMIT + 1];
    assert_eq!(l.post(path, huge, Some((&key, now()))).await, 413);

    // The real thing arrives once; a replay of it completes nothing twice.
    assert_eq!(
        l.post(path, received(TOKEN), Some((&key, now()))).await,
        200
    );
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    drop(waiter);
    assert_eq!(
        l.post(path, received(TOKEN), Some((&key, now()))).await,
        200
    );
    assert_eq!(l.inbox.stats().late, 1);

    // Another provider's route and an unknown receiver know nothing of it.
    let twilio = l
        .client
        .post(format!("{}/hooks/twilio/inbound/inbox", l.base))
        .form(&[("Body", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(twilio.status().as_u16(), 404);
    assert_eq!(
        l.post(
            "/hooks/telnyx/inbound/twinbox",
            received(TOKEN),
            Some((&key, now()))
        )
        .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_events_reach_their_run_with_telnyx_codes_explained() {
    let l = listen().await;
    let key = account();
    let mut waiter = l.inbox.register(TOKEN);
    let status = |gateway: &str| format!("/hooks/telnyx/status/{gateway}?run={TOKEN}");
    // Signed with tx's key, posted as another gateway's: that key does not verify it.
    assert_eq!(
        l.post(&status("other"), finalized(), Some((&key, now())))
            .await,
        403
    );
    assert_eq!(
        l.post(&status("nope"), finalized(), Some((&key, now())))
            .await,
        404
    );
    assert_eq!(l.post(&status("tx"), finalized(), None).await, 403);
    assert!(waiter.try_recv().is_none());
    let no_run = "/hooks/telnyx/status/tx";
    assert_eq!(l.post(no_run, finalized(), Some((&key, now()))).await, 400);
    assert_eq!(
        l.post(&status("tx"), finalized(), Some((&key, now())))
            .await,
        200
    );
    let Some(Event::Receipt(r)) = waiter.try_recv() else {
        panic!("no receipt reached the run");
    };
    assert_eq!(r.status, DeliveryStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("40001"));
    assert!(r.explanation.unwrap().contains("not routable"));
    assert_eq!(l.counted("telnyx_status", "accepted"), 1);
}
