//! The mock carrier over real HTTP: the Twilio REST surface (create, fetch,
//! list, errors) and the delivery lifecycle as seen by a callback server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::serve::ListenerExt as _;
use serde_json::Value;
use sms_canary::mock_carrier::latency::Rng;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig};
use sms_canary::providers::twilio::signature::verify as verify_twilio_signature;
use sms_canary::redact::Secret;
use tokio::net::TcpListener;
use tokio::sync::Notify;

const SID: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "mock-auth-token";
const FROM: &str = "+15005550006";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn start(config: MockConfig) -> MockHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockCarrier::start(config, listener).await.unwrap()
}

fn config(latency_ms: u64) -> MockConfig {
    MockConfig {
        latency: LatencyModel::Fixed(ms(latency_ms)),
        ..MockConfig::default()
    }
}

/// One client per test (per thread, as each test has its own threads and
/// runtime): building one loads the TLS roots, which takes long enough to
/// blur the timings these tests print.
fn client() -> reqwest::Client {
    thread_local!(static CLIENT: reqwest::Client = reqwest::Client::new());
    CLIENT.with(Clone::clone)
}

fn messages_url(mock: &MockHandle) -> String {
    format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        mock.base_url()
    )
}

async fn send(mock: &MockHandle, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = client()
        .post(messages_url(mock))
        .basic_auth(SID, Some(TOKEN))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap())
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = client()
        .get(url)
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap())
}

/// One request the callback server received.
#[derive(Debug, Clone)]
struct Captured {
    url: String,
    path: String,
    signature: String,
    params: Vec<(String, String)>,
    at: Instant,
}

impl Captured {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn signed(&self) -> bool {
        verify_twilio_signature(&self.url, &self.params, TOKEN, &self.signature)
    }
}

/// A stand-in for the canary's webhook receiver: records every POST.
#[derive(Clone)]
struct Capture {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Captured>>>,
    notify: Arc<Notify>,
}

