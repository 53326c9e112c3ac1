//! The mock carrier's SMS Gateway for Android: the app's API (`POST
//! /message` and `/messages`, `GET /message[s]/{id}`, `GET`/`POST
//! /webhooks`, `DELETE /webhooks/{id}`, Basic auth) at the root, as the
//! phone's local server serves it, and under `/3rdparty/v1`, as the cloud
//! relay does; the events the app posts to the registered webhooks
//! (`sms:sent`, `sms:delivered`, `sms:failed`, and `sms:received` for an
//! owned number), signed with its own signing key; its own copy of the wire
//! format.
//!
//! Like the app, receipts go to the webhooks registered for their event,
//! not to a URL given with the message; a message's `id` is the one the
//! client gave (the app echoes it in receipts). Every input comes from the
//! network: nothing panics on it, every refusal is `{"message": …}` with
//! the HTTP status the app gives.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::mock_carrier::delivery::{self, Plan};
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{
    Direction, InboundFormat, Message, ReceivedAt, Shared, Status, check_http_url, correlation_id,
    is_phone_number, lock,
};
use crate::redact::{Secret, mask_number};

pub(crate) const DEFAULT_USERNAME: &str = "sms";
pub(crate) const DEFAULT_PASSWORD: &str = "mock-android-password";
pub(crate) const DEFAULT_SIGNING_KEY: &str = "mock-android-signing-key";
/// The mock phone's device id, in every event it posts.
pub const DEVICE_ID: &str = "mockandroiddevice01";
/// The mock phone's own number: the sender of every message it sends.
pub const PHONE_NUMBER: &str = "+15005550006";

const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_TEXT_CHARS: usize = 1600;
/// Longest message id the app takes.
const MAX_ID_CHARS: usize = 36;

/// The mock phone's API account and the key its webhooks are signed with.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub password: Secret,
    pub signing_key: Secret,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            username: DEFAULT_USERNAME.to_string(),
            password: Secret::new(DEFAULT_PASSWORD),
            signing_key: Secret::new(DEFAULT_SIGNING_KEY),
        }
    }
}

impl Account {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.username.trim().is_empty() || self.password.expose().is_empty() {
            return Err("the Android username and password must not be empty".into());
        }
        if self.signing_key.expose().trim().is_empty() {
            return Err("the Android signing key must not be empty".into());
        }
        Ok(())
    }
}

/// The standalone mock's SMS Gateway for Android account.
#[derive(clap::Args, Debug)]
#[group(id = "android_account")]
pub struct Args {
    /// User name of the emulated app's API (Basic auth).
    #[arg(
        long,
        value_name = "NAME",
        env = "SMS_CANARY_MOCK_ANDROID_USERNAME",
        default_value = DEFAULT_USERNAME
    )]
    pub android_username: String,

    /// Password of the emulated app's API (Basic auth).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SMS_CANARY_MOCK_ANDROID_PASSWORD",
        default_value = DEFAULT_PASSWORD,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub android_password: String,

    /// The key the emulated app signs its webhooks with.
    #[arg(
        long,
        value_name = "KEY",
        env = "SMS_CANARY_MOCK_ANDROID_SIGNING_KEY",
        default_value = DEFAULT_SIGNING_KEY,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub android_signing_key: String,
}

impl Args {
    /// The account, or the flag at fault and why.
    pub(crate) fn account(&self) -> Result<Account, (&'static str, String)> {
        if self.android_username.trim().is_empty() {
            return Err(("--android-username", "must not be empty".into()));
        }
        if self.android_password.is_empty() {
            return Err(("--android-password", "must not be empty".into()));
        }
        if self.android_signing_key.trim().is_empty() {
            return Err(("--android-signing-key", "must not be empty".into()));
        }
        Ok(Account {
            username: self.android_username.clone(),
            password: Secret::new(self.android_password.clone()),
            signing_key: Secret::new(self.android_signing_key.clone()),
        })
    }
}

/// A webhook registered with the mock phone.
#[derive(Debug, Clone)]
struct Registered {
    id: String,
    url: String,
    event: String,
}

