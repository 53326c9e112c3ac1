//! SMS Gateway for Android's webhooks against the real listener, hostile
//! ones first: only an event signed (hex HMAC-SHA256 over the body then
//! `X-Timestamp`) with the key of the receiver (or gateway) its URL names,
//! at most five minutes old, from the configured device and webhook, gets
//! through, and each event id once however often the app retries it.
//! Malformed is 400, unsigned, forged, stale, tampered or from another
//! phone is 403, too large is 413, a repeat is 200 and handed on to
//! nothing; every refusal and repeat is counted.

use std::process::Command;
use std::sync::Arc;

use std::time::Duration;

use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, NumberConfig};
use sms_canary::providers::android::mock::DEVICE_ID;
use sms_canary::providers::android::signature::sign;
use sms_canary::receiver::webhook::{BODY_LIMIT, Hooks, router};
use sms_canary::receiver::{DeliveryStatus, Event, Inbox};
use sms_canary::server::{Limits, serve};

const TOKEN: &str = "abcdefghjk";
/// A correlation id whose token is [`TOKEN`]: the id our gateway gives a message.
const CORRELATION_ID: &str = "01JDQ3ZS5WABCDEFGHJK";
const RECEIVER_KEY: &str = "receiver-signing-key";
const GATEWAY_KEY: &str = "gateway-signing-key";
const DEVICE: &str = "ffffffffceb0b1db";

struct Listener {
    base: String,
    inbox: Arc<Inbox>,
    hooks: Arc<Hooks>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn listen() -> Listener {
    listen_to(format!(
        "[canary]\nprobes = []\n\n\
         [gateways.phone]\nkind = \"android\"\nusername = \"sms\"\npassword = \"p\"\n\
         signing_key = \"{GATEWAY_KEY}\"\ndevice_id = \"{DEVICE}\"\n\n\
         [receivers.handset]\nkind = \"android\"\nsigning_key = \"{RECEIVER_KEY}\"\n\
         device_id = \"{DEVICE}\"\nwebhook_ids = [\"w-received\", \"w-ping\"]\n\n\
         [receivers.open]\nkind = \"android\"\nsigning_key = \"{RECEIVER_KEY}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\njson_secret = \"j\"\n"
    ))
    .await
}

async fn listen_to(main: String) -> Listener {
    let dir = tempfile::tempdir().unwrap();
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
        router(Arc::clone(&hooks)),
        Limits::default(),
        std::future::pending(),
    ));
    Listener {
        base: format!("http://{addr}"),
        inbox,
        hooks,
        metrics,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn event(
    id: &str,
    event: &str,
    device: &str,
    webhook: &str,
    payload: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "deviceId": device,
        "event": event,
        "id": id,
        "webhookId": webhook,
        "payload": payload,
    }))
    .unwrap()
}

