//! The mock carrier's Telnyx: Messaging API v2 (`POST /v2/messages`,
//! `GET /v2/messages/{id}`, `GET /v2/balance`, a bearer API key), the
//! `message.sent` / `message.finalized` / `message.received` events it posts
//! (signed with its own Ed25519 key pair, whose public key it prints), and
//! its own copy of Telnyx's error codes and titles.
//!
//! Telnyx's SDKs send JSON and read `{"data": …}`, errors as
//! `{"errors": [{"code", "title", "detail"}]}` with the HTTP status Telnyx
//! gives them. Magic numbers refuse a submit as Telnyx would (see
//! [`check_numbers`]). Every input here comes from the network: nothing
//! panics on it, every refusal is a Telnyx-shaped error.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::signature::KeyPair;
use crate::mock_carrier::delivery::{self, Plan};
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{
    Direction, InboundFormat, Message, ReceivedAt, Shared, Status, check_http_url, correlation_id,
    is_phone_number,
};
use crate::redact::{Secret, mask_number};

pub(crate) const DEFAULT_API_KEY: &str = "KEYmock-telnyx-api-key";
/// The seed of the mock's default key pair: public, like every default
/// credential of the mock.
pub(crate) const DEFAULT_SEED: [u8; 32] = *b"sms-canary-mock-telnyx-signing!!";
/// The default pair's public key, as a TOML string (the reference's example).
pub(crate) const DEFAULT_PUBLIC_KEY_TOML: &str =
    r#""DwfOtQn4P2wYiIZ4xG50Tj04t8zyFxMAi5fNJBMREhs=""#;

const MAX_BODY_BYTES: usize = 1 << 20;
/// Longer than any text Telnyx would split into parts.
const MAX_TEXT_CHARS: usize = 1600;

/// The mock's Telnyx account: the API key submits authenticate with, and the
/// key pair its webhooks are signed with.
#[derive(Debug, Clone)]
pub struct Account {
    pub api_key: Secret,
    pub signing: KeyPair,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            api_key: Secret::new(DEFAULT_API_KEY),
            signing: KeyPair::from_seed(DEFAULT_SEED),
        }
    }
}

impl Account {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.api_key.expose().trim().is_empty() {
            return Err("the Telnyx api key must not be empty".into());
        }
        Ok(())
    }
}

/// The standalone mock's Telnyx account.
#[derive(clap::Args, Debug)]
#[group(id = "telnyx_account")]
pub struct Args {
    /// Telnyx API key clients authenticate with (bearer).
    #[arg(
        long,
        value_name = "KEY",
        env = "SMS_CANARY_MOCK_TELNYX_API_KEY",
        default_value = DEFAULT_API_KEY,
        hide_env_values = true
    )]
    pub telnyx_api_key: String,

    /// The seed of the Ed25519 pair Telnyx webhooks are signed with (32
    /// bytes, base64 or hex), or a file holding it; the public key to
    /// configure is printed at start.
    #[arg(
        long,
        value_name = "SEED|FILE",
        env = "SMS_CANARY_MOCK_TELNYX_SIGNING_KEY",
        hide_env_values = true
    )]
    pub telnyx_signing_key: Option<String>,
}

impl Args {
    /// The account, or the flag at fault and why.
    pub(crate) fn account(&self) -> Result<Account, (&'static str, String)> {
        if self.telnyx_api_key.trim().is_empty() {
            return Err(("--telnyx-api-key", "must not be empty".into()));
        }
        let signing = match &self.telnyx_signing_key {
            None => KeyPair::from_seed(DEFAULT_SEED),
            Some(given) => {
                KeyPair::from_seed(read_seed(given).map_err(|e| ("--telnyx-signing-key", e))?)
            }
        };
        Ok(Account {
            api_key: Secret::new(self.telnyx_api_key.clone()),
            signing,
        })
    }
}

/// A 32-byte seed written as base64 or hex, or the path of a file holding one.
fn read_seed(given: &str) -> Result<[u8; 32], String> {
    let text = match std::fs::read_to_string(given) {
        Ok(text) => text,
        Err(_) if !std::path::Path::new(given).exists() => given.to_string(),
        Err(e) => return Err(format!("cannot read the seed file: {e}")),
    };
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "not hex".to_string())?
    } else {
        BASE64
            .decode(text)
            .map_err(|_| "expected 32 bytes as base64 or 64 hex digits, or a file holding them (the value is not shown)".to_string())?
    };
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the seed must be 32 bytes, not {}", b.len()))
}

