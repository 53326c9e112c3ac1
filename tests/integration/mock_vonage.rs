//! The mock carrier's Vonage side over real HTTP: `/sms/json` by form and by
//! JSON, every refusal status, delivery receipts and inbound webhooks in
//! Vonage's fields (signed and not), the balance check, and Twilio's account
//! fetch that `doctor` relies on. The callback server here is shared with the
//! fault tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sms_canary::mock_carrier::{
    InboundFormat, LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig,
};
use sms_canary::providers::MockAccounts;
use sms_canary::providers::twilio::signature::verify as verify_twilio_signature;
use sms_canary::providers::vonage::mock::Account as VonageAccount;
#[allow(unused_imports)]
use sms_canary::providers::vonage::signature::{
    SignatureMethod as VonageMethod, sign as vonage_signature, verify as verify_vonage_signature,
};
use sms_canary::redact::Secret;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub(crate) const SID: &str = "AC00000000000000000000000000000000";
pub(crate) const TOKEN: &str = "mock-auth-token";
pub(crate) const KEY: &str = "mockkey";
pub(crate) const SECRET: &str = "mock-api-secret";
const SIGNATURE_SECRET: &str = "vonage-sig-secret";
const OWNED: &str = "+447700900100";

pub(crate) async fn start(config: MockConfig) -> MockHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockCarrier::start(config, listener).await.unwrap()
}

pub(crate) fn config(latency_ms: u64) -> MockConfig {
    MockConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(latency_ms)),
        ..MockConfig::default()
    }
}

pub(crate) fn client() -> reqwest::Client {
    thread_local!(static CLIENT: reqwest::Client = reqwest::Client::new());
    CLIENT.with(Clone::clone)
}

/// A submit through the Vonage API, with the default credentials added.
pub(crate) async fn vonage_send(
    mock: &MockHandle,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut fields = vec![("api_key", KEY), ("api_secret", SECRET)];
    fields.extend_from_slice(form);
    vonage_raw(mock, &fields).await
}

