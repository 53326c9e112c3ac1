//! Plivo's webhooks against the real listener, hostile ones first: a
//! request must carry a V3 signature (or, without V3 headers, a V2 one whose
//! nonce has not been seen) made with the Auth Token of the receiver's own
//! gateway over the URL Plivo called; unsigned, forged, tampered or replayed
//! is 403, malformed 400, too large 413, and every refusal is counted.

use std::sync::Arc;

use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::providers::plivo::signature::{sign_v2, sign_v3};
use sms_canary::receiver::webhook::{BODY_LIMIT, Hooks, router};
use sms_canary::receiver::{DeliveryStatus, Event, Inbox};
use sms_canary::server::{Limits, serve};
use url::Url;

const TOKEN: &str = "plivo-auth-token";
const RUN: &str = "abcdefghjk";
const PUBLIC: &str = "https://canary.example.com";

struct Listener {
    base: String,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn listen() -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[canary]\nprobes = []\n\n\
         [gateways.pl]\nkind = \"plivo\"\nauth_id = \"MAXXXXXXXXXXXXXXXXXX\"\nauth_token = \"{TOKEN}\"\n\n\
         [gateways.other]\nkind = \"plivo\"\nauth_id = \"MAYYYYYYYYYYYYYYYYYY\"\nauth_token = \"other-token\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"pl\"\n"
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
        Url::parse(PUBLIC).unwrap(),
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

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn inbound() -> Vec<(String, String)> {
    pairs(&[
        ("From", "15005550006"),
        ("To", "15005550100"),
        ("Text", &format!("sms-canary p {RUN}")),
        ("Type", "sms"),
        ("MessageUUID", "m1"),
    ])
}

enum Sign<'a> {
    None,
    V3(&'a str, &'a str),
    V2(&'a str, &'a str),
}

impl Listener {
    async fn post(&self, path: &str, params: &[(String, String)], sign: Sign<'_>) -> u16 {
        let url = Url::parse(&format!("{PUBLIC}{path}")).unwrap();
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .form(params);
        match sign {
            Sign::None => {}
            Sign::V3(token, nonce) => {
                req = req
                    .header(
                        "X-Plivo-Signature-V3",
                        sign_v3(token, false, &url, params, nonce),
                    )
                    .header("X-Plivo-Signature-V3-Nonce", nonce);
            }
            Sign::V2(token, nonce) => {
                req = req
                    .header("X-Plivo-Signature-V2", sign_v2(token, &url, nonce))
                    .header("X-Plivo-Signature-V2-Nonce", nonce);
            }
        }
        req.send().await.unwrap().status().as_u16()
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
async fn only_requests_signed_with_the_gateways_token_get_through() {
    let l = listen().await;
    let path = "/hooks/plivo/inbound/inbox";
    let mut waiter = l.inbox.register(RUN);

    assert_eq!(l.post(path, &inbound(), Sign::None).await, 403);
    assert_eq!(
        l.post(path, &inbound(), Sign::V3("other-token", "1")).await,
        403
    );
    assert_eq!(
        l.post(path, &inbound(), Sign::V2("other-token", "2")).await,
        403
    );
    // Signed for other words: V3 covers every parameter.
    let url = Url::parse(&format!("{PUBLIC}{path}")).unwrap();
    let signed_for = sign_v3(TOKEN, false, &url, &inbound(), "3");
    let mut tampered = inbound();
    tampered[2].1 = "sms-canary p zzzzzzzzzz".into();
    let status = l
        .client
        .post(format!("{}{path}", l.base))
        .form(&tampered)
        .header("X-Plivo-Signature-V3", signed_for)
        .header("X-Plivo-Signature-V3-Nonce", "3")
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
    assert_eq!(l.counted("plivo_inbound", "forbidden"), 4);

    // Malformed, signed: no Text.
    let no_text = pairs(&[("From", "15005550006")]);
    assert_eq!(l.post(path, &no_text, Sign::V3(TOKEN, "4")).await, 400);
    // Too large, declared: refused before it is read.
    let huge = vec![("Text".to_string(), "x".repeat(BODY_LIMIT))];
    assert_eq!(l.post(path, &huge, Sign::V3(TOKEN, "5")).await, 413);

    // V3 gets through; several signatures in the header, one ours, too.
    assert_eq!(l.post(path, &inbound(), Sign::V3(TOKEN, "6")).await, 200);
    assert!(matches!(waiter.try_recv(), Some(Event::Arrival(_))));
    let listed = format!(
        "{},{}",
        sign_v3("rotated-token", false, &url, &inbound(), "7"),
        sign_v3(TOKEN, false, &url, &inbound(), "7")
    );
    let status = l
        .client
        .post(format!("{}{path}", l.base))
        .form(&inbound())
        .header("X-Plivo-Signature-V3", listed)
        .header("X-Plivo-Signature-V3-Nonce", "7")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);

    // V2 gets through once per nonce: it covers no parameter, so a second
    // use of a nonce is a replay, whatever it says.
    assert_eq!(
        l.post(path, &inbound(), Sign::V2(TOKEN, "v2-nonce-8"))
            .await,
        200
    );
    assert_eq!(
        l.post(path, &tampered, Sign::V2(TOKEN, "v2-nonce-8")).await,
        403
    );
    while waiter.try_recv().is_some() {}

    // An unknown receiver, and another provider's route, know nothing of it.
    assert_eq!(
        l.post(
            "/hooks/plivo/inbound/nope",
            &inbound(),
            Sign::V3(TOKEN, "9")
        )
        .await,
        404
    );
    assert_eq!(
        l.post("/hooks/twilio/inbound/inbox", &inbound(), Sign::None)
            .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_reach_their_run_with_plivo_codes_explained() {
    let l = listen().await;
    let mut waiter = l.inbox.register(RUN);
    let failed = pairs(&[
        ("MessageUUID", "m2"),
        ("Status", "undelivered"),
        ("ErrorCode", "80"),
        ("From", "15005550006"),
        ("To", "15005550100"),
    ]);
    let path = |gateway: &str| format!("/hooks/plivo/status/{gateway}?run={RUN}");
    // Signed with pl's token but posted as another gateway's: refused.
    assert_eq!(
        l.post(&path("other"), &failed, Sign::V3(TOKEN, "1")).await,
        403
    );
    assert_eq!(
        l.post(&path("nope"), &failed, Sign::V3(TOKEN, "2")).await,
        404
    );
    // The query is signed too: the run cannot be swapped for another's.
    let url = Url::parse(&format!("{PUBLIC}/hooks/plivo/status/pl?run=zzzzzzzzzz")).unwrap();
    let status = l
        .client
        .post(format!("{}{}", l.base, path("pl")))
        .form(&failed)
        .header(
            "X-Plivo-Signature-V3",
            sign_v3(TOKEN, false, &url, &failed, "3"),
        )
        .header("X-Plivo-Signature-V3-Nonce", "3")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    assert!(waiter.try_recv().is_none());
    assert_eq!(
        l.post(&path("pl"), &failed, Sign::V3(TOKEN, "4")).await,
        200
    );
    let Some(Event::Receipt(r)) = waiter.try_recv() else {
        panic!("no receipt reached the run");
    };
    assert_eq!(r.status, DeliveryStatus::Undelivered);
    assert_eq!(r.error_code.as_deref(), Some("80"));
    assert!(r.explanation.unwrap().contains("temporarily unavailable"));
    assert_eq!(l.counted("plivo_status", "accepted"), 1);
}