/// What `mock-carrier` says at start for Telnyx: the public key to configure.
pub(crate) fn announce(account: &Account) -> String {
    format!(
        "Telnyx webhooks are signed; public_key = \"{}\"",
        account.signing.public_key().to_base64()
    )
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v2/messages", post(create_message))
        .route("/v2/messages/{id}", get(fetch_message))
        .route("/v2/balance", get(balance))
        .with_state(shared)
}

/// A Telnyx API error: `{"errors": [{code, title, detail}]}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    detail: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u32, detail: impl Into<String>) -> Self {
        ApiError {
            status: http_status(code),
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn from_fault(fault: SubmitFault) -> Self {
        match fault {
            SubmitFault::Outage => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..Self::new(10007, "The service is unavailable.")
            },
            SubmitFault::Error { status } => ApiError {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                ..Self::new(10007, "An unexpected error occurred.")
            },
            SubmitFault::RateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..Self::new(10011, "Too many requests.")
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{
                "code": self.code.to_string(),
                "title": title(self.code),
                "detail": self.detail,
                "meta": { "url": format!("https://developers.telnyx.com/docs/overview/errors/{}", self.code) },
            }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Telnyx's titles for its codes.
fn title(code: u32) -> &'static str {
    match code {
        10004 => "Missing required parameter",
        10005 => "Resource not found",
        10007 => "Unexpected error",
        10009 => "Authentication failed",
        10010 => "Authorization failed",
        10011 => "Too many requests",
        10015 => "Bad Request",
        40001 => "Not routable",
        40002 => "Blocked as spam - temporary",
        40003 => "Blocked as spam - permanent",
        40004 => "Rejected by destination",
        40005 => "Message expired during transmission",
        40006 => "Recipient server unavailable",
        40008 => "Undeliverable",
        40009 => "Invalid message body",
        40300 => "Blocked due to STOP message",
        40305 => "Invalid 'from' address",
        40310 => "Invalid 'to' address",
        _ => "Error",
    }
}

/// The HTTP status Telnyx answers a code with.
fn http_status(code: u32) -> StatusCode {
    match code {
        10009 => StatusCode::UNAUTHORIZED,
        10010 => StatusCode::FORBIDDEN,
        10005 => StatusCode::NOT_FOUND,
        10011 => StatusCode::TOO_MANY_REQUESTS,
        10007 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Telnyx's code for a fault's code: Telnyx codes (1xxxx, 4xxxx) as they
/// are, other providers' codes as the nearest Telnyx refusal.
fn telnyx_code(code: u32) -> u32 {
    match code {
        10000..20000 | 40000..50000 => code,
        4 | 20003 => 10009,
        1 | 20429 | 21611 => 10011,
        3 | 21211 | 21614 => 40310,
        15 | 21212 | 21606 => 40305,
        2 | 21602..=21604 => 10004,
        7 | 21610 => 40300,
        8 | 9 | 30002 => 10010,
        29 | 21408 | 21612 => 40001,
        _ => 10007,
    }
}

/// Telnyx's delivery error for a number's `fail` code: Telnyx's own kept,
/// other providers' delivery codes as their nearest Telnyx meaning.
fn fail_code(code: u32) -> u32 {
    match code {
        40000..50000 => code,
        30003 => 40006,
        30004 => 40004,
        30006 => 40001,
        30007 => 40002,
        _ => 40008,
    }
}

/// Refusals by the mock's magic test numbers (the same in every API it
/// speaks, with Telnyx's codes), then by plain validation.
fn check_numbers(to: &str, from: &str) -> Result<(), ApiError> {
    match from {
        "+15005550001" | "+15005550007" => {
            return Err(ApiError::new(
                40305,
                "The 'from' address is not a number or sender on this account.",
            ));
        }
        _ if !is_phone_number(from) && !is_alphanumeric_sender(from) => {
            return Err(ApiError::new(40305, "The 'from' address is invalid."));
        }
        _ => {}
    }
    match to {
        "+15005550001" => Err(ApiError::new(40310, "The 'to' address is invalid.")),
        "+15005550004" => Err(ApiError::new(
            40300,
            "The recipient has opted out (replied STOP) of messages from this sender.",
        )),
        "+15005550009" => Err(ApiError::new(40001, "The 'to' number is not routable.")),
        _ if !(to.starts_with('+') && is_phone_number(to)) => Err(ApiError::new(
            40310,
            "The 'to' address must be a +E.164 phone number.",
        )),
        _ => Ok(()),
    }
}

fn is_alphanumeric_sender(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The bearer key, compared in constant time.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    let key = shared.accounts.telnyx.api_key.expose();
    if bool::from(given.trim().as_bytes().ct_eq(key.as_bytes())) && !given.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            10009,
            "The API key is missing or invalid: send Authorization: Bearer <API key>.",
        ))
    }
}