pub(crate) async fn vonage_raw(
    mock: &MockHandle,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(format!("{}/sms/json", mock.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

/// A submit through the Twilio API.
pub(crate) async fn twilio_send(
    mock: &MockHandle,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            mock.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

/// The first entry of a Vonage submit response.
pub(crate) fn entry(body: &Value) -> &Value {
    assert_eq!(body["message-count"], "1", "{body}");
    &body["messages"][0]
}

/// Every message the mock holds, through the admin API, numbers in full.
pub(crate) async fn admin_messages(mock: &MockHandle) -> Vec<Value> {
    let body: Value = client()
        .get(format!("{}/_mock/messages?numbers=full", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["messages"].as_array().unwrap().clone()
}

/// One request the callback server received.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) url: String,
    pub(crate) path: String,
    pub(crate) twilio_signature: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Captured {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A stand-in for the canary's webhook receiver: records every request.
#[derive(Clone)]
pub(crate) struct Capture {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Captured>>>,
    notify: Arc<Notify>,
}

impl Capture {
    pub(crate) async fn start() -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let capture = Capture {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            notify: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(capture.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        capture
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn on(&self, path: &str) -> Vec<Captured> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|c| c.path == path).cloned().collect()
    }

    /// Waits until at least `n` requests reached `path`, and returns them.
    pub(crate) async fn until(&self, path: &str, n: usize) -> Vec<Captured> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.notify.notified();
            let seen = self.on(path);
            if seen.len() >= n {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} requests on {path}; got {seen:#?}"
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

async fn record(State(capture): State<Capture>, request: Request) -> StatusCode {
    let uri = request.uri().clone();
    let twilio_signature = request
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
        twilio_signature,
        params,
    });
    capture.notify.notify_waiters();
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_by_form_and_by_json() {
    let mock = start(config(20)).await;
    let (status, _, body) = vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900000"),
            ("text", "hello by form"),
            ("client-ref", "probe-1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let m = entry(&body);
    assert_eq!(m["status"], "0", "{body}");
    assert_eq!(m["to"], "447700900000");
    assert_eq!(m["client-ref"], "probe-1");
    assert_eq!(m["message-price"], "0.03330000");
    assert_eq!(m["remaining-balance"], "10.24670000");
    assert_eq!(m["network"], "12345");
    let id = m["message-id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");

    let response = client()
        .post(format!("{}/sms/json", mock.base_url()))
        .json(&json!({
            "api_key": KEY,
            "api_secret": SECRET,
            "from": "Canary",
            "to": "+447700900002",
            "text": "hello by json",
            "status-report-req": 1,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let m = entry(&body);
    assert_eq!(m["status"], "0", "{body}");
    assert_eq!(m["to"], "447700900002");
    assert!(m.get("client-ref").is_none(), "{body}");

    // Stored as E.164 whichever way the number came in, newest first.
    let all = admin_messages(&mock).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["to"], "+447700900002");
    assert_eq!(all[0]["from"], "Canary");
    assert_eq!(all[1]["to"], "+447700900000");
    assert_eq!(all[1]["from"], "+447700900001");
    assert_eq!(all[1]["id"], id.as_str());
    assert_eq!(all[1]["client_ref"], "probe-1");
    assert!(all.iter().all(|m| m["api"] == "vonage"));

    // A Vonage message is not in the Twilio account.
    let response = client()
        .get(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages/{id}.json",
            mock.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_http_200_with_a_vonage_status() {
    let mock = start(config(20)).await;
    let ok = [
        ("api_key", KEY),
        ("api_secret", SECRET),
        ("from", "447700900001"),
        ("to", "447700900000"),
        ("text", "hi"),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        ok.iter().copied().filter(|(k, _)| *k != name).collect()
    };
    let with = |name: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = ok.iter().copied().filter(|(k, _)| *k != name).collect();
        v.push((name, value));
        v
    };
    let long_ref = "r".repeat(101);
    let long_text = "x".repeat(3201);
    type Form<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Form, &str, &str)> = vec![
        (without("api_key"), "2", "Missing api_key param"),
        (without("api_secret"), "2", "Missing api_secret param"),
        (with("api_secret", "wrong"), "4", "Bad Credentials"),
        (with("api_key", "otherkey"), "4", "Bad Credentials"),
        (without("from"), "2", "Missing from param"),
        (without("to"), "2", "Missing to param"),
        (without("text"), "2", "Missing text param"),
        (with("to", "not a number"), "3", "Invalid to param"),
        (with("to", "0123"), "3", "Invalid to param"),
        (
            with("from", "much-too-long-sender"),
            "15",
            "Illegal Sender Address",
        ),
        (with("callback", "ftp://x"), "3", "Invalid callback param"),
        (
            with("status-report-req", "maybe"),
            "3",
            "Invalid status-report-req param",
        ),
    ];
    for (form, status, text) in cases {
        let (http, _, body) = vonage_raw(&mock, &form).await;
        assert_eq!(http, StatusCode::OK, "{form:?}");
        let m = entry(&body);
        assert_eq!(m["status"], status, "{form:?}: {body}");
        assert!(
            m["error-text"].as_str().unwrap().contains(text),
            "{form:?}: {body}"
        );
    }
    let mut form = ok.to_vec();
    form.push(("client-ref", &long_ref));
    assert_eq!(entry(&vonage_raw(&mock, &form).await.2)["status"], "3");
    let mut form = without("text");
    form.push(("text", &long_text));
    assert_eq!(entry(&vonage_raw(&mock, &form).await.2)["status"], "6");

    let response = client()
        .post(format!("{}/sms/json", mock.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(entry(&body)["status"], "3");
    // Nothing refused was stored.
    assert!(admin_messages(&mock).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_accepted_then_delivered_or_failed() {
    let capture = Capture::start().await;
    let mut numbers = BTreeMap::new();
    numbers.insert(
        "+447700900003".to_string(),
        NumberConfig {
            fail: Some(30003),
            ..Default::default()
        },
    );
    numbers.insert(
        "+447700900004".to_string(),
        NumberConfig {
            fail: Some(7),
            ..Default::default()
        },
    );
    let mock = start(MockConfig {
        numbers,
        ..config(30)
    })
    .await;

    let send = |to: &'static str, path: &'static str| {
        let callback = capture.url(path);
        let mock = &mock;
        async move {
            let (_, _, body) = vonage_send(
                mock,
                &[
                    ("from", "447700900001"),
                    ("to", to),
                    ("text", "receipt please"),
                    ("callback", &callback),
                    ("client-ref", "ref-9"),
                ],
            )
            .await;
            entry(&body)["message-id"].as_str().unwrap().to_string()
        }
    };
    let ok_id = send("447700900000", "/dlr/ok").await;
    let fail_id = send("447700900003", "/dlr/fail").await;
    let vonage_code_id = send("447700900004", "/dlr/code").await;

    let ok = capture.until("/dlr/ok", 2).await;
    let statuses: Vec<_> = ok.iter().map(|c| c.param("status").unwrap()).collect();
    assert_eq!(statuses, ["accepted", "delivered"]);
    let receipt = &ok[1];
    assert_eq!(receipt.param("messageId"), Some(ok_id.as_str()));
    assert_eq!(receipt.param("msisdn"), Some("447700900000"));
    assert_eq!(receipt.param("to"), Some("447700900001"));
    assert_eq!(receipt.param("network-code"), Some("12345"));
    assert_eq!(receipt.param("price"), Some("0.03330000"));
    assert_eq!(receipt.param("err-code"), Some("0"));
    assert_eq!(receipt.param("api-key"), Some(KEY));
    assert_eq!(receipt.param("client-ref"), Some("ref-9"));
    assert_eq!(receipt.param("scts").unwrap().len(), 10);
    let stamp = receipt.param("message-timestamp").unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{stamp}"
    );
    // Unsigned by default.
    assert!(receipt.param("sig").is_none() && receipt.param("timestamp").is_none());

    let failed = capture.until("/dlr/fail", 2).await;
    assert_eq!(failed[0].param("status"), Some("accepted"));
    assert_eq!(failed[1].param("status"), Some("failed"));
    assert_eq!(failed[1].param("messageId"), Some(fail_id.as_str()));
    // Twilio's 30003 (handset unreachable) is Vonage's absent subscriber.
    assert_eq!(failed[1].param("err-code"), Some("2"));
    let coded = capture.until("/dlr/code", 2).await;
    assert_eq!(coded[1].param("status"), Some("failed"));
    assert_eq!(coded[1].param("messageId"), Some(vonage_code_id.as_str()));
    assert_eq!(coded[1].param("err-code"), Some("7"));

    let all = admin_messages(&mock).await;
    let status_of = |id: &str| {
        all.iter()
            .find(|m| m["id"] == id)
            .map(|m| (m["status"].clone(), m["error_code"].clone()))
            .unwrap()
    };
    assert_eq!(status_of(&ok_id), (json!("delivered"), Value::Null));
    assert_eq!(status_of(&fail_id), (json!("failed"), json!(30003)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_receipts_and_vonage_inbound_for_owned_numbers() {
    let capture = Capture::start().await;
    let mock = start(MockConfig {
        accounts: MockAccounts {
            vonage: VonageAccount {
                signature_secret: Some(Secret::new(SIGNATURE_SECRET)),
                signature_method: VonageMethod::Sha256,
                ..VonageAccount::default()
            },
            ..MockAccounts::default()
        },
        ..config(25)
    })
    .await;
    mock.set_number(
        OWNED,
        NumberConfig {
            inbound_url: Some(capture.url("/inbound")),
            ..Default::default()
        },
    );
    let callback = capture.url("/dlr");
    let (_, _, body) = vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900100"),
            ("text", "canary probe token=abc&x"),
            ("callback", &callback),
        ],
    )
    .await;
    let id = entry(&body)["message-id"].as_str().unwrap().to_string();

    let receipts = capture.until("/dlr", 2).await;
    for receipt in &receipts {
        assert!(receipt.param("timestamp").is_some(), "{receipt:?}");
        assert!(
            verify_vonage_signature(&receipt.params, SIGNATURE_SECRET, VonageMethod::Sha256),
            "{receipt:?}"
        );
        assert!(!verify_vonage_signature(
            &receipt.params,
            "wrong-secret",
            VonageMethod::Sha256
        ));
    }
    let inbound = capture.until("/inbound", 1).await;
    let m = &inbound[0];
    assert_eq!(m.param("msisdn"), Some("447700900001"));
    assert_eq!(m.param("to"), Some("447700900100"));
    assert_eq!(m.param("text"), Some("canary probe token=abc&x"));
    assert_eq!(m.param("type"), Some("text"));
    assert_eq!(m.param("keyword"), Some("CANARY"));
    assert!(m.param("message-timestamp").is_some());
    let inbound_id = m.param("messageId").unwrap();
    assert_ne!(inbound_id, id, "the inbound message has an id of its own");
    assert!(m.twilio_signature.is_empty());
    assert!(verify_vonage_signature(
        &m.params,
        SIGNATURE_SECRET,
        VonageMethod::Sha256
    ));
    assert!(!verify_vonage_signature(
        &m.params,
        "wrong-secret",
        VonageMethod::Sha256
    ));
    let mut tampered = m.params.clone();
    for (k, v) in &mut tampered {
        if k == "text" {
            v.push('!');
        }
    }
    assert!(!verify_vonage_signature(
        &tampered,
        SIGNATURE_SECRET,
        VonageMethod::Sha256
    ));

    let all = admin_messages(&mock).await;
    let stored = all.iter().find(|m| m["id"] == inbound_id).unwrap();
    assert_eq!(stored["direction"], "inbound");
    assert_eq!(stored["api"], "vonage");
    assert_eq!(stored["status"], "received");
}

/// The inbound webhook follows the API the message was sent through, unless
/// the number says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_format_follows_the_sending_api() {
    let capture = Capture::start().await;
    let mock = start(config(20)).await;
    mock.set_number(
        OWNED,
        NumberConfig {
            inbound_url: Some(capture.url("/follow")),
            ..Default::default()
        },
    );
    mock.set_number(
        "+447700900101",
        NumberConfig {
            inbound_url: Some(capture.url("/forced")),
            inbound_format: Some(InboundFormat::Twilio),
            ..Default::default()
        },
    );
    let (status, _, _) = twilio_send(
        &mock,
        &[
            ("To", OWNED),
            ("From", "+15005550006"),
            ("Body", "via twilio"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let twilio_style = capture.until("/follow", 1).await;
    let (_, _, body) = vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900100"),
            ("text", "via vonage"),
        ],
    )
    .await;
    assert_eq!(entry(&body)["status"], "0");
    let both = capture.until("/follow", 2).await;

    let t = &twilio_style[0];
    assert_eq!(t.param("Body"), Some("via twilio"));
    assert_eq!(t.param("From"), Some("+15005550006"));
    assert!(verify_twilio_signature(
        &t.url,
        &t.params,
        TOKEN,
        &t.twilio_signature
    ));
    let v = &both[1];
    assert_eq!(v.param("text"), Some("via vonage"));
    assert_eq!(v.param("msisdn"), Some("447700900001"));
    assert!(v.param("Body").is_none() && v.twilio_signature.is_empty());

    vonage_send(
        &mock,
        &[
            ("from", "447700900001"),
            ("to", "447700900101"),
            ("text", "forced"),
        ],
    )
    .await;
    let forced = capture.until("/forced", 1).await;
    assert_eq!(forced[0].param("Body"), Some("forced"));
    assert_eq!(forced[0].param("From"), Some("+447700900001"));
    assert!(verify_twilio_signature(
        &forced[0].url,
        &forced[0].params,
        TOKEN,
        &forced[0].twilio_signature
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_and_account_checks_for_doctor() {
    let mock = start(config(20)).await;
    let balance = |query: String| {
        let url = format!("{}/account/get-balance?{query}", mock.base_url());
        async move {
            let response = client().get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = balance(format!("api_key={KEY}&api_secret={SECRET}")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "value": 10.28, "autoReload": false }));
    for query in [
        format!("api_key={KEY}&api_secret=wrong"),
        format!("api_key={KEY}"),
        String::new(),
    ] {
        let (status, body) = balance(query.clone()).await;
        assert_eq!(status, 401, "{query}");
        assert_eq!(
            body,
            json!({ "error-code": "401", "error-code-label": "authentication failed" })
        );
    }

    let account = |sid: &str, token: &str| {
        let request = client()
            .get(format!(
                "{}/2010-04-01/Accounts/{sid}.json",
                mock.base_url()
            ))
            .basic_auth(SID, Some(token.to_string()));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = account(SID, TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sid"], SID);
    assert_eq!(body["status"], "active");
    assert_eq!(body["type"], "Full");
    assert!(body["friendly_name"].is_string());
    assert!(body["auth_token"].is_null(), "never echo the token");
    let (status, body) = account(SID, "wrong").await;
    assert_eq!((status, body["code"].clone()), (401, json!(20003)));
    let (status, body) = account("AC11111111111111111111111111111111", TOKEN).await;
    assert_eq!((status, body["code"].clone()), (404, json!(20404)));
}
