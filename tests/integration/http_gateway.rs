//! The `kind = "http"` gateway against a small axum app standing in for a
//! user's own SMS API: the request it builds from templates (JSON, form, GET,
//! headers, correlation id), message ids, the user's permanent and transient
//! rules, the HTTP-status defaults, and answers that are garbage, huge, cut
//! off, or never come.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sms_canary::config::{Config, E164, GatewayConfig, HttpGatewayConfig};
use sms_canary::gateway::{Accepted, ErrorClass, Gateway, SubmitError, SubmitRequest};
use sms_canary::net::MAX_RESPONSE_BYTES;
use sms_canary::providers::http::gateway::HttpGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the fake API saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// What the fake API answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

#[derive(Clone)]
struct Api {
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<Mutex<Reply>>,
}

impl Api {
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
    fn answer(&self, r: Reply) {
        *self.reply.lock().unwrap() = r;
    }
}

async fn record(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.seen.lock().unwrap().push(Seen {
        method,
        uri,
        headers,
        body,
    });
    let r = api.reply.lock().unwrap().clone();
    let mut response = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (name, value) in r.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("test header value"));
    }
    response
}

/// Serves the fake API on 127.0.0.1:0; returns it and its base URL.
async fn api(first: Reply) -> (Api, String) {
    let api = Api {
        seen: Arc::default(),
        reply: Arc::new(Mutex::new(first)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(record).with_state(api.clone());
    tokio::spawn(axum::serve(listener, app).into_future());
    (api, base)
}

/// The gateway table as a user writes it in the main config, under
/// `[gateways.api]` with `kind = "http"`.
///
/// Parsed on its own so that each test shows only the table it is about;
/// `loads_from_the_main_config` below goes through the whole config loader.
fn gateway(table: &str) -> HttpGateway {
    let config: HttpGatewayConfig = toml::from_str(table).expect("gateway table parses");
    HttpGateway::new("api", &config).expect("gateway builds")
}

struct Numbers {
    from: E164,
    to: E164,
}

fn numbers() -> Numbers {
    Numbers {
        from: E164::parse("+15005550006").unwrap(),
        to: E164::parse("+15005550100").unwrap(),
    }
}

const CORRELATION_ID: &str = "01HZY3Q1S8W7V6T5R4P3N2M1K0";

async fn submit(g: &HttpGateway, body: &str) -> Result<Accepted, SubmitError> {
    let n = numbers();
    let request = SubmitRequest {
        from: &n.from,
        to: &n.to,
        body,
        correlation_id: CORRELATION_ID,
        status_callback: None,
    };
    tokio::time::timeout(Duration::from_secs(10), g.submit(request))
        .await
        .expect("submit finishes")
}

#[tokio::test]
async fn loads_from_the_main_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[gateways.api]\nkind = \"http\"\nurl = \"https://sms.example.com/v1/messages\"\n\
         headers = { Authorization = \"Bearer ${SMS_API_TOKEN}\" }\n\
         body = '{\"to\":\"{{to}}\",\"from\":\"{{from}}\",\"text\":\"{{body}}\"}'\n\
         message_id = \"$.id\"\n\
         permanent = [{ status = 402 }, { json = \"$.error.code\", equals = \"NO_CREDIT\" }]\n\n\
         [canary]\nprobes = []\n",
    )
    .unwrap();
    let config = Config::load_with_env(&path, &|v| {
        (v == "SMS_API_TOKEN").then(|| "tok".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(GatewayConfig::Http(http)) = config.gateways.get("api") else {
        panic!(
            "expected an http gateway, got {:?}",
            config.gateways.get("api")
        );
    };
    HttpGateway::new("api", http).unwrap();
}

#[tokio::test]
async fn json_body_is_escaped_and_headers_are_sent() {
    let (api, base) = api(reply(201, r#"{"id":"msg-1"}"#)).await;
    let g = gateway(&format!(
        r#"
        url = "{base}/v1/messages"
        headers = {{ Authorization = "Bearer tok-123", X-Trace = "run {{{{correlation_id}}}}" }}
        body = '{{"to":"{{{{to}}}}","from":"{{{{ from }}}}","text":"{{{{body}}}}"}}'
        message_id = "$.id"
        "#
    ));
    let text = "say \"hi\"\nback\\slash\ttab é";
    let accepted = submit(&g, text).await.unwrap();
    assert_eq!(accepted.message_id, "msg-1");

    let seen = api.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri.path(), "/v1/messages");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.headers["authorization"], "Bearer tok-123");
    assert_eq!(seen.headers["x-trace"], format!("run {CORRELATION_ID}"));
    assert_eq!(seen.headers["x-correlation-id"], CORRELATION_ID);
    let json: serde_json::Value = serde_json::from_slice(&seen.body).expect("valid JSON");
    assert_eq!(json["text"], text);
    assert_eq!(json["to"], "+15005550100");
    assert_eq!(json["from"], "+15005550006");
}

#[tokio::test]
async fn a_configured_content_type_wins() {
    let (api, base) = api(reply(200, "")).await;
    let g = gateway(&format!(
        r#"
        url = "{base}/send"
        method = "PUT"
        headers = {{ Content-Type = "application/vnd.sms+json" }}
        body = '{{"text":"{{{{body}}}}"}}'
        "#
    ));
    assert_eq!(submit(&g, "hi").await.unwrap().message_id, "unknown");
    let seen = api.last();
    assert_eq!(seen.method, Method::PUT);
    assert_eq!(seen.headers["content-type"], "application/vnd.sms+json");
    assert_eq!(seen.headers.get_all("content-type").iter().count(), 1);
}

#[tokio::test]
async fn form_body_is_urlencoded() {
    let (api, base) = api(reply(200, r#"{"id":"f1"}"#)).await;
    let g = gateway(&format!(
        r#"
        url = "{base}/send"
        form = {{ To = "{{{{to}}}}", From = "{{{{from}}}}", Text = "{{{{body}}}}", Ref = "cid-{{{{correlation_id}}}}" }}
        message_id = "$.id"
        "#
    ));
    let text = "a&b=c +d\n\"e\"";
    assert_eq!(submit(&g, text).await.unwrap().message_id, "f1");
    let seen = api.last();
    assert_eq!(
        seen.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let fields: Vec<(String, String)> = form_urlencoded::parse(&seen.body).into_owned().collect();
    let field = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("To").as_deref(), Some("+15005550100"));
    assert_eq!(field("From").as_deref(), Some("+15005550006"));
    assert_eq!(field("Text").as_deref(), Some(text));
    assert_eq!(
        field("Ref"),
        Some(format!("cid-{CORRELATION_ID}")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn get_with_url_template_sends_no_body() {
    let (api, base) = api(reply(200, r#"{"result":{"id":12345}}"#)).await;
    let g = gateway(&format!(
        r#"
        url = "{base}/sms/{{{{to}}}}?from={{{{from}}}}&text={{{{body}}}}&key=k1"
        method = "GET"
        message_id = "$.result.id"
        "#
    ));
    let text = "hi there & all/+ é";
    assert_eq!(submit(&g, text).await.unwrap().message_id, "12345");
    let seen = api.last();
    assert_eq!(seen.method, Method::GET);
    assert!(seen.body.is_empty());
    assert!(seen.headers.get("content-type").is_none());
    assert_eq!(seen.uri.path(), "/sms/%2B15005550100");
    let query: Vec<(String, String)> =
        form_urlencoded::parse(seen.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        query,
        [
            ("from".to_string(), "+15005550006".to_string()),
            ("text".to_string(), text.to_string()),
            ("key".to_string(), "k1".to_string()),
        ]
    );
    assert_eq!(seen.headers["x-correlation-id"], CORRELATION_ID);
}

#[tokio::test]
async fn message_ids_are_found_by_jsonpath() {
    let (api, base) = api(reply(200, "")).await;
    for (path, body, id) in [
        ("$.id", r#"{"id":"abc"}"#, "abc"),
        (
            "$.data.messages[0].id",
            r#"{"data":{"messages":[{"id":"m-9"},{"id":"m-10"}]}}"#,
            "m-9",
        ),
        ("$.id", r#"{"id":987654321}"#, "987654321"),
        // Accepted without the id where we expected it: recorded as unknown,
        // not retried (a retry could send the message twice).
        ("$.id", r#"{"status":"queued"}"#, "unknown"),
        ("$.id", "OK", "unknown"),
    ] {
        api.answer(reply(200, body));
        let g = gateway(&format!(
            "url = \"{base}/send\"\nbody = '{{\"t\":\"{{{{body}}}}\"}}'\nmessage_id = \"{path}\""
        ));
        assert_eq!(submit(&g, "x").await.unwrap().message_id, id, "{body}");
    }
}

fn rules_gateway(base: &str) -> HttpGateway {
    gateway(&format!(
        r#"
        url = "{base}/send"
        body = '{{"text":"{{{{body}}}}"}}'
        message_id = "$.id"
        permanent = [
            {{ status = 402, reason = "account has no credit" }},
            {{ json = "$.error.code", equals = "NO_CREDIT", reason = "account has no credit" }},
            {{ json = "$.error.code", equals = 21610, reason = "recipient unsubscribed" }},
            {{ json = "$.blocked_reason" }},
        ]
        transient = [
            {{ json = "$.status", equals = "throttled", reason = "throttled by the API" }},
            {{ status = 409 }},
        ]
        "#
    ))
}

async fn rejected(api: &Api, g: &HttpGateway, r: Reply) -> SubmitError {
    api.answer(r);
    submit(g, "x").await.unwrap_err()
}

#[tokio::test]
async fn permanent_rules_give_their_reason_and_code() {
    let (api, base) = api(reply(200, "")).await;
    let g = rules_gateway(&base);

    let e = rejected(&api, &g, reply(402, "payment required")).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.reason, "account has no credit");
    assert_eq!(e.code, None);

    let e = rejected(&api, &g, reply(400, r#"{"error":{"code":"NO_CREDIT"}}"#)).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.reason, "account has no credit");
    assert_eq!(e.code.as_deref(), Some("NO_CREDIT"));
    assert_eq!(e.to_string(), "account has no credit (NO_CREDIT)");

    // Numbers compare numerically, and a rule on the body applies to 2xx answers too.
    let e = rejected(&api, &g, reply(200, r#"{"error":{"code":21610}}"#)).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.reason, "recipient unsubscribed");
    assert_eq!(e.code.as_deref(), Some("21610"));

    // Existence: any non-null value; no reason given, so one is generated.
    let e = rejected(&api, &g, reply(403, r#"{"blocked_reason":"SPAM_FILTER"}"#)).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.code.as_deref(), Some("SPAM_FILTER"));
    assert!(e.reason.contains("HTTP 403"), "{e}");
    assert!(e.reason.contains("$.blocked_reason"), "{e}");
    assert!(e.reason.contains("SPAM_FILTER"), "{e}");

    // Null does not count as present; a string "21610" is not the number 21610.
    api.answer(reply(200, r#"{"id":"ok-1","blocked_reason":null}"#));
    assert_eq!(submit(&g, "x").await.unwrap().message_id, "ok-1");
    let e = rejected(&api, &g, reply(400, r#"{"error":{"code":"21610"}}"#)).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.code, None);
    assert!(e.reason.contains("HTTP 400"), "{e}");
}

#[tokio::test]
async fn transient_rules_come_after_permanent_ones() {
    let (api, base) = api(reply(200, "")).await;
    let g = rules_gateway(&base);
    let e = rejected(&api, &g, reply(200, r#"{"status":"throttled"}"#)).await;
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.reason, "throttled by the API");
    assert_eq!(e.code.as_deref(), Some("throttled"));

    let e = rejected(&api, &g, reply(409, "busy")).await;
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(e.reason.contains("HTTP 409"), "{e}");

    // Both match: the permanent rule wins.
    let e = rejected(
        &api,
        &g,
        reply(
            409,
            r#"{"error":{"code":"NO_CREDIT"},"status":"throttled"}"#,
        ),
    )
    .await;
    assert_eq!(e.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn http_status_defaults() {
    let (api, base) = api(reply(200, "")).await;
    let g = gateway(&format!("url = \"{base}/send\""));

    for status in [500, 503] {
        let e = rejected(&api, &g, reply(status, "<html>down</html>")).await;
        assert_eq!(e.class, ErrorClass::Transient, "{status}");
        assert!(e.reason.contains(&format!("HTTP {status}")), "{e}");
        assert!(e.reason.contains("down"), "{e}");
        assert_eq!(e.retry_after, None);
    }

    let mut limited = reply(429, "slow down");
    limited.headers.push(("retry-after", "7".to_string()));
    let e = rejected(&api, &g, limited).await;
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    let mut busy = reply(503, "");
    busy.headers.push(("retry-after", "2".to_string()));
    assert_eq!(
        rejected(&api, &g, busy).await.retry_after,
        Some(Duration::from_secs(2))
    );

    let e = rejected(&api, &g, reply(400, r#"{"error":"invalid number"}"#)).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("HTTP 400"), "{e}");
    assert!(e.reason.contains("invalid number"), "{e}");

    let e = rejected(&api, &g, reply(401, "")).await;
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.reason.contains("authentication"), "{e}");
}

#[tokio::test]
async fn garbage_and_huge_bodies_never_panic() {
    let (api, base) = api(reply(200, "")).await;
    let g = gateway(&format!(
        "url = \"{base}/send\"\nmessage_id = \"$.id\"\npermanent = [{{ json = \"$.error\" }}]"
    ));
    let huge = format!("{{\"id\":\"{}\"}}", "x".repeat(3 << 20));
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{\"error\":".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[".repeat(5000),
        huge.into_bytes(),
        Vec::new(),
    ];
    for body in bodies {
        for status in [200, 400, 500] {
            api.answer(Reply {
                status,
                headers: Vec::new(),
                body: body.clone(),
            });
            let result = submit(&g, "x").await;
            match status {
                // Too large to read whole: what it said is unknown, so retried.
                200 if body.len() > MAX_RESPONSE_BYTES => {
                    assert_eq!(result.unwrap_err().class, ErrorClass::Transient)
                }
                200 => assert_eq!(result.unwrap().message_id, "unknown"),
                400 => assert_eq!(result.unwrap_err().class, ErrorClass::Permanent),
                _ => assert_eq!(result.unwrap_err().class, ErrorClass::Transient),
            }
        }
    }
}

/// A server that answers every connection with `raw` bytes, then hangs up.
async fn raw_server(raw: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(raw).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test]
async fn truncated_answers_are_classified_by_their_status() {
    let base = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"id\":\"cut").await;
    let g = gateway(&format!("url = \"{base}/send\"\nmessage_id = \"$.id\""));
    // The API said 200 but what it said was cut off: a refusal may hide in
    // a 2xx body, so the one rule for every provider holds: retried.
    let e = submit(&g, "x").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(e.reason.contains("cut off"), "{e}");

    let base = raw_server(b"HTTP/1.1 503 Busy\r\ncontent-length: 500\r\n\r\n<html>").await;
    let g = gateway(&format!("url = \"{base}/send\""));
    assert_eq!(
        submit(&g, "x").await.unwrap_err().class,
        ErrorClass::Transient
    );

    let base = raw_server(b"this is not HTTP at all\r\n\r\n").await;
    let g = gateway(&format!("url = \"{base}/send\""));
    assert_eq!(
        submit(&g, "x").await.unwrap_err().class,
        ErrorClass::Transient
    );
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let g = gateway(&format!("url = \"http://{addr}/send\""));
    let e = submit(&g, "x").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(e.reason.contains("unreachable"), "{e}");

    // Accepts the connection, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let g = gateway(&format!(
        "url = \"http://{addr}/send\"\nrequest_timeout = \"200ms\""
    ));
    let e = submit(&g, "x").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(e.reason.contains("in time"), "{e}");
}

#[tokio::test]
async fn config_mistakes_surface_when_the_gateway_is_built() {
    for (table, expect) in [
        (
            "url = \"https://x.test/send\"\nbody = '{\"to\":\"{{recipient}}\"}'",
            "{{recipient}}",
        ),
        ("url = \"https://x.test/{{ to }}/{{token}}\"", "{{token}}"),
        ("url = \"not a url {{to}}\"", "url"),
        (
            "url = \"https://x.test/send\"\nbody = '{\"to\": {{to}} }'",
            "not valid JSON",
        ),
    ] {
        let config: HttpGatewayConfig = toml::from_str(table).unwrap();
        let e = HttpGateway::new("api", &config).unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains(expect), "{table}: {e}");
    }
}