/// A new message id: UUID-shaped, unique.
pub(crate) fn new_id() -> String {
    let hex = format!("{:032x}", ulid::Ulid::generate().0);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..]
    )
}

fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The recipient's status in Telnyx's words.
pub(crate) fn status_word(direction: Direction, status: Status) -> &'static str {
    match (direction, status) {
        (Direction::Inbound, _) | (_, Status::Received) => "webhook_delivered",
        (_, Status::Queued) => "queued",
        (_, Status::Sent) => "sent",
        (_, Status::Delivered) => "delivered",
        (_, Status::Undelivered) => "delivery_failed",
    }
}

/// A message as Telnyx renders it (`data` of the API, `payload` of events).
fn payload(m: &Message) -> Value {
    let party = |number: &str| json!({ "phone_number": number, "carrier": "sms-canary mock", "line_type": "Wireless" });
    let mut to = party(&m.to);
    if let Some(fields) = to.as_object_mut() {
        fields.insert("status".into(), json!(status_word(m.direction, m.status)));
    }
    let errors: Vec<Value> = m
        .error_code
        .map(fail_code)
        .map(
            |code| json!({ "code": code.to_string(), "title": title(code), "detail": title(code) }),
        )
        .into_iter()
        .collect();
    let direction = match m.direction {
        Direction::Inbound => "inbound",
        Direction::OutboundApi => "outbound",
    };
    let done = matches!(m.status, Status::Delivered | Status::Undelivered);
    json!({
        "record_type": "message",
        "direction": direction,
        "id": m.sid,
        "type": "SMS",
        "messaging_profile_id": null,
        "from": party(&m.from),
        "to": [to],
        "text": m.body,
        "encoding": "GSM-7",
        "parts": 1,
        "tags": [],
        "cost": null,
        "received_at": time(&m.date_created),
        "sent_at": m.date_sent.as_ref().map(time),
        "completed_at": if done { Some(time(&m.date_updated)) } else { None },
        "valid_until": null,
        "webhook_url": m.status_callback,
        "webhook_failover_url": null,
        "errors": errors,
    })
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
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(10015, "The body is too large or could not be read.").into_response();
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return ApiError::new(10015, "The body must be a JSON object.").into_response();
    };
    let text_field = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(to) = text_field("to") else {
        return ApiError::new(10004, "The 'to' parameter is required.").into_response();
    };
    let Some(from) = text_field("from") else {
        return ApiError::new(10004, "The 'from' parameter is required.").into_response();
    };
    let text = fields.get("text").and_then(Value::as_str).unwrap_or("");
    if text.is_empty() {
        return ApiError::new(10004, "The 'text' parameter is required for an SMS.")
            .into_response();
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return ApiError::new(40009, "The text is too long.").into_response();
    }
    if let Err(e) = check_numbers(to, from) {
        return e.into_response();
    }
    let webhook_url = match text_field("webhook_url") {
        Some(url) => {
            if check_http_url(url).is_err() {
                return ApiError::new(10015, "The webhook_url is not a valid URL.").into_response();
            }
            Some(url.to_string())
        }
        None => None,
    };
    if let Some(code) = shared.code_fault() {
        let code = telnyx_code(code);
        return ApiError::new(code, title(code)).into_response();
    }

    let behaviour = shared.number(to);
    let latency = shared.sample_latency(&behaviour);
    let faults = shared.message_faults();
    let now = Utc::now();
    let message = shared.store().insert(Message {
        seq: 0,
        sid: new_id(),
        api: InboundFormat::Telnyx,
        direction: Direction::OutboundApi,
        from: from.to_string(),
        to: to.to_string(),
        body: text.to_string(),
        status: Status::Queued,
        error_code: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        status_callback: webhook_url,
        correlation_id: correlation_id(&parts.headers),
        client_ref: None,
    });
    tracing::debug!(
        id = %message.sid,
        to = %mask_number(to),
        latency_ms = latency.as_secs_f64() * 1e3,
        "mock carrier accepted a Telnyx message"
    );
    let rendered = payload(&message);
    delivery::spawn(
        shared,
        message,
        Plan { behaviour, faults },
        received_at + latency,
    );
    axum::Json(json!({ "data": rendered })).into_response()
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
    match store.get(&id).filter(|m| m.api == InboundFormat::Telnyx) {
        Some(m) => axum::Json(json!({ "data": payload(m) })).into_response(),
        None => ApiError::new(10005, "The requested message was not found.").into_response(),
    }
}