impl Capture {
    async fn start() -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let capture = Capture {
            addr,
            seen: Arc::default(),
            notify: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(capture.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        capture
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    fn all(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }

    fn on(&self, path: &str) -> Vec<Captured> {
        self.all().into_iter().filter(|c| c.path == path).collect()
    }

    /// Waits until `done` holds for what was captured so far.
    async fn until(&self, what: &str, done: impl Fn(&[Captured]) -> bool) -> Vec<Captured> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.notify.notified();
            let seen = self.all();
            if done(&seen) {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; captured: {seen:#?}"
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

async fn record(State(capture): State<Capture>, request: Request) -> StatusCode {
    let at = Instant::now();
    let uri = request.uri().clone();
    let signature = request
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let params = form_urlencoded::parse(&body).into_owned().collect();
    capture.seen.lock().unwrap().push(Captured {
        url: capture.url(&uri.to_string()),
        path: uri.path().to_string(),
        signature,
        params,
        at,
    });
    capture.notify.notify_waiters();
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_fetch_and_list_with_filters_and_paging() {
    let mock = start(config(20)).await;
    let mut sids = Vec::new();
    for i in 0..5 {
        let to = format!("+1500555010{}", i % 2);
        let body = format!("hello {i}");
        let (status, m) = send(&mock, &[("To", &to), ("From", FROM), ("Body", &body)]).await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        assert_eq!(m["status"], "queued");
        assert_eq!(m["direction"], "outbound-api");
        assert_eq!(m["to"], to.as_str());
        assert_eq!(m["from"], FROM);
        assert_eq!(m["body"], body.as_str());
        assert_eq!(m["account_sid"], SID);
        assert_eq!(m["api_version"], "2010-04-01");
        assert_eq!(m["num_segments"], "1");
        assert_eq!(m["num_media"], "0");
        assert!(m["date_sent"].is_null());
        assert!(m["error_code"].is_null());
        let sid = m["sid"].as_str().unwrap().to_string();
        assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
        assert_eq!(
            m["uri"],
            format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json")
        );
        assert!(
            chrono::DateTime::parse_from_rfc2822(m["date_created"].as_str().unwrap()).is_ok(),
            "{}",
            m["date_created"]
        );
        sids.push(sid);
    }
    assert_eq!(
        sids.iter().collect::<std::collections::HashSet<_>>().len(),
        5
    );

    // Fetch, once the last message's latency has passed (polling, so a slow
    // machine only makes the test slower).
    let fetch_url = |sid: &str| {
        format!(
            "{}/2010-04-01/Accounts/{SID}/Messages/{sid}.json",
            mock.base_url()
        )
    };
    let give_up = Instant::now() + Duration::from_secs(5);
    while get(&fetch_url(&sids[4])).await.1["status"] != "delivered" && Instant::now() < give_up {
        tokio::time::sleep(ms(10)).await;
    }
    let (status, m) = get(&fetch_url(&sids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["sid"], sids[0].as_str());
    assert_eq!(m["status"], "delivered");
    assert!(chrono::DateTime::parse_from_rfc2822(m["date_sent"].as_str().unwrap()).is_ok());

    // Newest first, across pages of 2, following next_page_uri as the SDK does.
    let mut url = format!("{}?PageSize=2", messages_url(&mock));
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["page_size"], 2);
        assert_eq!(page["page"], pages);
        assert!(page["first_page_uri"].as_str().unwrap().contains("Page=0"));
        listed.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["sid"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match page["next_page_uri"].as_str() {
            Some(next) => url = format!("{}{next}", mock.base_url()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = sids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    // Filters.
    let (_, page) = get(&format!("{}?To=%2B15005550101", messages_url(&mock))).await;
    let to: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["+15005550101", "+15005550101"]);
    let (_, page) = get(&format!("{}?From=%2B15005550007", messages_url(&mock))).await;
    assert!(page["messages"].as_array().unwrap().is_empty());
    assert!(page["next_page_uri"].is_null());

    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let count = |v: &Value| v["messages"].as_array().unwrap().len();
    let (_, page) = get(&format!("{}?DateSent%3E={today}", messages_url(&mock))).await;
    assert_eq!(count(&page), 5);
    let (_, page) = get(&format!("{}?DateSent%3E={tomorrow}", messages_url(&mock))).await;
    assert_eq!(count(&page), 0);
    let (_, page) = get(&format!(
        "{}?DateSent={today}&To=%2B15005550100",
        messages_url(&mock)
    ))
    .await;
    assert_eq!(count(&page), 3);
    let an_hour_ago =
        (chrono::Utc::now() - chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let (_, page) = get(&format!(
        "{}?DateSent%3E={an_hour_ago}",
        messages_url(&mock)
    ))
    .await;
    assert_eq!(count(&page), 5);
    let (_, page) = get(&format!(
        "{}?DateSent%3C={an_hour_ago}",
        messages_url(&mock)
    ))
    .await;
    assert_eq!(count(&page), 0);
    let (status, e) = get(&format!("{}?DateSent%3E=soon", messages_url(&mock))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_twilio_error_shapes() {
    let mock = start(config(20)).await;
    let client = client();
    let form = [("To", "+15005550100"), ("From", FROM), ("Body", "hi")];

    for auth in [
        Some((SID, "wrong-token")),
        Some(("ACffffffffffffffffffffffffffffffff", TOKEN)),
        None,
    ] {
        let mut request = client.post(messages_url(&mock)).form(&form);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["code"], 20003);
        assert_eq!(e["status"], 401);
        assert_eq!(e["more_info"], "https://www.twilio.com/docs/errors/20003");
    }

    // Right credentials, someone else's account in the path.
    let other = format!(
        "{}/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/Messages.json",
        mock.base_url()
    );
    let response = client
        .post(other)
        .basic_auth(SID, Some(TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 20404);

    let (status, e) = get(&format!(
        "{}/2010-04-01/Accounts/{SID}/Messages/SMnope.json",
        mock.base_url()
    ))
    .await;
    assert_eq!(
        (status, e["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(20404))
    );
    let (status, e) = get(&format!("{}/no/such/route", mock.base_url())).await;
    assert_eq!(
        (status, e["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(20404))
    );

    let cases: &[(&[(&str, &str)], u64)] = &[
        (&[("From", FROM), ("Body", "hi")], 21604),
        (&[("To", "+15005550100"), ("Body", "hi")], 21603),
        (&[("To", "+15005550100"), ("From", FROM)], 21602),
        (
            &[("To", "not a number"), ("From", FROM), ("Body", "hi")],
            21211,
        ),
        (
            &[("To", "+15005550100"), ("From", "+0"), ("Body", "hi")],
            21212,
        ),
        (
            &[("To", "+15005550001"), ("From", FROM), ("Body", "hi")],
            21211,
        ),
        (
            &[("To", "+15005550002"), ("From", FROM), ("Body", "hi")],
            21612,
        ),
        (
            &[("To", "+15005550003"), ("From", FROM), ("Body", "hi")],
            21408,
        ),
        (
            &[("To", "+15005550004"), ("From", FROM), ("Body", "hi")],
            21610,
        ),
        (
            &[("To", "+15005550009"), ("From", FROM), ("Body", "hi")],
            21614,
        ),
        (
            &[
                ("To", "+15005550100"),
                ("From", "+15005550001"),
                ("Body", "hi"),
            ],
            21212,
        ),
        (
            &[
                ("To", "+15005550100"),
                ("From", "+15005550007"),
                ("Body", "hi"),
            ],
            21606,
        ),
        (
            &[
                ("To", "+15005550100"),
                ("From", "+15005550008"),
                ("Body", "hi"),
            ],
            21611,
        ),
        (
            &[
                ("To", "+15005550100"),
                ("From", FROM),
                ("Body", "hi"),
                ("StatusCallback", "nope"),
            ],
            21609,
        ),
    ];
    for (form, code) in cases {
        let (status, e) = send(&mock, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {e}");
        assert_eq!(e["code"].as_u64(), Some(*code), "{form:?}: {e}");
        assert_eq!(e["status"], 400);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Nothing refused was stored.
    let (_, page) = get(&messages_url(&mock)).await;
    assert!(page["messages"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_is_echoed() {
    let mock = start(config(20)).await;
    let response = client()
        .get(messages_url(&mock))
        .basic_auth(SID, Some(TOKEN))
        .header("X-Correlation-ID", "01JCANARY")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "01JCANARY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_lifecycle_callbacks_and_inbound() {
    const LATENCY: u64 = 40;
    let capture = Capture::start().await;
    let mut numbers = BTreeMap::new();
    numbers.insert(
        "+15005550102".to_string(),
        NumberConfig {
            drop: true,
            owned: true,
            ..Default::default()
        },
    );
    numbers.insert(
        "+15005550103".to_string(),
        NumberConfig {
            fail: Some(30003),
            owned: true,
            ..Default::default()
        },
    );
    let mock = start(MockConfig {
        numbers,
        ..config(LATENCY)
    })
    .await;
    // Registered at run time, as a test harness would for its receiver.
    let inbound_url = capture.url("/hooks/twilio/inbound?receiver=inbox");
    mock.set_number(
        "+15005550100",
        NumberConfig {
            inbound_url: Some(inbound_url.clone()),
            ..Default::default()
        },
    );

    let status_url = capture.url("/hooks/twilio/status?probe=a%20b");
    let _ = client();
    let sent_at = Instant::now();
    let (status, m) = send(
        &mock,
        &[
            ("To", "+15005550100"),
            ("From", FROM),
            ("Body", "canary 1"),
            ("StatusCallback", &status_url),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let sid = m["sid"].as_str().unwrap().to_string();
    let (_, dropped) = send(
        &mock,
        &[
            ("To", "+15005550102"),
            ("From", FROM),
            ("Body", "canary 2"),
            ("StatusCallback", &status_url),
        ],
    )
    .await;
    let (_, failed) = send(
        &mock,
        &[
            ("To", "+15005550103"),
            ("From", FROM),
            ("Body", "canary 3"),
            ("StatusCallback", &status_url),
        ],
    )
    .await;

    let statuses_of = |seen: &[Captured], sid: &str| -> Vec<String> {
        seen.iter()
            .filter(|c| c.path == "/hooks/twilio/status" && c.param("MessageSid") == Some(sid))
            .map(|c| c.param("MessageStatus").unwrap_or("").to_string())
            .collect()
    };
    let dropped_sid = dropped["sid"].as_str().unwrap().to_string();
    let failed_sid = failed["sid"].as_str().unwrap().to_string();
    let seen = capture
        .until("receipts and the inbound webhook", |seen| {
            statuses_of(seen, &sid).len() == 3
                && statuses_of(seen, &failed_sid).len() == 3
                && statuses_of(seen, &dropped_sid).len() == 2
                && seen.iter().any(|c| c.path == "/hooks/twilio/inbound")
        })
        .await;

    assert_eq!(statuses_of(&seen, &sid), ["queued", "sent", "delivered"]);
    assert_eq!(
        statuses_of(&seen, &failed_sid),
        ["queued", "sent", "undelivered"]
    );
    for receipt in capture.on("/hooks/twilio/status") {
        assert!(receipt.signed(), "bad signature on {receipt:#?}");
        assert_eq!(receipt.url, status_url);
        assert_eq!(receipt.param("AccountSid"), Some(SID));
        assert_eq!(receipt.param("From"), Some(FROM));
        assert_eq!(receipt.param("ApiVersion"), Some("2010-04-01"));
        assert_eq!(receipt.param("SmsStatus"), receipt.param("MessageStatus"));
        assert_eq!(receipt.param("SmsSid"), receipt.param("MessageSid"));
        let undelivered = receipt.param("MessageStatus") == Some("undelivered");
        assert_eq!(receipt.param("ErrorCode"), undelivered.then_some("30003"));
    }

    let inbound = capture.on("/hooks/twilio/inbound");
    assert_eq!(
        inbound.len(),
        1,
        "only the delivered owned number arrives: {inbound:#?}"
    );
    let arrival = &inbound[0];
    assert!(arrival.signed(), "bad signature on {arrival:#?}");
    assert_eq!(arrival.url, inbound_url);
    assert_eq!(arrival.param("Body"), Some("canary 1"));
    assert_eq!(arrival.param("From"), Some(FROM));
    assert_eq!(arrival.param("To"), Some("+15005550100"));
    assert_eq!(arrival.param("SmsStatus"), Some("received"));
    assert_eq!(arrival.param("NumMedia"), Some("0"));
    let inbound_sid = arrival.param("MessageSid").unwrap().to_string();
    assert!(inbound_sid.starts_with("SM") && inbound_sid != sid);
    assert_eq!(arrival.param("SmsMessageSid"), Some(inbound_sid.as_str()));
    let elapsed = arrival.at - sent_at;
    println!("inbound arrived {elapsed:?} after the request, latency {LATENCY} ms");
    assert!(elapsed >= ms(LATENCY), "arrived after {elapsed:?}");
    assert!(elapsed < ms(LATENCY + 2_000), "arrived after {elapsed:?}");

    // A little longer than the latency: the dropped message must stay silent.
    tokio::time::sleep(ms(LATENCY)).await;
    assert_eq!(
        statuses_of(&capture.all(), &dropped_sid),
        ["queued", "sent"]
    );
    assert_eq!(capture.on("/hooks/twilio/inbound").len(), 1);

    let fetch = |sid: &str| {
        get_owned(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages/{sid}.json",
            mock.base_url()
        ))
    };
    let (_, m) = fetch(&dropped_sid).await;
    assert_eq!(m["status"], "sent");
    let (_, m) = fetch(&failed_sid).await;
    assert_eq!(
        (m["status"].as_str(), m["error_code"].as_u64()),
        (Some("undelivered"), Some(30003))
    );
    let (_, m) = fetch(&inbound_sid).await;
    assert_eq!(m["direction"], "inbound");

    // The inbound message is listed, To the owned number.
    let (_, page) = get(&format!("{}?To=%2B15005550100", messages_url(&mock))).await;
    let listed = page["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{page}");
    let inbound = &listed[0];
    assert_eq!(inbound["sid"], inbound_sid.as_str());
    assert_eq!(inbound["direction"], "inbound");
    assert_eq!(inbound["status"], "received");
    assert_eq!(inbound["from"], FROM);
    assert_eq!(inbound["body"], "canary 1");
    assert_eq!(listed[1]["sid"], sid.as_str());
    assert_eq!(listed[1]["status"], "delivered");

    // An owned number without a webhook is listed too, but never for a failed or dropped message.
    let (_, page) = get(&format!("{}?To=%2B15005550103", messages_url(&mock))).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    let (_, page) = get(&format!("{}?To=%2B15005550102", messages_url(&mock))).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

async fn get_owned(url: String) -> (StatusCode, Value) {
    get(&url).await
}

/// The seed replays: the test draws the same latencies as the mock, so it
/// knows each message's deadline and can print how late arrivals were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_meet_their_seeded_deadlines_under_load() {
    let model = LatencyModel::Uniform {
        min: ms(20),
        max: ms(60),
    };
    let capture = Capture::start().await;
    let mock = start(MockConfig {
        latency: model.clone(),
        seed: 7,
        ..MockConfig::default()
    })
    .await;
    mock.set_number(
        "+15005550100",
        NumberConfig {
            inbound_url: Some(capture.url("/in")),
            ..Default::default()
        },
    );
    let mut rng = Rng::new(7);
    const N: usize = 200;
    let client = client();
    let mut deadlines = BTreeMap::new();
    for i in 0..N {
        let body = format!("load {i}");
        let started = Instant::now();
        let response = client
            .post(messages_url(&mock))
            .basic_auth(SID, Some(TOKEN))
            .form(&[("To", "+15005550100"), ("From", FROM), ("Body", &body)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        deadlines.insert(body, started + model.sample(&mut rng));
    }
    let seen = capture.until("all arrivals", |seen| seen.len() == N).await;
    let mut late: Vec<Duration> = seen
        .iter()
        .map(|arrival| {
            let deadline = deadlines[arrival.param("Body").unwrap()];
            assert!(
                arrival.at >= deadline,
                "arrived {:?} early",
                deadline - arrival.at
            );
            arrival.at - deadline
        })
        .collect();
    late.sort();
    println!(
        "{N} arrivals after their seeded deadlines (client-side clock, includes HTTP both ways): \
         p50 {:?}, p99 {:?}, max {:?}",
        late[N / 2],
        late[N * 99 / 100],
        late[N - 1]
    );
    assert!(late[N - 1] < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server() {
    let mock = start(MockConfig {
        auth_token: Secret::new("other-token"),
        ..config(20)
    })
    .await;
    let url = messages_url(&mock);
    mock.shutdown().await;
    let result = client()
        .get(url)
        .basic_auth(SID, Some("other-token"))
        .send()
        .await;
    assert!(result.is_err(), "still serving after shutdown");
}
