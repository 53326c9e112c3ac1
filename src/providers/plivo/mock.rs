//! The mock carrier's Plivo: the Message API (`POST
//! /v1/Account/{auth_id}/Message/`, `GET …/Message/{uuid}/`, the account
//! `GET /v1/Account/{auth_id}/`; Basic auth), the status callbacks and
//! inbound messages it posts as forms, signed with both V2 and V3 as Plivo
//! signs them, and its own copy of Plivo's answers and error codes.
//!
//! Plivo's SDKs send JSON and read `{"api_id", "message", "message_uuid":
//! […]}`; refusals are an HTTP status with `{"api_id", "error"}`. The magic
//! number `+15005550001` is an invalid destination (refused at submit), and
//! `+15005550004` has replied STOP (accepted, then failed with code 200, as
//! Plivo reports it). Every input here comes from the network: nothing
//! panics on it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::signature;
use crate::mock_carrier::delivery::{self, Plan};
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{
    Direction, InboundFormat, Message, NumberConfig, ReceivedAt, Shared, Status, check_http_url,
    correlation_id, is_phone_number,
};
use crate::redact::{Secret, mask_number};

pub(crate) const DEFAULT_AUTH_ID: &str = "MAMOCKPLIVOACCOUNT00";
pub(crate) const DEFAULT_AUTH_TOKEN: &str = "mock-plivo-auth-token";

const MAX_BODY_BYTES: usize = 1 << 20;
/// Plivo's limit on an SMS text, in characters.
const MAX_TEXT_CHARS: usize = 1600;
/// What one message part costs, as Plivo writes rates.
const RATE: &str = "0.00500";

/// The mock's Plivo account: the Basic credentials, and the token its
/// callbacks are signed with.
#[derive(Debug, Clone)]
pub struct Account {
    pub auth_id: String,
    pub auth_token: Secret,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            auth_id: DEFAULT_AUTH_ID.to_string(),
            auth_token: Secret::new(DEFAULT_AUTH_TOKEN),
        }
    }
}

impl Account {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.auth_id.is_empty() || !self.auth_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("the Plivo auth id must be letters and digits".into());
        }
        if self.auth_token.is_empty() {
            return Err("the Plivo auth token must not be empty".into());
        }
        Ok(())
    }
}

/// The standalone mock's Plivo account.
#[derive(clap::Args, Debug)]
#[group(id = "plivo_account")]
pub struct Args {
    /// Plivo Auth ID clients authenticate with (Basic user, and in every path).
    #[arg(long, value_name = "ID", default_value = DEFAULT_AUTH_ID)]
    pub plivo_auth_id: String,

    /// Plivo Auth Token clients authenticate with; also signs the callbacks.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SMS_CANARY_MOCK_PLIVO_AUTH_TOKEN",
        default_value = DEFAULT_AUTH_TOKEN,
        hide_env_values = true
    )]
    pub plivo_auth_token: String,
}

impl Args {
    /// The account, or the flag at fault and why.
    pub(crate) fn account(&self) -> Result<Account, (&'static str, String)> {
        if self.plivo_auth_id.is_empty()
            || !self
                .plivo_auth_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(("--plivo-auth-id", "expected letters and digits".into()));
        }
        if self.plivo_auth_token.is_empty() {
            return Err(("--plivo-auth-token", "must not be empty".into()));
        }
        Ok(Account {
            auth_id: self.plivo_auth_id.clone(),
            auth_token: Secret::new(self.plivo_auth_token.clone()),
        })
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/Account/{auth_id}/", get(account))
        .route("/v1/Account/{auth_id}/Message/", post(create_message))
        .route("/v1/Account/{auth_id}/Message/{uuid}/", get(fetch_message))
        .with_state(shared)
}

