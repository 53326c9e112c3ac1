//! Injected faults over real HTTP, through both provider APIs: error bursts,
//! throttling, outages, provider codes, and the seeded drop / duplicate /
//! fake-receipt rates; then the admin API that sets them at run time, and
//! the TOML table they load from.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sms_canary::mock_carrier::{
    CodeFault, ErrorBurst, Faults, MockConfig, MockHandle, NumberConfig, Outage, RateLimit,
};

use super::mock_vonage::{
    Capture, admin_messages, client, config, entry, start, twilio_send, vonage_send,
};

const OWNED: &str = "+15005550100";

async fn twilio_ok(mock: &MockHandle) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    twilio_send(
        mock,
        &[
            ("To", "+15005550006"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ],
    )
    .await
}

async fn vonage_ok(mock: &MockHandle) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    vonage_send(
        mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900000"),
            ("text", "hi"),
        ],
    )
    .await
}

fn with_faults(faults: Faults) -> MockConfig {
    MockConfig {
        faults,
        ..config(20)
    }
}

async fn admin(
    mock: &MockHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", mock.base_url()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_burst_fails_exactly_count_submits() {
    let mock = start(with_faults(Faults {
        errors: Some(ErrorBurst {
            status: 500,
            count: 3,
        }),
        ..Faults::default()
    }))
    .await;
    for i in 0..3 {
        let (status, _, body) = twilio_ok(&mock).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "submit {i}");
        assert_eq!(body["code"], 20500);
        assert_eq!(body["status"], 500);
    }
    let (status, _, _) = twilio_ok(&mock).await;
    assert_eq!(status, StatusCode::CREATED);

    // The same through Vonage: the HTTP status, and status 5 in the body.
    mock.set_faults(Faults {
        errors: Some(ErrorBurst {
            status: 503,
            count: 1,
        }),
        ..Faults::default()
    });
    let (status, _, body) = vonage_ok(&mock).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(entry(&body)["status"], "5");
    let (status, _, body) = vonage_ok(&mock).await;
    assert_eq!(
        (status, entry(&body)["status"].clone()),
        (StatusCode::OK, json!("0"))
    );
    // Only accepted messages are stored.
    assert_eq!(admin_messages(&mock).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_gives_retry_after_then_success() {
    let limit = Faults {
        rate_limit: Some(RateLimit {
            count: 2,
            retry_after: Duration::from_millis(1500),
        }),
        ..Faults::default()
    };
    let mock = start(with_faults(limit.clone())).await;
    for _ in 0..2 {
        let (status, headers, body) = twilio_ok(&mock).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["code"], 20429);
        // Rounded up: retrying after 1 s would still be throttled.
        assert_eq!(headers["retry-after"], "2");
    }
    assert_eq!(twilio_ok(&mock).await.0, StatusCode::CREATED);

    mock.set_faults(limit);
    let (status, headers, body) = vonage_ok(&mock).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry(&body)["status"], "1");
    assert_eq!(entry(&body)["error-text"], "Throttled");
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(entry(&vonage_ok(&mock).await.2)["status"], "1");
    assert_eq!(entry(&vonage_ok(&mock).await.2)["status"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_refuses_every_submit_for_its_duration_only() {
    let capture = Capture::start().await;
    let mock = start(config(150)).await;
    // A delivery scheduled before the outage still happens during it.
    let callback = capture.url("/status");
    let (status, _, _) = twilio_send(
        &mock,
        &[
            ("To", "+15005550006"),
            ("From", "+15005550006"),
            ("Body", "before the outage"),
            ("StatusCallback", &callback),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    mock.set_faults(Faults {
        outage: Some(Outage {
            duration: Duration::from_millis(300),
        }),
        ..Faults::default()
    });
    let started = Instant::now();
    let (status, _, body) = twilio_ok(&mock).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], 20503);
    let (status, _, body) = vonage_ok(&mock).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(entry(&body)["status"], "5");

    let receipts = capture.until("/status", 3).await;
    assert_eq!(receipts[2].param("MessageStatus"), Some("delivered"));

    // Every submit fails until the window closes, then they all succeed.
    let mut refused = 0;
    loop {
        let (status, _, _) = twilio_ok(&mock).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        refused += 1;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the outage did not end"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(refused > 0);
    assert_eq!(vonage_ok(&mock).await.0, StatusCode::OK);
    assert_eq!(mock.faults().outage, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_code_faults_answer_as_each_provider_would() {
    let mock = start(with_faults(Faults {
        error_code: Some(CodeFault {
            code: 21610,
            count: 2,
        }),
        ..Faults::default()
    }))
    .await;
    let (status, _, body) = twilio_ok(&mock).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 21610);
    // The Vonage side gives its nearest status: barred.
    let (status, _, body) = vonage_ok(&mock).await;
    assert_eq!(
        (status, entry(&body)["status"].clone()),
        (StatusCode::OK, json!("7"))
    );
    assert_eq!(entry(&vonage_ok(&mock).await.2)["status"], "0");

    // count 0: until reset. Vonage statuses go through as they are.
    for code in [9u32, 29, 8] {
        mock.set_faults(Faults {
            error_code: Some(CodeFault { code, count: 0 }),
            ..Faults::default()
        });
        for _ in 0..3 {
            let (_, _, body) = vonage_ok(&mock).await;
            assert_eq!(entry(&body)["status"], code.to_string());
            assert!(entry(&body)["error-text"].is_string());
        }
    }
    // Validation still comes first: a missing param is a missing param.
    let (_, _, body) = vonage_send(&mock, &[("from", "447700900001"), ("text", "hi")]).await;
    assert_eq!(entry(&body)["status"], "2");
    // And a Twilio client sees a Vonage code as Twilio's nearest refusal.
    let (status, _, body) = twilio_ok(&mock).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(30002))
    );

    let (status, _) = admin(&mock, reqwest::Method::DELETE, "/_mock/faults", None).await;
    assert_eq!(status, 200);
    assert_eq!(twilio_ok(&mock).await.0, StatusCode::CREATED);
}

/// An owned number whose inbound webhooks land on `capture` at `path`.
fn owned(capture: &Capture, path: &str) -> NumberConfig {
    NumberConfig {
        inbound_url: Some(capture.url(path)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rates_drop_duplicate_and_fake_receipts() {
    let capture = Capture::start().await;
    let mock = start(config(20)).await;
    mock.set_number(OWNED, owned(&capture, "/inbound"));
    let send = |path: &'static str| {
        let callback = capture.url(path);
        let mock = &mock;
        async move {
            let (status, _, body) = twilio_send(
                mock,
                &[
                    ("To", OWNED),
                    ("From", "+15005550006"),
                    ("Body", path),
                    ("StatusCallback", &callback),
                ],
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["sid"].as_str().unwrap().to_string()
        }
    };

    // Duplicates: two inbound copies, one receipt.
    mock.set_faults(Faults {
        duplicate_rate: 1.0,
        ..Faults::default()
    });
    send("/dup").await;
    let copies = capture.until("/inbound", 2).await;
    assert!(copies.iter().all(|c| c.param("Body") == Some("/dup")));
    assert_ne!(copies[0].param("MessageSid"), copies[1].param("MessageSid"));
    let receipts = capture.until("/dup", 3).await;
    assert_eq!(receipts[2].param("MessageStatus"), Some("delivered"));

    // Fake receipt: delivered, and nothing arrives.
    mock.set_faults(Faults {
        fake_dlr_rate: 1.0,
        ..Faults::default()
    });
    let fake_sid = send("/fake").await;
    let receipts = capture.until("/fake", 3).await;
    assert_eq!(receipts[2].param("MessageStatus"), Some("delivered"));

    // Drop: queued and sent, then silence.
    mock.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let drop_sid = send("/drop").await;
    capture.until("/drop", 2).await;

    // A later, normal message is delivered after both deadlines passed; by
    // then a fake or dropped message would have arrived if it were going to.
    mock.set_faults(Faults::default());
    send("/after").await;
    capture.until("/after", 3).await;
    let inbound = capture.until("/inbound", 3).await;
    let bodies: Vec<_> = inbound.iter().map(|c| c.param("Body").unwrap()).collect();
    assert_eq!(bodies, ["/dup", "/dup", "/after"]);
    assert_eq!(capture.on("/drop").len(), 2);

    let all = admin_messages(&mock).await;
    let status_of = |sid: &str| all.iter().find(|m| m["id"] == sid).unwrap()["status"].clone();
    assert_eq!(status_of(&fake_sid), "delivered");
    assert_eq!(status_of(&drop_sid), "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_number_fake_dlr_and_duplicates_through_vonage() {
    let capture = Capture::start().await;
    let mock = start(config(20)).await;
    mock.set_number(
        "+447700900100",
        NumberConfig {
            duplicates: 2,
            ..owned(&capture, "/copies")
        },
    );
    mock.set_number(
        "+447700900101",
        NumberConfig {
            fake_dlr: true,
            ..owned(&capture, "/never")
        },
    );
    let dlr = capture.url("/dlr-fake");
    vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900101"),
            ("text", "fake"),
            ("callback", &dlr),
        ],
    )
    .await;
    vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900100"),
            ("text", "three"),
        ],
    )
    .await;
    let copies = capture.until("/copies", 3).await;
    assert!(copies.iter().all(|c| c.param("text") == Some("three")));
    let receipts = capture.until("/dlr-fake", 2).await;
    assert_eq!(receipts[1].param("status"), Some("delivered"));
    assert!(capture.on("/never").is_empty());
    let inbound = admin_messages(&mock)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    assert_eq!(inbound, 3);
}

/// Which of `n` messages a drop rate of 0.5 dropped, by their final status.
async fn drop_decisions(seed: u64, n: usize) -> Vec<bool> {
    let mock = start(with_faults(Faults {
        drop_rate: 0.5,
        seed: Some(seed),
        ..Faults::default()
    }))
    .await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, _, body) = twilio_ok(&mock).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["sid"].as_str().unwrap().to_string());
    }
    // A 20 ms latency: the decisions are read once the number delivered has
    // held still for a while, so a drop is not mistaken for a slow delivery.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut last, mut steady) = (usize::MAX, 0);
    loop {
        let all = admin_messages(&mock).await;
        let delivered = all.iter().filter(|m| m["status"] == "delivered").count();
        steady = if delivered == last { steady + 1 } else { 0 };
        last = delivered;
        if steady >= 5 {
            return ids
                .iter()
                .map(|id| {
                    let m = all.iter().find(|m| m["id"] == id.as_str()).unwrap();
                    m["status"] == "sent"
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "messages did not settle");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_rate_replays_the_same_decisions() {
    let first = drop_decisions(42, 24).await;
    let second = drop_decisions(42, 24).await;
    assert_eq!(first, second);
    assert!(
        first.iter().any(|&d| d) && first.iter().any(|&d| !d),
        "{first:?}"
    );
    let other = drop_decisions(43, 24).await;
    assert_ne!(first, other, "another seed, other decisions (2^-24 odds)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_sets_lists_and_resets() {
    use reqwest::Method;
    let mock = start(config(20)).await;
    let (status, body) = admin(&mock, Method::GET, "/_mock/faults", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["drop_rate"], 0.0);
    assert_eq!(body["errors"], Value::Null);

    let (status, body) = admin(
        &mock,
        Method::POST,
        "/_mock/faults",
        Some(r#"{"errors":{"status":502,"count":2},"outage":{"for":"1h"},"drop_rate":0.1}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!({ "status": 502, "count": 2 }));
    assert_eq!(body["outage"], json!({ "for": "1h" }));
    assert_eq!(mock.faults().drop_rate, 0.1);
    assert_eq!(twilio_ok(&mock).await.0, StatusCode::SERVICE_UNAVAILABLE);

    for (bad, needle) in [
        ("{not json", "invalid faults"),
        (r#"{"drop_rate": 1.5}"#, "drop_rate"),
        (r#"{"errors":{"status":200,"count":1}}"#, "400 to 599"),
        (r#"{"dropp_rate": 0.5}"#, "unknown field"),
        (r#"{"outage":{"for":"a while"}}"#, "invalid duration"),
    ] {
        let (status, body) = admin(&mock, Method::POST, "/_mock/faults", Some(bad)).await;
        assert_eq!(status, 400, "{bad}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{bad}: {message}");
    }
    // A refused update leaves the faults as they were.
    assert_eq!(mock.faults().drop_rate, 0.1);

    let (status, body) = admin(&mock, Method::DELETE, "/_mock/faults", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_value::<Faults>(body).unwrap(),
        Faults::default()
    );
    assert_eq!(mock.faults(), Faults::default());

    assert_eq!(twilio_ok(&mock).await.0, StatusCode::CREATED);
    assert_eq!(entry(&vonage_ok(&mock).await.2)["status"], "0");
    let all = admin_messages(&mock).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["api"], "vonage");
    assert_eq!(all[0]["to"], "+447700900000", "asked for in full");
    let (status, masked) = admin(&mock, Method::GET, "/_mock/messages", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        masked["messages"][0]["to"], "+*********000",
        "masked by default"
    );
    assert_eq!(all[1]["api"], "twilio");
    assert_eq!(all[1]["direction"], "outbound-api");
    assert_eq!(all[1]["body"], "hi");
    for m in &all {
        for field in ["id", "from", "status", "date_created", "date_updated"] {
            assert!(m[field].is_string(), "{field} in {m}");
        }
        assert!(m.get("error_code").is_some());
    }

    mock.set_faults(Faults {
        fake_dlr_rate: 1.0,
        ..Faults::default()
    });
    let (status, _) = admin(&mock, Method::POST, "/_mock/reset", None).await;
    assert_eq!(status, 204);
    assert!(admin_messages(&mock).await.is_empty());
    assert_eq!(mock.faults(), Faults::default());
}

#[derive(serde::Deserialize)]
struct Gateway {
    faults: Faults,
}

#[derive(serde::Deserialize)]
struct Root {
    gateways: std::collections::BTreeMap<String, Gateway>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_load_from_a_toml_table() {
    let root: Root = toml::from_str(
        r#"
        [gateways.sandbox.faults]
        duplicate_rate = 0.25
        seed = 7
        errors = { status = 503, count = 1 }
        rate_limit = { count = 1, retry_after = "2s" }
        "#,
    )
    .unwrap();
    let faults = root.gateways["sandbox"].faults.clone();
    assert_eq!(faults.duplicate_rate, 0.25);
    assert_eq!(faults.seed, Some(7));
    let mock = start(with_faults(faults)).await;
    assert_eq!(twilio_ok(&mock).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, headers, _) = twilio_ok(&mock).await;
    assert_eq!(
        (status, &headers["retry-after"]),
        (StatusCode::TOO_MANY_REQUESTS, &"2".parse().unwrap())
    );
    assert_eq!(twilio_ok(&mock).await.0, StatusCode::CREATED);

    // Invalid faults stop the mock from starting, with the reason.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = with_faults(toml::from_str("drop_rate = -0.1").unwrap());
    let e = sms_canary::mock_carrier::MockCarrier::start(bad, listener)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("drop_rate"), "{e}");
}
