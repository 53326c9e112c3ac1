//! Hostile and broken webhooks against the real listener (the webhook routes
//! served by `sms_canary::server`, as `check` and the daemon serve them):
//! every refusal has its status and is counted in
//! `sms_canary_webhook_requests_total{route,result}`, and a signed request
//! sent twice (a replay, or a provider's retry) completes nothing twice.
//! `webhook.rs` covers the signature rules themselves.

use std::net::SocketAddr;
use std::sync::Arc;

use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::providers::twilio::signature::sign as twilio_signature;
#[allow(unused_imports)]
use sms_canary::providers::vonage::signature::{
    SignatureMethod as VonageMethod, sign as vonage_signature, verify as verify_vonage_signature,
};
use sms_canary::receiver::webhook::{Hooks, router};
use sms_canary::receiver::{Event, Inbox};
use sms_canary::server::{Limits, serve};
use sms_canary::signing::body_signature;

const TOKEN: &str = "bad-webhooks-auth-token";
const VSECRET: &str = "vonage-signature-secret";
const JSECRET: &str = "json-hmac-secret";
const PUBLIC: &str = "https://canary.example.com";

pub(crate) struct Listener {
    pub base: String,
    pub addr: SocketAddr,
    pub inbox: Arc<Inbox>,
    pub metrics: Arc<Metrics>,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The webhook routes for a Twilio account `tw`, a signing Vonage account
/// `vg` and a JSON receiver, on the project's listener at 127.0.0.1:0.
pub(crate) async fn listen() -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[canary]\nprobes = []\n\n\
         [gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"{TOKEN}\"\n\n\
         [gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nsignature_secret = \"{VSECRET}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"tw\"\n\n\
         [receivers.vinbox]\nkind = \"webhook\"\ngateway = \"vg\"\n\n\
         [receivers.jinbox]\nkind = \"webhook\"\njson_secret = \"{JSECRET}\"\n",
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
        url::Url::parse(PUBLIC).unwrap(),
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
        addr,
        inbox,
        metrics,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Twilio inbound message carrying `token`, signed as Twilio signs it.
pub(crate) fn twilio_inbound(sid: &str, token: &str) -> (String, String) {
    let params = pairs(&[
        ("MessageSid", sid),
        ("From", "+15005550006"),
        ("To", "+15005550100"),
        ("Body", &format!("sms-canary p {token}")),
    ]);
    let path = "/hooks/twilio/inbound/inbox";
    let sig = twilio_signature(&format!("{PUBLIC}{path}"), &params, TOKEN);
    (encode(&params), sig)
}

/// A Vonage inbound message carrying `token`, signed, with `timestamp`.
fn vonage_inbound(token: &str, timestamp: i64) -> String {
    let mut params = pairs(&[
        ("msisdn", "447700900001"),
        ("to", "447700900000"),
        ("messageId", "0A0000001"),
        ("text", &format!("sms-canary p {token}")),
        ("timestamp", &timestamp.to_string()),
    ]);
    let sig = vonage_signature(&params, VSECRET, VonageMethod::Md5hash);
    params.push(("sig".into(), sig));
    encode(&params)
}

impl Listener {
    pub(crate) async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> u16 {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// `webhook_requests_total{route,result}` as the metrics endpoint shows it.
    pub(crate) fn counted(&self, route: &str, result: &str) -> u64 {
        let route = format!("route=\"{route}\"");
        let result = format!("result=\"{result}\"");
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("sms_canary_webhook_requests_total{"))
            .find(|l| l.contains(&route) && l.contains(&result))
            .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }
}

/// Path, route label, body, headers.
type Case<'a> = (&'a str, &'a str, String, &'a [(&'a str, &'a str)]);

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test]
async fn malformed_bodies_are_400_counted_and_reach_no_run() {
    let l = listen().await;
    let mut waiter = l.inbox.register("abcdefghjk");
    let vonage = "/hooks/vonage/inbound/vinbox";
    // Invalid UTF-8 as a form, bad JSON, JSON that is not an object, and a
    // JSON content type on a form body.
    assert_eq!(l.post(vonage, FORM, vec![0xc3, 0x28, 0xff], &[]).await, 400);
    assert_eq!(l.post(vonage, JSON, "{\"text\": ", &[]).await, 400);
    assert_eq!(l.post(vonage, JSON, "[1, 2, 3]", &[]).await, 400);
    assert_eq!(l.post(vonage, JSON, "text=x&msisdn=1", &[]).await, 400);
    assert_eq!(l.counted("vonage_inbound", "malformed"), 4);

    // The JSON route, correctly signed, over bodies that are not usable JSON:
    // invalid UTF-8, nesting deep enough to overflow a naive parser's stack,
    // a number where the text should be.
    let json = "/hooks/json/jinbox";
    let deep = "[".repeat(60_000).into_bytes();
    let bodies: Vec<Vec<u8>> = vec![
        vec![b'"', 0xff, 0xfe, b'"'],
        deep,
        b"{\"body\": 12345}".to_vec(),
    ];
    for body in bodies {
        let sig = body_signature(&body, JSECRET);
        let status = l
            .post(json, JSON, body, &[("X-Signature-256", sig.as_str())])
            .await;
        assert_eq!(status, 400);
    }
    assert_eq!(l.counted("json", "malformed"), 3);

    // A Twilio status callback without the run it belongs to, correctly signed.
    let path = "/hooks/twilio/status/tw";
    let params = pairs(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
    let sig = twilio_signature(&format!("{PUBLIC}{path}"), &params, TOKEN);
    let status = l
        .post(path, FORM, encode(&params), &[("X-Twilio-Signature", &sig)])
        .await;
    assert_eq!(status, 400);
    assert_eq!(l.counted("twilio_status", "malformed"), 1);
    assert!(
        waiter.try_recv().is_none(),
        "nothing malformed reaches a run"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_on_every_route_and_counted() {
    let l = listen().await;
    let big = vec![b'a'; 100 * 1024];
    let routes = [
        ("/hooks/twilio/inbound/inbox", "twilio_inbound"),
        ("/hooks/twilio/status/tw?run=abcdefghjk", "twilio_status"),
        ("/hooks/vonage/inbound/vinbox", "vonage_inbound"),
        ("/hooks/vonage/receipt/vg?run=abcdefghjk", "vonage_receipt"),
        ("/hooks/json/jinbox", "json"),
    ];
    for (path, route) in routes {
        assert_eq!(l.post(path, FORM, big.clone(), &[]).await, 413, "{path}");
        assert_eq!(l.counted(route, "too_large"), 1, "{route}");
    }
    // A chunked body gives no length up front: the limit holds on what arrives.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(l.addr).await.unwrap();
    tcp.write_all(
        b"POST /hooks/json/jinbox HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..40 {
        let chunk = format!("1000\r\n{}\r\n", "b".repeat(4096));
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server answered and closed: fine
        }
    }
    let mut answer = vec![0u8; 1024];
    let n = tcp.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(l.counted("json", "too_large"), 2);
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_are_403_and_counted_per_route() {
    let l = listen().await;
    let mut waiter = l.inbox.register("abcdefghjk");
    let (body, _) = twilio_inbound("SM1", "abcdefghjk");
    let now = chrono::Utc::now().timestamp();
    let vonage = vonage_inbound("abcdefghjk", now);
    let cases: [Case<'_>; 8] = [
        (
            "/hooks/twilio/inbound/inbox",
            "twilio_inbound",
            body.clone(),
            &[],
        ),
        (
            "/hooks/twilio/inbound/inbox",
            "twilio_inbound",
            body.clone(),
            &[("X-Twilio-Signature", "AAAA")],
        ),
        (
            "/hooks/twilio/status/tw?run=abcdefghjk",
            "twilio_status",
            "MessageStatus=delivered".into(),
            &[],
        ),
        (
            "/hooks/vonage/inbound/vinbox",
            "vonage_inbound",
            vonage.replace("sig=", "sog="),
            &[],
        ),
        (
            "/hooks/vonage/inbound/vinbox",
            "vonage_inbound",
            // Signed for a moment an hour ahead: as stale as an hour ago.
            vonage_inbound("abcdefghjk", now + 3600),
            &[],
        ),
        (
            "/hooks/vonage/receipt/vg?run=abcdefghjk",
            "vonage_receipt",
            "status=failed&err-code=15".into(),
            &[],
        ),
        ("/hooks/json/jinbox", "json", "{\"body\":\"x\"}".into(), &[]),
        (
            "/hooks/json/jinbox",
            "json",
            "{\"body\":\"x\"}".into(),
            &[("X-Signature-256", "sha256=00")],
        ),
    ];
    for (path, route, body, headers) in &cases {
        assert_eq!(
            l.post(path, FORM, body.clone(), headers).await,
            403,
            "{route}: {path}"
        );
    }
    for (route, n) in [
        ("twilio_inbound", 2),
        ("twilio_status", 1),
        ("vonage_inbound", 2),
        ("vonage_receipt", 1),
        ("json", 2),
    ] {
        assert_eq!(l.counted(route, "forbidden"), n, "{route}");
    }
    assert!(
        waiter.try_recv().is_none(),
        "nothing unsigned reaches a run"
    );
    assert_eq!(
        l.inbox.stats().strangers,
        0,
        "refused requests are not arrivals"
    );
}

#[tokio::test]
async fn a_replayed_signed_inbound_completes_nothing_twice() {
    let l = listen().await;
    let mut run = l.inbox.register("abcdefghjk");
    let mut other = l.inbox.register("mnpqrstvwx");
    let (body, sig) = twilio_inbound("SM1", "abcdefghjk");
    let path = "/hooks/twilio/inbound/inbox";
    let headers = [("X-Twilio-Signature", sig.as_str())];
    let send = || l.post(path, FORM, body.clone(), &headers);
    assert_eq!(send().await, 200);
    assert!(matches!(run.try_recv(), Some(Event::Arrival(_))));
    // The run has its arrival and ends; the same request comes again.
    drop(run);
    assert_eq!(send().await, 200, "a provider's retry is acknowledged");
    assert_eq!(send().await, 200);
    assert!(
        other.try_recv().is_none(),
        "a replay never completes another run"
    );
    let stats = l.inbox.stats();
    assert_eq!(
        stats.late, 2,
        "replays are late copies of the ended run: {stats:?}"
    );
    assert_eq!(stats.strangers, 0, "{stats:?}");
    assert_eq!(stats.waiting, 1, "only the other run still waits");

    // The same through Vonage, whose signed requests carry a timestamp.
    let mut run = l.inbox.register("bcdefghjkm");
    let body = vonage_inbound("bcdefghjkm", chrono::Utc::now().timestamp());
    let path = "/hooks/vonage/inbound/vinbox";
    assert_eq!(l.post(path, FORM, body.clone(), &[]).await, 200);
    assert!(matches!(run.try_recv(), Some(Event::Arrival(_))));
    drop(run);
    assert_eq!(l.post(path, FORM, body, &[]).await, 200);
    assert!(other.try_recv().is_none());
    assert_eq!(l.inbox.stats().late, 3);
}

#[tokio::test]
async fn a_replayed_receipt_reaches_only_its_own_run_and_only_while_it_waits() {
    let l = listen().await;
    let mut run = l.inbox.register("abcdefghjk");
    let mut other = l.inbox.register("mnpqrstvwx");
    let path = "/hooks/twilio/status/tw?run=abcdefghjk";
    let params = pairs(&[
        ("MessageSid", "SM1"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ]);
    let sig = twilio_signature(&format!("{PUBLIC}{path}"), &params, TOKEN);
    let body = encode(&params);
    let headers = [("X-Twilio-Signature", sig.as_str())];
    let send = || l.post(path, FORM, body.clone(), &headers);
    assert_eq!(send().await, 200);
    assert!(matches!(run.try_recv(), Some(Event::Receipt(_))));
    drop(run);
    assert_eq!(send().await, 200);
    assert!(
        other.try_recv().is_none(),
        "the run is named in the URL, not guessed"
    );
    assert_eq!(l.counted("twilio_status", "accepted"), 2);
    assert_eq!(l.inbox.stats().waiting, 1);
}