/// `doctor`'s credential check.
async fn balance(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    axum::Json(json!({
        "data": {
            "record_type": "balance",
            "balance": "300.00",
            "credit_limit": "100.00",
            "available_credit": "400.00",
            "pending": "0.00",
            "currency": "USD",
        }
    }))
    .into_response()
}

/// An event as Telnyx posts it, signed: `message.sent`, `message.finalized`
/// or `message.received`.
fn event_request(
    shared: &Shared,
    url: &str,
    event_type: &str,
    m: &Message,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    let body = json!({
        "data": {
            "event_type": event_type,
            "id": new_id(),
            "occurred_at": time(&at),
            "payload": payload(m),
            "record_type": "event",
        },
        "meta": { "attempt": 1, "delivered_to": url },
    });
    let body = serde_json::to_vec(&body).ok()?;
    let timestamp = at.timestamp().to_string();
    let signature = shared.accounts.telnyx.signing.sign(&timestamp, &body);
    let request = shared
        .http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("telnyx-timestamp", timestamp)
        .header("telnyx-signature-ed25519", signature)
        .body(body);
    delivery::build(request, m)
}

/// The event for a message in its current state: `message.sent` once sent,
/// `message.finalized` when delivered or failed; queued tells nothing.
pub(crate) fn receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    let event = match m.status {
        Status::Queued | Status::Received => return None,
        Status::Sent => "message.sent",
        Status::Delivered | Status::Undelivered => "message.finalized",
    };
    event_request(shared, url, event, m, Utc::now())
}

/// The `message.received` event for an owned number.
pub(crate) fn inbound_request(
    shared: &Shared,
    m: &Message,
    url: &str,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    event_request(shared, url, "message.received", m, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_key_is_the_documented_one() {
        let shown = format!(
            "\"{}\"",
            KeyPair::from_seed(DEFAULT_SEED).public_key().to_base64()
        );
        assert_eq!(shown, DEFAULT_PUBLIC_KEY_TOML);
    }

    #[test]
    fn seeds_read_as_base64_hex_or_a_file() {
        let seed = [9u8; 32];
        assert_eq!(read_seed(&BASE64.encode(seed)).unwrap(), seed);
        assert_eq!(read_seed(&"09".repeat(32)).unwrap(), seed);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seed");
        std::fs::write(&file, format!("{}\n", BASE64.encode(seed))).unwrap();
        assert_eq!(read_seed(file.to_str().unwrap()).unwrap(), seed);
        assert!(read_seed("c2hvcnQ=").unwrap_err().contains("32 bytes"));
        let e = read_seed("not a seed at all").unwrap_err();
        assert!(!e.contains("not a seed"), "{e}");
    }

    #[test]
    fn magic_numbers_and_code_translation() {
        let code = |to, from| check_numbers(to, from).err().map(|e| e.code);
        assert_eq!(code("+15005550100", "+15005550006"), None);
        assert_eq!(code("+15005550004", "+15005550006"), Some(40300));
        assert_eq!(code("+15005550001", "+15005550006"), Some(40310));
        assert_eq!(code("+15005550009", "+15005550006"), Some(40001));
        assert_eq!(code("+15005550100", "+15005550007"), Some(40305));
        assert_eq!(code("15005550100", "+15005550006"), Some(40310));
        assert_eq!(telnyx_code(21610), 40300);
        assert_eq!(telnyx_code(9), 10010);
        assert_eq!(telnyx_code(10011), 10011);
        assert_eq!(http_status(10009), StatusCode::UNAUTHORIZED);
        assert_eq!(fail_code(30003), 40006);
        assert_eq!(fail_code(40001), 40001);
        assert_eq!(new_id().len(), 36);
    }
}