/// The webhooks registered with the mock phone (forgotten on reset).
#[derive(Debug, Default)]
pub struct Webhooks(Mutex<Vec<Registered>>);

impl Webhooks {
    pub(crate) fn reset(&self) {
        lock(&self.0).clear();
    }

    fn for_event(&self, event: &str) -> Vec<Registered> {
        lock(&self.0)
            .iter()
            .filter(|w| w.event == event)
            .cloned()
            .collect()
    }
}

/// The events the app can be asked for.
const EVENTS: &[&str] = &[
    "sms:received",
    "sms:data-received",
    "sms:sent",
    "sms:delivered",
    "sms:failed",
    "system:ping",
    "mms:received",
];

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = || {
        Router::new()
            .route("/message", post(create_message))
            .route("/messages", post(create_message))
            .route("/message/{id}", get(fetch_message))
            .route("/messages/{id}", get(fetch_message))
            .route("/webhooks", get(list_webhooks).post(register_webhook))
            .route("/webhooks/{id}", delete(delete_webhook))
    };
    api().nest("/3rdparty/v1", api()).with_state(shared)
}

/// A refusal as the app gives it: an HTTP status and `{"message": …}`.
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn from_fault(fault: SubmitFault) -> Self {
        match fault {
            SubmitFault::Outage => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "service unavailable")
            }
            SubmitFault::Error { status } => Self::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "internal server error",
            ),
            SubmitFault::RateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too many requests")
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "message": self.message }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Basic auth with the account's user name and password, in constant time.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let account = &shared.accounts.android;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| BASE64.decode(v.trim()).ok())
        .unwrap_or_default();
    let expected = format!("{}:{}", account.username, account.password.expose());
    if !given.is_empty() && bool::from(given.as_slice().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"))
    }
}

/// A new id as the app makes them (21 characters, URL-safe).
pub(crate) fn new_id() -> String {
    let raw = ulid::Ulid::generate().0.to_be_bytes();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    text.chars().take(21).collect()
}

fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time as the phone writes it: its local time, with its offset (the
/// mock phone sits at UTC+07:00, so a reader taking it for UTC is caught).
fn device_time(at: &DateTime<Utc>) -> String {
    let zone = chrono::FixedOffset::east_opt(7 * 3600)
        .unwrap_or(chrono::FixedOffset::east_opt(0).expect("zero offset"));
    at.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A message's state in the app's words.
pub(crate) fn status_word(direction: Direction, status: Status) -> &'static str {
    match (direction, status) {
        (Direction::Inbound, _) | (_, Status::Received) => "Processed",
        (_, Status::Queued) => "Pending",
        (_, Status::Sent) => "Sent",
        (_, Status::Delivered) => "Delivered",
        (_, Status::Undelivered) => "Failed",
    }
}

/// The reason of `sms:failed` for a number's `fail` code: Android's result
/// names, the nearest for other providers' codes.
fn failure_reason(code: u32) -> &'static str {
    match code {
        30003 => "RESULT_ERROR_NO_SERVICE",
        30005 | 30006 => "RESULT_NETWORK_REJECT",
        30008 => "RESULT_ERROR_GENERIC_FAILURE",
        _ => "RESULT_ERROR_GENERIC_FAILURE",
    }
}

/// A message's state as the API renders it.
fn state(m: &Message) -> Value {
    let word = status_word(m.direction, m.status);
    let mut recipient = json!({ "phoneNumber": m.to, "state": word });
    if let (Some(code), Some(fields)) = (m.error_code, recipient.as_object_mut()) {
        fields.insert("error".into(), json!(failure_reason(code)));
    }
    json!({
        "id": m.sid,
        "deviceId": DEVICE_ID,
        "state": word,
        "isHashed": false,
        "isEncrypted": false,
        "recipients": [recipient],
        "states": { word: time(&m.date_updated) },
    })
}

