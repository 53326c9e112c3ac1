//! A user's own SMS API end to end: `check` submits through the `http` gateway
//! and finds the message with the `http-poll` receiver, against a stand-in API
//! served here. Nothing needs to reach sms-canary, so no listener is opened.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
struct Api {
    /// Messages "delivered" to the receiving number: (to, text).
    inbound: Vec<(String, String)>,
}

async fn send(
    State(api): State<Arc<Mutex<Api>>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let to = body["to"].as_str().unwrap_or_default().to_string();
    let text = body["text"].as_str().unwrap_or_default().to_string();
    if to == "+15005550199" {
        return (
            StatusCode::PAYMENT_REQUIRED,
            Json(json!({"error": {"code": "NO_CREDIT"}})),
        );
    }
    api.lock().unwrap().inbound.push((to, text));
    (StatusCode::CREATED, Json(json!({"id": "msg-1"})))
}

async fn inbound(
    State(api): State<Arc<Mutex<Api>>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Json<Value> {
    let to = q
        .iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let api = api.lock().unwrap();
    let messages: Vec<Value> = api
        .inbound
        .iter()
        .enumerate()
        .filter(|(_, (t, _))| *t == to)
        .map(|(i, (_, text))| json!({"id": i, "text": text}))
        .collect();
    Json(json!({ "messages": messages }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_through_your_own_api_with_polling() {
    let api = Arc::new(Mutex::new(Api::default()));
    let app = Router::new()
        .route("/v1/messages", post(send))
        .route("/v1/inbound", get(inbound))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());

    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        r#"[canary]
listen = "127.0.0.1:1"   # would fail to bind: proves no listener is opened

[gateways.ours]
kind = "http"
url = "{base}/v1/messages"
headers = {{ Authorization = "Bearer ${{SMS_API_TOKEN}}" }}
body = '{{"to":"{{{{to}}}}","from":"{{{{from}}}}","text":"{{{{body}}}}"}}'
message_id = "$.id"
permanent = [{{ json = "$.error.code", equals = "NO_CREDIT", reason = "account has no credit" }}]

[receivers.ours]
kind = "http-poll"
url = "{base}/v1/inbound?to={{{{to}}}}"
messages = "$.messages[*]"
body = "$.text"
id = "$.id"
interval = "50ms"
"#
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for (name, to) in [("own-ok", "+15005550100"), ("own-broke", "+15005550199")] {
        let probe = format!(
            "name = \"{name}\"\ngateway = \"ours\"\nreceiver = \"ours\"\nfrom = \"+15005550006\"\nto = \"{to}\"\ntimeout = \"5s\"\nthreshold = \"2s\"\n"
        );
        std::fs::write(dir.path().join(format!("probes/{name}.toml")), probe).unwrap();
    }
    let path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args(["check", "--format", "json"])
            .current_dir(path)
            .env("SMS_API_TOKEN", "own-api-token")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{doc}");
    let broke = &doc["runs"][0];
    assert_eq!(broke["outcome"], "rejected");
    assert_eq!(broke["code"], "NO_CREDIT");
    assert_eq!(
        broke["reason"],
        "gateway rejected the message: account has no credit"
    );
    let ok = &doc["runs"][1];
    assert_eq!(ok["outcome"], "ok", "{doc}");
    assert_eq!(ok["message_id"], "msg-1");
}