fn received(id: &str, device: &str, webhook: &str) -> Vec<u8> {
    event(
        id,
        "sms:received",
        device,
        webhook,
        serde_json::json!({
            // The app derives it from the content: the same for two messages.
            "messageId": "abc123",
            "message": format!("sms-canary p {TOKEN}"),
            "phoneNumber": "+15005550006",
            "simNumber": 1,
            "receivedAt": "2026-11-28T17:00:00.000+07:00",
        }),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Listener {
    async fn post(&self, path: &str, body: Vec<u8>, signed: Option<(&str, i64)>) -> u16 {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some((key, at)) = signed {
            let at = at.to_string();
            req = req
                .header("X-Signature", sign(key, &body, &at))
                .header("X-Timestamp", at);
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
async fn only_fresh_events_signed_by_the_configured_phone_get_through_once() {
    let l = listen().await;
    let path = "/hooks/android/handset";
    let mut waiter = l.inbox.register(TOKEN);
    let good = || received("e1", DEVICE, "w-received");

    // Unsigned, another key, stale, from the future, tampered, another
    // device, another webhook, no device at all.
    assert_eq!(l.post(path, good(), None).await, 403);
    assert_eq!(l.post(path, good(), Some((GATEWAY_KEY, now()))).await, 403);
    assert_eq!(
        l.post(path, good(), Some((RECEIVER_KEY, now() - 301)))
            .await,
        403
    );
    assert_eq!(
        l.post(path, good(), Some((RECEIVER_KEY, now() + 301)))
            .await,
        403
    );
    let at = now().to_string();
    let signature = sign(RECEIVER_KEY, &good(), &at);
    let mut tampered = good();
    let i = tampered.len() - 5;
    tampered[i] ^= 1;
    let status = l
        .client
        .post(format!("{}{path}", l.base))
        .header("X-Signature", &signature)
        .header("X-Timestamp", &at)
        .body(tampered)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    let stranger = received("e2", "another-phone", "w-received");
    assert_eq!(
        l.post(path, stranger, Some((RECEIVER_KEY, now()))).await,
        403
    );
    let other_hook = received("e3", DEVICE, "w-someone-elses");
    assert_eq!(
        l.post(path, other_hook, Some((RECEIVER_KEY, now()))).await,
        403
    );
    let no_device = br#"{"event":"sms:received","id":"e4","webhookId":"w-received","payload":{"message":"x","phoneNumber":"+1"}}"#;
    assert_eq!(
        l.post(path, no_device.to_vec(), Some((RECEIVER_KEY, now())))
            .await,
        403
    );
    assert!(
        waiter.try_recv().is_none(),
        "a refused request reached the run"
    );
    assert_eq!(l.counted("android_inbound", "forbidden"), 8);
    assert!(
        l.hooks.last_heard("handset").is_none(),
        "a refused event is no sign of life"
    );

    // Signed but not an event, or an sms:received without its text: 400.
    assert_eq!(
        l.post(path, b"not json".to_vec(), Some((RECEIVER_KEY, now())))
            .await,
        400
    );
    let no_text = event(
        "e5",
        "sms:received",
        DEVICE,
        "w-received",
        serde_json::json!({"phoneNumber": "+1"}),
    );
    assert_eq!(
        l.post(path, no_text, Some((RECEIVER_KEY, now()))).await,
        400
    );
    assert_eq!(l.counted("android_inbound", "malformed"), 2);

    // Too large, declared: refused before it is read.
    let huge = vec![b' '; BODY_LIMIT + 1];
    assert_eq!(l.post(path, huge, Some((RECEIVER_KEY, now()))).await, 413);

    // The real thing arrives once; the app retrying it (the same id, signed
    // afresh) is answered 200 so it stops, and completes nothing twice.
    assert_eq!(l.post(path, good(), Some((RECEIVER_KEY, now()))).await, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    assert!(l.hooks.last_heard("handset").is_some());
    for _ in 0..3 {
        assert_eq!(l.post(path, good(), Some((RECEIVER_KEY, now()))).await, 200);
    }
    assert!(waiter.try_recv().is_none(), "a retried event arrived twice");
    assert_eq!(l.counted("android_inbound", "duplicate"), 3);
    assert_eq!(l.counted("android_inbound", "accepted"), 1);
    // A second message with the same content (so the same messageId) but a
    // new event id is a message of its own: a duplicate SMS, counted late.
    drop(waiter);
    let again = received("e6", DEVICE, "w-received");
    assert_eq!(l.post(path, again, Some((RECEIVER_KEY, now()))).await, 200);
    assert_eq!(l.inbox.stats().late, 1);

    // A receiver with no device or webhook configured takes any phone's, once signed.
    let any = received("e7", "another-phone", "w-any");
    assert_eq!(
        l.post("/hooks/android/open", any, Some((RECEIVER_KEY, now())))
            .await,
        200
    );

    // Another provider's route, an unknown receiver, a receiver of another kind.
    assert_eq!(
        l.post("/hooks/android/nope", good(), Some((RECEIVER_KEY, now())))
            .await,
        404
    );
    assert_eq!(
        l.post("/hooks/android/inbox", good(), Some((RECEIVER_KEY, now())))
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_a_sign_of_life_and_nothing_else() {
    let l = listen().await;
    let ping = event(
        "p1",
        "system:ping",
        DEVICE,
        "w-ping",
        serde_json::json!({"health": {"status": "pass"}}),
    );
    assert!(l.hooks.last_heard("handset").is_none());
    assert_eq!(
        l.post("/hooks/android/handset", ping.clone(), None).await,
        403
    );
    assert!(l.hooks.last_heard("handset").is_none());
    let before = tokio::time::Instant::now();
    assert_eq!(
        l.post("/hooks/android/handset", ping, Some((RECEIVER_KEY, now())))
            .await,
        200
    );
    let heard = l.hooks.last_heard("handset").expect("the ping was noted");
    assert!(heard >= before);
    assert_eq!(l.inbox.stats().strangers, 0, "a ping is not a message");
    assert!(
        l.hooks.last_heard("open").is_none(),
        "only the phone that pinged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_find_their_run_by_the_message_id_we_gave() {
    let l = listen().await;
    let mut waiter = l.inbox.register(TOKEN);
    let path = "/hooks/android/receipt/phone";
    let failed = |id: &str| {
        event(
            id,
            "sms:failed",
            DEVICE,
            "w-failed",
            serde_json::json!({
                "messageId": CORRELATION_ID,
                "phoneNumber": "+15005550100",
                "simNumber": 1,
                "failedAt": "2026-11-28T17:00:00.000+07:00",
                "reason": "RESULT_ERROR_NO_SERVICE",
            }),
        )
    };
    // Signed with the receiving phone's key, not the gateway's: refused.
    assert_eq!(
        l.post(path, failed("r1"), Some((RECEIVER_KEY, now())))
            .await,
        403
    );
    assert_eq!(l.post(path, failed("r1"), None).await, 403);
    assert_eq!(
        l.post(
            "/hooks/android/receipt/nope",
            failed("r1"),
            Some((GATEWAY_KEY, now()))
        )
        .await,
        404
    );
    let wrong_device = event(
        "r2",
        "sms:sent",
        "another-phone",
        "w",
        serde_json::json!({"messageId": CORRELATION_ID}),
    );
    assert_eq!(
        l.post(path, wrong_device, Some((GATEWAY_KEY, now()))).await,
        403
    );
    let no_id = event(
        "r3",
        "sms:sent",
        DEVICE,
        "w",
        serde_json::json!({"phoneNumber": "+1"}),
    );
    assert_eq!(l.post(path, no_id, Some((GATEWAY_KEY, now()))).await, 400);
    assert!(waiter.try_recv().is_none());
    assert_eq!(
        l.post(path, failed("r1"), Some((GATEWAY_KEY, now()))).await,
        200
    );
    let Some(Event::Receipt(r)) = waiter.try_recv() else {
        panic!("no receipt reached the run");
    };
    assert_eq!(r.status, DeliveryStatus::Failed);
    assert_eq!(r.error_code.as_deref(), Some("RESULT_ERROR_NO_SERVICE"));
    assert!(r.explanation.unwrap().contains("no mobile service"));
    assert_eq!(r.message_id.as_deref(), Some(CORRELATION_ID));
    // Retried: taken once.
    assert_eq!(
        l.post(path, failed("r1"), Some((GATEWAY_KEY, now()))).await,
        200
    );
    assert!(waiter.try_recv().is_none());
    assert_eq!(l.counted("android_receipt", "duplicate"), 1);
}

/// The signature as the app's documentation specifies it, computed by
/// Python's own `hmac` (not by our code): `X-Signature` is the hex
/// HMAC-SHA256, keyed by the signing key, of the raw body followed by the
/// `X-Timestamp` value. The listener accepts exactly that, and our mock
/// signs exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_signed_as_the_apps_documentation_says_are_accepted() {
    let l = listen().await;
    let mut waiter = l.inbox.register(TOKEN);
    let body = received("py1", DEVICE, "w-received");
    let at = now().to_string();
    let script = "import hmac, hashlib, sys\n\
                  key, ts = sys.argv[1], sys.argv[2]\n\
                  body = sys.stdin.buffer.read()\n\
                  print(hmac.new(key.encode(), body + ts.encode(), hashlib.sha256).hexdigest())\n";
    let mut child = Command::new("python3")
        .args(["-c", script, RECEIVER_KEY, &at])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the tests need python3 on PATH");
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let expected = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(expected.len(), 64);
    assert_eq!(
        sign(RECEIVER_KEY, &body, &at),
        expected,
        "we sign as the app does"
    );
    let status = l
        .client
        .post(format!("{}/hooks/android/handset", l.base))
        .header("X-Signature", &expected)
        .header("X-Timestamp", &at)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
}

/// The mock carrier's app, as the app behaves: receipts go to the webhooks
/// registered for their events, every event is signed with the app's key
/// and names the device and webhook, and an event the app retries (here,
/// twice more, unchanged) reaches its run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_app_signs_registers_and_retries_as_the_app_does() {
    let l = listen_to(format!(
        "[canary]\nprobes = []\n\n\
         [gateways.phone]\nkind = \"android\"\nusername = \"sms\"\npassword = \"p\"\n\
         signing_key = \"mock-android-signing-key\"\ndevice_id = \"{DEVICE_ID}\"\n\n\
         [receivers.handset]\nkind = \"android\"\nsigning_key = \"mock-android-signing-key\"\n\
         device_id = \"{DEVICE_ID}\"\n"
    ))
    .await;
    let owned = "+15005550100";
    let mut config = MockConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(20)),
        ..MockConfig::default()
    };
    config.numbers.insert(
        owned.into(),
        NumberConfig {
            inbound_url: Some(format!("{}/hooks/android/handset", l.base)),
            redeliveries: 2,
            ..NumberConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = MockCarrier::start(config, listener).await.unwrap();
    let api = format!("{}/3rdparty/v1", mock.base_url());
    let client = reqwest::Client::new();
    for event in ["sms:sent", "sms:delivered"] {
        let registered: serde_json::Value = client
            .post(format!("{api}/webhooks"))
            .basic_auth("sms", Some("mock-android-password"))
            .json(&serde_json::json!({
                "url": format!("{}/hooks/android/receipt/phone", l.base),
                "event": event,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(registered["event"], event);
    }
    // Without the password: the app's 401.
    let refused = client
        .post(format!("{api}/message"))
        .json(&serde_json::json!({"textMessage": {"text": "x"}, "phoneNumbers": [owned]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let mut waiter = l.inbox.register(TOKEN);
    let sent = client
        .post(format!("{api}/message"))
        .basic_auth("sms", Some("mock-android-password"))
        .json(&serde_json::json!({
            "id": CORRELATION_ID,
            "textMessage": {"text": format!("sms-canary p {TOKEN}")},
            "phoneNumbers": [owned],
            "withDeliveryReport": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 202);
    let state: serde_json::Value = sent.json().await.unwrap();
    assert_eq!(state["id"], CORRELATION_ID);
    assert_eq!(state["state"], "Pending");

    // Wait (for the network, not for time) until the retries were answered.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while l.counted("android_inbound", "duplicate") < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        l.counted("android_inbound", "duplicate"),
        2,
        "the app's two retries"
    );
    assert_eq!(
        l.counted("android_inbound", "forbidden"),
        0,
        "the mock signs as the app"
    );
    while l.counted("android_receipt", "accepted") < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut arrivals = 0;
    let mut receipts = Vec::new();
    while let Some(event) = waiter.try_recv() {
        match event {
            Event::Arrival(_) => arrivals += 1,
            Event::Receipt(r) => receipts.push(r.status),
        }
    }
    assert_eq!(arrivals, 1, "one message, however often the app posts it");
    assert_eq!(receipts, [DeliveryStatus::Sent, DeliveryStatus::Delivered]);
    assert!(l.hooks.last_heard("handset").is_some());
    mock.shutdown().await;
}

/// `doctor` reads when the daemon last heard each receiving phone: never,
/// or longer ago than its `ping_timeout`, fails it, naming when; recently
/// passes. The daemon's own preflight leaves that check to the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_a_phone_not_heard_within_its_ping_timeout() {
    let phone_item = |heard: Option<chrono::Duration>| async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[canary]\nstate_dir = \"{}\"\nprobes = []\n\
                 [receivers.handset]\nkind = \"android\"\nsigning_key = \"k\"\nping_timeout = \"10m\"\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let config = Config::load_with_env(&path, &|_| None).unwrap();
        if let Some(ago) = heard {
            let store = sms_canary::store::Store::open(&config.canary.state_dir).unwrap();
            store
                .note_heard("handset", chrono::Utc::now() - ago)
                .unwrap();
        }
        let items = sms_canary::doctor::doctor(&config, Some("127.0.0.1:0".parse().unwrap())).await;
        let code = sms_canary::doctor::exit_code(&items);
        let item = items
            .into_iter()
            .find(|i| i.check == sms_canary::doctor::PHONE_CHECK)
            .expect("a phone check");
        (item, code)
    };
    let (never, code) = phone_item(None).await;
    assert_eq!(never.verdict, sms_canary::doctor::Verdict::Fail);
    assert!(never.detail.contains("never heard"), "{}", never.detail);
    assert_eq!(code, 2);
    let (stale, _) = phone_item(Some(chrono::Duration::minutes(11))).await;
    assert_eq!(stale.verdict, sms_canary::doctor::Verdict::Fail);
    assert!(
        stale.detail.starts_with("offline since "),
        "{}",
        stale.detail
    );
    assert!(
        stale.detail.contains("ping_timeout of 10m"),
        "{}",
        stale.detail
    );
    let (fresh, code) = phone_item(Some(chrono::Duration::minutes(2))).await;
    assert_eq!(
        fresh.verdict,
        sms_canary::doctor::Verdict::Ok,
        "{}",
        fresh.detail
    );
    assert!(
        fresh.detail.starts_with("last heard 2m"),
        "{}",
        fresh.detail
    );
    assert_eq!(code, 0);
}

/// The daemon starts (its preflight passes) with a receiving phone it has
/// never heard from: watching that phone is its job, and refusing to start
/// would leave nobody to notice it come back. Its public listener then
/// takes the phone's signed ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_with_a_phone_never_heard_and_takes_its_pings() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (listen, admin) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[canary]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nstate_dir = \"{}\"\nprobes = []\n\
             [receivers.handset]\nkind = \"android\"\nsigning_key = \"{RECEIVER_KEY}\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let options = sms_canary::daemon::DaemonOptions {
        admin_listen: Some(admin),
        ..sms_canary::daemon::DaemonOptions::default()
    };
    assert!(options.preflight);
    let (control, task) = crate::daemon::spawn_daemon(path, options);
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let up = client.get(format!("http://{admin}/healthz")).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(!task.is_finished(), "the daemon stopped: {:?}", task.await);
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never came up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ping = event("p1", "system:ping", DEVICE, "w-ping", serde_json::json!({}));
    let at = now().to_string();
    let status = client
        .post(format!("http://{listen}/hooks/android/handset"))
        .header("X-Signature", sign(RECEIVER_KEY, &ping, &at))
        .header("X-Timestamp", at)
        .body(ping)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    control
        .send(sms_canary::daemon::Control::Shutdown)
        .await
        .unwrap();
    task.await.unwrap().unwrap();
}