/// A Plivo refusal: an HTTP status and `{"api_id", "error"}`.
struct ApiError {
    status: StatusCode,
    error: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            retry_after: None,
        }
    }

    fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
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

    /// A provider error-code fault as Plivo's nearest refusal.
    fn from_code(code: u32) -> Self {
        match code {
            4 | 20003 => Self::new(StatusCode::UNAUTHORIZED, "authentication failed"),
            1 | 20429 | 21611 => Self::new(StatusCode::TOO_MANY_REQUESTS, "too many requests"),
            8 | 9 | 30002 | 900 => Self::new(StatusCode::PAYMENT_REQUIRED, "insufficient credit"),
            3 | 21211 | 21614 | 50 => Self::bad_request("invalid dst number"),
            15 | 21212 | 21606 | 40 => Self::bad_request("invalid src number"),
            7 | 21610 | 200 => {
                Self::bad_request("dst has opted out of messages from src (replied STOP)")
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "api_id": new_uuid(), "error": self.error });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A UUID-shaped id, as Plivo's message and API ids are.
pub(crate) fn new_uuid() -> String {
    let hex = format!("{:032x}", ulid::Ulid::generate().0);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Basic auth with the account's Auth ID and Token, and that ID in the path.
fn authorize(shared: &Shared, headers: &HeaderMap, path_id: &str) -> Result<(), ApiError> {
    let account = &shared.accounts.plivo;
    let refused = || ApiError::new(StatusCode::UNAUTHORIZED, "authentication failed");
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .ok_or_else(refused)?;
    let decoded = BASE64.decode(encoded.trim()).map_err(|_| refused())?;
    let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
    let (id, token) = decoded.split_once(':').ok_or_else(refused)?;
    let ok = id.as_bytes().ct_eq(account.auth_id.as_bytes())
        & token
            .as_bytes()
            .ct_eq(account.auth_token.expose().as_bytes());
    if !bool::from(ok) {
        return Err(refused());
    }
    if path_id != account.auth_id {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not found"));
    }
    Ok(())
}

/// A number as Plivo writes it: digits, no `+`.
fn digits(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

/// A number as stored: E.164 with `+`; alphanumeric senders as they are.
fn normalize(number: &str) -> String {
    if is_phone_number(number) {
        format!("+{}", digits(number))
    } else {
        number.to_string()
    }
}

/// The behaviour of the mock's magic numbers, unless configured otherwise.
fn magic(to: &str, mut behaviour: NumberConfig) -> NumberConfig {
    if to == "+15005550004" && behaviour.fail.is_none() {
        behaviour.fail = Some(200);
    }
    behaviour
}

/// Plivo's delivery `ErrorCode` for a number's `fail` code: Plivo's own
/// (multiples of ten up to 1000) kept, other providers' as their nearest.
fn fail_code(code: u32) -> u32 {
    match code {
        10..=1000 if code.is_multiple_of(10) => code,
        30003 => 80,
        30004 => 100,
        30005 => 50,
        30006 => 90,
        30007 => 30,
        21610 => 200,
        _ => 1000,
    }
}

/// The state in Plivo's words, for callbacks and the API.
pub(crate) fn status_word(
    direction: Direction,
    status: Status,
    error: Option<u32>,
) -> &'static str {
    match (direction, status) {
        (Direction::Inbound, _) | (_, Status::Received) => "received",
        (_, Status::Queued) => "queued",
        (_, Status::Sent) => "sent",
        (_, Status::Delivered) => "delivered",
        // Plivo says `failed` when it could not send, `undelivered` when the
        // carrier could not deliver.
        (_, Status::Undelivered) if matches!(error.map(fail_code), Some(200 | 300 | 900 | 910)) => {
            "failed"
        }
        (_, Status::Undelivered) => "undelivered",
    }
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(auth_id): Path<String>,
    request: Request,
) -> Response {
    let received_at = ReceivedAt::of(&request);
    if let Some(fault) = shared.request_fault() {
        return ApiError::from_fault(fault).into_response();
    }
    let (parts, body) = request.into_parts();
    if let Err(e) = authorize(&shared, &parts.headers, &auth_id) {
        return e.into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::bad_request("the body is too large or could not be read").into_response();
    };
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let fields: Vec<(String, String)> = if is_json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
            return ApiError::bad_request("the body is not a JSON object").into_response();
        };
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect()
    } else {
        form_urlencoded::parse(&body).into_owned().collect()
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let Some(src) = get("src") else {
        return ApiError::bad_request("src parameter not present").into_response();
    };
    let Some(dst) = get("dst") else {
        return ApiError::bad_request("dst parameter not present").into_response();
    };
    let text = fields
        .iter()
        .find(|(k, _)| k == "text")
        .map_or("", |(_, v)| v.as_str());
    if text.is_empty() {
        return ApiError::bad_request("text parameter not present").into_response();
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return ApiError::bad_request("text exceeds the maximum length").into_response();
    }
    if dst.contains('<') {
        return ApiError::bad_request("the mock takes one dst per message").into_response();
    }
    let is_sender = |s: &str| {
        is_phone_number(s)
            || ((1..=11).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric())
                && s.bytes().any(|b| b.is_ascii_alphabetic()))
    };
    if !is_sender(src) {
        return ApiError::bad_request("invalid src number").into_response();
    }
    let to = normalize(dst);
    if !is_phone_number(dst) || to == "+15005550001" {
        return ApiError::bad_request("invalid dst number").into_response();
    }
    let callback = match get("url") {
        Some(url) => {
            if check_http_url(url).is_err() {
                return ApiError::bad_request("url is not a valid URL").into_response();
            }
            Some(url.to_string())
        }
        None => None,
    };
    if get("method").is_some_and(|m| !m.eq_ignore_ascii_case("POST")) {
        return ApiError::bad_request("the mock posts callbacks: method must be POST")
            .into_response();
    }
    if let Some(code) = shared.code_fault() {
        return ApiError::from_code(code).into_response();
    }

    let behaviour = magic(&to, shared.number(&to));
    let latency = shared.sample_latency(&behaviour);
    let faults = shared.message_faults();
    let now = Utc::now();
    let message = shared.store().insert(Message {
        seq: 0,
        sid: new_uuid(),
        api: InboundFormat::Plivo,
        direction: Direction::OutboundApi,
        from: normalize(src),
        to,
        body: text.to_string(),
        status: Status::Queued,
        error_code: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        status_callback: callback,
        correlation_id: correlation_id(&parts.headers),
        client_ref: None,
    });
    tracing::debug!(
        id = %message.sid,
        to = %mask_number(&message.to),
        latency_ms = latency.as_secs_f64() * 1e3,
        "mock carrier accepted a Plivo message"
    );
    let id = message.sid.clone();
    delivery::spawn(
        shared,
        message,
        Plan { behaviour, faults },
        received_at + latency,
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "api_id": new_uuid(),
            "message": "message(s) queued",
            "message_uuid": [id],
        })),
    )
        .into_response()
}

fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
}

/// A message as Plivo's API renders it.
fn resource(m: &Message, auth_id: &str) -> Value {
    let direction = match m.direction {
        Direction::Inbound => "inbound",
        Direction::OutboundApi => "outbound",
    };
    json!({
        "api_id": new_uuid(),
        "message_uuid": m.sid,
        "from_number": digits(&m.from),
        "to_number": digits(&m.to),
        "message_direction": direction,
        "message_state": status_word(m.direction, m.status, m.error_code),
        "message_time": time(&m.date_created),
        "message_type": "sms",
        "error_code": m.error_code.map(|c| fail_code(c).to_string()),
        "total_amount": RATE,
        "total_rate": RATE,
        "units": 1,
        "resource_uri": format!("/v1/Account/{auth_id}/Message/{}/", m.sid),
    })
}

async fn fetch_message(
    State(shared): State<Arc<Shared>>,
    Path((auth_id, uuid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&shared, &headers, &auth_id) {
        return e.into_response();
    }
    let store = shared.store();
    match store.get(&uuid).filter(|m| m.api == InboundFormat::Plivo) {
        Some(m) => axum::Json(resource(m, &auth_id)).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The account, which `doctor` fetches to check the credentials.
async fn account(
    State(shared): State<Arc<Shared>>,
    Path(auth_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&shared, &headers, &auth_id) {
        return e.into_response();
    }
    axum::Json(json!({
        "api_id": new_uuid(),
        "account_type": "standard",
        "auth_id": auth_id,
        "auto_recharge": false,
        "billing_mode": "prepaid",
        "cash_credits": "25.00000",
        "name": "sms-canary mock account",
        "resource_uri": format!("/v1/Account/{auth_id}/"),
        "timezone": "UTC",
    }))
    .into_response()
}

/// A form POST signed as Plivo signs its callbacks: V2 and V3, each with a
/// fresh nonce.
fn signed_request(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
) -> Option<reqwest::Request> {
    let parsed = url::Url::parse(url).ok()?;
    let params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let token = shared.accounts.plivo.auth_token.expose();
    let nonce = format!("{:020}", ulid::Ulid::generate().0 % 10u128.pow(20));
    let v3 = signature::sign_v3(token, false, &parsed, &params, &nonce);
    let v2 = signature::sign_v2(token, &parsed, &nonce);
    let request = shared
        .http
        .post(url)
        .header(header::USER_AGENT, "PlivoHTTP")
        .header("X-Plivo-Signature-V2", v2)
        .header("X-Plivo-Signature-V2-Nonce", &nonce)
        .header("X-Plivo-Signature-V3", v3)
        .header("X-Plivo-Signature-V3-Nonce", &nonce)
        .form(&params);
    delivery::build(request, m)
}

/// The status callback for a message in its current state: `sent`, then
/// `delivered`, or `undelivered`/`failed` with an `ErrorCode`.
pub(crate) fn receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    if matches!(m.status, Status::Queued | Status::Received) {
        return None;
    }
    let code = match m.status {
        Status::Undelivered => fail_code(m.error_code.unwrap_or(1000)).to_string(),
        _ => String::new(),
    };
    let params = vec![
        ("ErrorCode", code),
        ("From", digits(&m.from).to_string()),
        ("MCC", "310".to_string()),
        ("MNC", "260".to_string()),
        ("MessageUUID", m.sid.clone()),
        ("ParentMessageUUID", m.sid.clone()),
        ("PartInfo", "1 of 1".to_string()),
        ("Sequence", "1".to_string()),
        (
            "Status",
            status_word(m.direction, m.status, m.error_code).to_string(),
        ),
        ("To", digits(&m.to).to_string()),
        ("TotalAmount", RATE.to_string()),
        ("TotalRate", RATE.to_string()),
        ("Units", "1".to_string()),
    ];
    signed_request(shared, url, params, m)
}

/// The inbound-message callback for an owned number.
pub(crate) fn inbound_request(shared: &Shared, m: &Message, url: &str) -> Option<reqwest::Request> {
    let params = vec![
        ("From", digits(&m.from).to_string()),
        ("MessageIntent", String::new()),
        ("MessageUUID", m.sid.clone()),
        ("Text", m.body.clone()),
        ("To", digits(&m.to).to_string()),
        ("TotalAmount", "0.00000".to_string()),
        ("TotalRate", "0.00000".to_string()),
        ("Type", "sms".to_string()),
        ("Units", "1".to_string()),
    ];
    signed_request(shared, url, params, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words() {
        assert_eq!(fail_code(30003), 80);
        assert_eq!(fail_code(200), 200);
        assert_eq!(fail_code(12345), 1000);
        assert_eq!(
            status_word(Direction::OutboundApi, Status::Undelivered, Some(200)),
            "failed"
        );
        assert_eq!(
            status_word(Direction::OutboundApi, Status::Undelivered, Some(30003)),
            "undelivered"
        );
        assert_eq!(
            magic("+15005550004", NumberConfig::default()).fail,
            Some(200)
        );
        assert_eq!(normalize("15005550100"), "+15005550100");
        assert_eq!(new_uuid().len(), 36);
        assert!(Account::default().validate().is_ok());
    }
}
