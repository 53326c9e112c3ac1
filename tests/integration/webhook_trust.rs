//! What the public listener trusts, through a real daemon: a receiver takes
//! its own provider's route and its own gateway's signatures only, so a
//! run's token alone cannot turn a dropped message into an `ok`; oversized
//! requests are refused by their declared length before a byte of body is
//! read, over-long heads get 431; and `[::]` listeners serve IPv4 callers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use sms_canary::providers::twilio::signature::sign as twilio_signature;

use crate::admin_api::{API_TOKEN, DROPPED, Daemon, Setup};

/// The public mock's token: known to anyone who read the docs.
const MOCK_TOKEN: &str = "mock-auth-token";

fn signed_inbound(url: &str, text: &str, token: &str) -> (Vec<(String, String)>, String) {
    let params = vec![
        ("Body".to_string(), text.to_string()),
        ("From".to_string(), "+15005550006".to_string()),
        ("To".to_string(), DROPPED.to_string()),
        ("MessageSid".to_string(), "SMforged".to_string()),
    ];
    let signature = twilio_signature(url, &params, token);
    (params, signature)
}

/// Someone who learnt a run's token (it is in the SMS body) forges its
/// arrival: as a Vonage message to a Twilio receiver, as a Twilio message to
/// a receiver with no gateway signed with the mock's public token, and to
/// the run's own receiver signed with that token. None is taken: the
/// dropped message stays `lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_run_token_cannot_forge_an_arrival() {
    let d = Daemon::start(Setup {
        timeout: "3s",
        ..Setup::default()
    })
    .await;
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("http://{}/probes/lost/run", d.admin))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["correlation_id"].as_str().unwrap().to_string();
    let mut body = None;
    for _ in 0..100 {
        if let Some(m) = d.sent().await.first() {
            body = m["body"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = body.expect("the run sent its message");
    let public = format!("http://{}", d.public);

    let vonage = http
        .post(format!("{public}/hooks/vonage/inbound/inbox"))
        .form(&[
            ("msisdn", "15005550006"),
            ("to", &DROPPED[1..]),
            ("messageId", "forged"),
            ("text", text.as_str()),
            ("type", "text"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        vonage.status().as_u16(),
        404,
        "a Vonage route on a Twilio receiver"
    );

    let url = format!("{public}/hooks/twilio/inbound/json-in");
    let (params, signature) = signed_inbound(&url, &text, MOCK_TOKEN);
    let open = http
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(
        open.status().as_u16(),
        404,
        "a Twilio route on a receiver with no gateway"
    );

    let url = format!("{public}/hooks/twilio/inbound/inbox");
    let (params, signature) = signed_inbound(&url, &text, MOCK_TOKEN);
    let mock_signed = http
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(
        mock_signed.status().as_u16(),
        403,
        "the mock's token on a real provider's receiver"
    );

    let run: Value = http
        .get(format!("http://{}/runs/{id}?wait=20s", d.admin))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["outcome"], "lost", "{run}");
    d.stop().await;
}

/// Sends `head` on a fresh connection and reads what comes back within `limit`.
fn exchange(addr: SocketAddr, head: &[u8], limit: Duration) -> (String, Duration) {
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(head).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // Until the server closes the connection (or the limit passes).
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_by_its_length_and_a_huge_head_by_its_size() {
    let d = Daemon::start(Setup::default()).await;
    let public = d.public;
    // 10^12 bytes announced, none sent: 413 at once, no 100 Continue, closed.
    let (answer, took) = tokio::task::spawn_blocking(move || {
        exchange(
            public,
            b"POST /hooks/twilio/inbound/inbox HTTP/1.1\r\nHost: canary\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 1000000000000\r\nExpect: 100-continue\r\n\r\n",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(took < Duration::from_secs(5), "held for {took:?}");
    // Without Expect, a body that never comes: refused as fast.
    let (answer, took) = tokio::task::spawn_blocking(move || {
        exchange(
            public,
            b"POST /hooks/json/json-in HTTP/1.1\r\nHost: canary\r\nContent-Length: 70000\r\n\r\n",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(took < Duration::from_secs(5), "held for {took:?}");
    // A head of 20 KiB: 431.
    let mut head = b"GET /hooks/twilio/inbound/inbox HTTP/1.1\r\nHost: canary\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 20 * 1024));
    head.extend_from_slice(b"\r\n\r\n");
    let (answer, _) =
        tokio::task::spawn_blocking(move || exchange(public, &head, Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // The refusals by length are counted with the route they were meant for.
    let metrics = reqwest::get(format!("http://{}/metrics", d.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for route in ["twilio_inbound", "json"] {
        let series = format!("route=\"{route}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("sms_canary_webhook_requests_total")
                    && l.contains(&series)
                    && l.contains("result=\"too_large\"")
                    && l.ends_with(" 1")),
            "{route}:\n{metrics}"
        );
    }
    d.stop().await;
}

/// Both listeners on `[::]`: IPv4 callers reach them, the carrier's webhook
/// over 127.0.0.1 and the operator's run over 127.0.0.1, and IPv6 ones too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_on_the_ipv6_wildcard_serve_ipv4_callers() {
    let any = |port: u16| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    let port = || {
        std::net::TcpListener::bind("[::]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (public, admin) = (port(), port());
    let d = Daemon::start_with_inbound(
        Setup {
            public: any(public),
            admin: any(admin),
            public_url: Some(format!("http://127.0.0.1:{public}")),
            ..Setup::default()
        },
        &format!("http://127.0.0.1:{public}/hooks/twilio/inbound/inbox"),
    )
    .await;
    let http = reqwest::Client::new();
    let run: Value = http
        .post(format!("http://127.0.0.1:{admin}/probes/p/run?wait=20s"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["outcome"], "ok", "{run}");
    let six = http
        .get(format!("http://[::1]:{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(six.status().as_u16(), 200);
    d.stop().await;
}