/// Refusals by the mock's magic numbers (as in every API it speaks), then
/// by plain validation: the app takes any number the phone can dial.
fn check_number(to: &str) -> Result<(), ApiError> {
    match to {
        "+15005550001" => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid phone number: +15005550001",
        )),
        _ if !is_phone_number(to) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid phone number",
        )),
        _ => Ok(()),
    }
}

async fn create_message(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let received_at = ReceivedAt::of(&request);
    if let Some(fault) = shared.request_fault() {
        return ApiError::from_fault(fault).into_response();
    }
    let (parts, body) = request.into_parts();
    if let Err(e) = authorize(&shared, &parts.headers) {
        return e.into_response();
    }
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, message).into_response();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return bad("the body is too large or could not be read");
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be a JSON object");
    };
    // `textMessage.text`, or the older plain `message`.
    let text = fields
        .get("textMessage")
        .and_then(|t| t.get("text"))
        .or_else(|| fields.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if text.is_empty() {
        return bad("textMessage.text (or message) is required");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return bad("the message is too long");
    }
    let numbers: Vec<&str> = match fields.get("phoneNumbers").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(Value::as_str).collect(),
        None => Vec::new(),
    };
    let [to] = numbers.as_slice() else {
        return bad("phoneNumbers must hold one phone number (the mock sends to one)");
    };
    if let Err(e) = check_number(to) {
        return e.into_response();
    }
    let id = match fields.get("id") {
        None | Some(Value::Null) => new_id(),
        Some(Value::String(id)) if !id.trim().is_empty() && id.chars().count() <= MAX_ID_CHARS => {
            id.clone()
        }
        Some(_) => return bad("id must be a string of at most 36 characters"),
    };
    // The same id again is the same message (a client retrying): its state.
    if let Some(existing) = shared
        .store()
        .get(&id)
        .filter(|m| m.api == InboundFormat::Android)
    {
        return (StatusCode::ACCEPTED, axum::Json(state(existing))).into_response();
    }
    if let Some(code) = shared.code_fault() {
        let status = match code {
            20003 | 4 => StatusCode::UNAUTHORIZED,
            20429 | 1 => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        };
        return ApiError::new(status, format!("refused (code {code})")).into_response();
    }

    let behaviour = shared.number(to);
    let latency = shared.sample_latency(&behaviour);
    let faults = shared.message_faults();
    let now = Utc::now();
    let message = shared.store().insert(Message {
        seq: 0,
        sid: id,
        api: InboundFormat::Android,
        direction: Direction::OutboundApi,
        from: PHONE_NUMBER.to_string(),
        to: to.to_string(),
        body: text.to_string(),
        status: Status::Queued,
        error_code: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        status_callback: None,
        correlation_id: correlation_id(&parts.headers),
        client_ref: None,
    });
    tracing::debug!(
        id = %message.sid,
        to = %mask_number(to),
        latency_ms = latency.as_secs_f64() * 1e3,
        "mock carrier accepted an Android message"
    );
    let rendered = state(&message);
    delivery::spawn(
        shared,
        message,
        Plan { behaviour, faults },
        received_at + latency,
    );
    (StatusCode::ACCEPTED, axum::Json(rendered)).into_response()
}

async fn fetch_message(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let store = shared.store();
    match store.get(&id).filter(|m| m.api == InboundFormat::Android) {
        Some(m) => axum::Json(state(m)).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "message not found").into_response(),
    }
}

fn render_webhook(w: &Registered) -> Value {
    json!({ "id": w.id, "url": w.url, "event": w.event, "deviceId": DEVICE_ID })
}

async fn list_webhooks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    let hooks: Vec<Value> = lock(&shared.state.android.0)
        .iter()
        .map(render_webhook)
        .collect();
    axum::Json(hooks).into_response()
}

async fn register_webhook(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = authorize(&shared, &parts.headers) {
        return e.into_response();
    }
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, message).into_response();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return bad("the body is too large or could not be read");
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be a JSON object");
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::trim);
    let Some(url) = text("url").filter(|u| check_http_url(u).is_ok()) else {
        return bad("url must be an http(s) URL");
    };
    let Some(event) = text("event").filter(|e| EVENTS.contains(e)) else {
        return bad("event must be one the app sends (sms:received, sms:sent, …)");
    };
    let id = text("id")
        .filter(|id| !id.is_empty())
        .map_or_else(new_id, str::to_string);
    let registered = Registered {
        id,
        url: url.to_string(),
        event: event.to_string(),
    };
    {
        // An existing id is replaced, as the app does.
        let mut hooks = lock(&shared.state.android.0);
        hooks.retain(|w| w.id != registered.id);
        hooks.push(registered.clone());
    }
    (StatusCode::CREATED, axum::Json(render_webhook(&registered))).into_response()
}

async fn delete_webhook(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    lock(&shared.state.android.0).retain(|w| w.id != id);
    StatusCode::NO_CONTENT.into_response()
}

/// An event as the app posts it, signed: `X-Signature` over the body then
/// `X-Timestamp`.
fn event_request(
    shared: &Shared,
    url: &str,
    webhook_id: &str,
    event: &str,
    payload: Value,
    at: DateTime<Utc>,
    m: &Message,
) -> Option<reqwest::Request> {
    let body = json!({
        "deviceId": DEVICE_ID,
        "event": event,
        "id": new_id(),
        "webhookId": webhook_id,
        "payload": payload,
    });
    let body = serde_json::to_vec(&body).ok()?;
    let timestamp = at.timestamp().to_string();
    let key = shared.accounts.android.signing_key.expose();
    let signature = super::signature::sign(key, &body, &timestamp);
    let request = shared
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Timestamp", timestamp)
        .header("X-Signature", signature)
        .body(body);
    delivery::build(request, m)
}

/// The receipt event for a message in its current state, to the webhook
/// registered for it: `sms:sent`, `sms:delivered` or `sms:failed`.
pub(crate) fn receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let now = Utc::now();
    let (event, at_field) = match m.status {
        Status::Queued | Status::Received => return None,
        Status::Sent => ("sms:sent", "sentAt"),
        Status::Delivered => ("sms:delivered", "deliveredAt"),
        Status::Undelivered => ("sms:failed", "failedAt"),
    };
    let hook = shared.state.android.for_event(event).into_iter().next()?;
    let mut payload = json!({
        "messageId": m.sid,
        "phoneNumber": m.to,
        "simNumber": 1,
        at_field: device_time(&now),
    });
    if let (Some(code), Some(fields)) = (m.error_code, payload.as_object_mut()) {
        fields.insert("reason".into(), json!(failure_reason(code)));
    }
    event_request(shared, &hook.url, &hook.id, event, payload, now, m)
}

/// The `sms:received` event for an owned number, posted to `url`.
pub(crate) fn inbound_request(
    shared: &Shared,
    m: &Message,
    url: &str,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    let webhook_id = shared
        .state
        .android
        .for_event("sms:received")
        .into_iter()
        .find(|w| w.url == url)
        .map_or_else(|| "mock-inbound-webhook".to_string(), |w| w.id);
    // The app derives this id from the content: not unique, as in the app.
    let digest = crate::signing::body_signature(m.body.as_bytes(), "messageId");
    let payload = json!({
        "messageId": &digest["sha256=".len().."sha256=".len() + 16],
        "message": m.body,
        "phoneNumber": m.from,
        "simNumber": 1,
        "receivedAt": device_time(&at),
    });
    event_request(shared, url, &webhook_id, "sms:received", payload, at, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_times_and_words_are_the_apps() {
        let id = new_id();
        assert_eq!(id.chars().count(), 21);
        assert_ne!(new_id(), id);
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(device_time(&at), "2026-11-28T17:00:00.000+07:00");
        assert_eq!(
            status_word(Direction::OutboundApi, Status::Undelivered),
            "Failed"
        );
        assert_eq!(failure_reason(30003), "RESULT_ERROR_NO_SERVICE");
        assert!(check_number("+15005550001").is_err());
        assert!(check_number("hello").is_err());
        assert!(check_number("+15005550100").is_ok());
    }
}
