//! The mock carrier's Vonage: the SMS API routes (`POST /sms/json`, the
//! account balance), the delivery receipts and inbound webhooks it sends
//! (signed with `sig` when the account has a signature secret), and its own
//! copy of Vonage's status codes and texts.
//!
//! Vonage answers a submit with HTTP 200 whatever happened and puts the
//! outcome in `messages[0].status` ("0" accepted, else an error status with
//! `error-text`), so that is what this does too; only injected outages and
//! error bursts change the HTTP status, as a failing front end would. Numbers
//! go over the wire as digits without `+` and are stored as E.164 with it,
//! so the per-number behaviours are shared with the other APIs.
//!
//! Every input here comes from the network: nothing panics on it, every
//! refusal is a Vonage-shaped answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use chrono::DateTime;

use super::signature::{self, SignatureMethod};
use crate::mock_carrier::delivery::{self, Plan};
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{
    Direction, InboundFormat, Message, ReceivedAt, Shared, Status, check_http_url, is_phone_number,
    lock,
};
use crate::redact::{Secret, mask_number};

pub(crate) const DEFAULT_API_KEY: &str = "mockkey";
pub(crate) const DEFAULT_API_SECRET: &str = "mock-api-secret";

/// The mock's Vonage account: `api_key`/`api_secret` authenticate submits,
/// and the optional signature secret signs receipts and inbound webhooks
/// (`sig`).
#[derive(Debug, Clone)]
pub struct Account {
    pub api_key: String,
    pub api_secret: Secret,
    /// Unsigned callbacks when `None`, as on a Vonage account without one.
    pub signature_secret: Option<Secret>,
    pub signature_method: SignatureMethod,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            api_key: DEFAULT_API_KEY.to_string(),
            api_secret: Secret::new(DEFAULT_API_SECRET),
            signature_secret: None,
            signature_method: SignatureMethod::Md5hash,
        }
    }
}

impl Account {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.api_key.is_empty() || self.api_secret.is_empty() {
            return Err("the Vonage api_key and api_secret must not be empty".into());
        }
        if self.signature_secret.as_ref().is_some_and(Secret::is_empty) {
            return Err(
                "the Vonage signature secret is empty (leave it out for unsigned callbacks)".into(),
            );
        }
        Ok(())
    }
}

/// What the mock's Vonage keeps besides messages: the account's credit, in
/// ten-thousandths of a euro.
#[derive(Debug)]
pub struct Credit {
    balance: std::sync::Mutex<i64>,
}

impl Default for Credit {
    fn default() -> Self {
        Credit {
            balance: std::sync::Mutex::new(INITIAL_BALANCE),
        }
    }
}

impl Credit {
    pub(crate) fn reset(&self) {
        *lock(&self.balance) = INITIAL_BALANCE;
    }
}

/// The standalone mock's Vonage account.
#[derive(clap::Args, Debug)]
#[group(id = "vonage_account")]
pub struct Args {
    /// Vonage API key clients authenticate with.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_API_KEY)]
    pub vonage_api_key: String,

    /// Vonage API secret clients authenticate with.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SMS_CANARY_MOCK_VONAGE_SECRET",
        default_value = DEFAULT_API_SECRET,
        hide_env_values = true
    )]
    pub vonage_api_secret: String,

    /// Signs Vonage receipts and inbound webhooks (`sig`) when given, and
    /// checks the `sig` of signed requests.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SMS_CANARY_MOCK_VONAGE_SIGNATURE_SECRET",
        hide_env_values = true
    )]
    pub vonage_signature_secret: Option<String>,

    /// How the Vonage account signs: md5hash, md5 (HMAC), sha1, sha256, sha512.
    #[arg(long, value_name = "METHOD", default_value = "md5hash")]
    pub vonage_signature_method: String,
}

impl Args {
    /// The account, or the flag at fault and why.
    pub(crate) fn account(&self) -> Result<Account, (&'static str, String)> {
        if self.vonage_api_key.is_empty() {
            return Err(("--vonage-api-key", "must not be empty".into()));
        }
        if self.vonage_api_secret.is_empty() {
            return Err(("--vonage-api-secret", "must not be empty".into()));
        }
        if self
            .vonage_signature_secret
            .as_ref()
            .is_some_and(String::is_empty)
        {
            return Err(("--vonage-signature-secret", "must not be empty".into()));
        }
        let signature_method = self
            .vonage_signature_method
            .parse()
            .map_err(|e| ("--vonage-signature-method", e))?;
        Ok(Account {
            api_key: self.vonage_api_key.clone(),
            api_secret: Secret::new(self.vonage_api_secret.clone()),
            signature_secret: self.vonage_signature_secret.clone().map(Secret::new),
            signature_method,
        })
    }
}

/// Each state in Vonage's own words, as its clients would see it.
pub(crate) fn status_word(direction: Direction, status: Status) -> &'static str {
    match (direction, status) {
        (Direction::Inbound, s) => s.as_str(),
        (_, Status::Queued) => "submitted",
        (_, Status::Sent) => "accepted",
        (_, Status::Delivered) => "delivered",
        (_, Status::Undelivered) => "failed",
        (_, Status::Received) => "received",
    }
}

/// The credit a fresh mock account has, in ten-thousandths of a euro.
pub(crate) const INITIAL_BALANCE: i64 = 102_800;
/// What one message costs, in the same unit.
const PRICE: i64 = 333;
/// The price as Vonage writes it in responses and receipts.
pub(crate) const PRICE_TEXT: &str = "0.03330000";
/// The (fictional) mobile network every message goes through.
pub(crate) const NETWORK_CODE: &str = "12345";
/// Vonage's `client-ref` limit.
const MAX_CLIENT_REF: usize = 100;
/// Longer than any concatenated SMS Vonage would split a text into.
const MAX_TEXT_CHARS: usize = 3200;
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        // Vonage takes GET with query parameters as well as POST.
        .route("/sms/json", get(send_sms).post(send_sms))
        .route("/account/get-balance", get(get_balance))
        .with_state(shared)
}

/// A new Vonage message id: UUID-shaped, unique, lowercase hex.
pub(crate) fn new_vonage_id() -> String {
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

/// A number the way Vonage writes it: digits, no `+`.
pub(crate) fn vonage_digits(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

/// A refused submit: a Vonage status (never 0) and its text.
#[derive(Debug)]
struct Refusal {
    status: u32,
    text: String,
    http: StatusCode,
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: u32, text: impl Into<String>) -> Self {
        Refusal {
            status,
            text: text.into(),
            http: StatusCode::OK,
            retry_after: None,
        }
    }

    fn missing(param: &str) -> Self {
        Self::new(2, format!("Missing {param} param"))
    }

    fn invalid(param: &str) -> Self {
        Self::new(3, format!("Invalid {param} param"))
    }

    fn from_fault(fault: SubmitFault) -> Self {
        match fault {
            SubmitFault::Outage => Refusal {
                http: StatusCode::SERVICE_UNAVAILABLE,
                ..Self::new(5, "Service Unavailable")
            },
            SubmitFault::Error { status } => Refusal {
                http: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                ..Self::new(5, "Internal Error")
            },
            SubmitFault::RateLimited { retry_after_secs } => Refusal {
                retry_after: Some(retry_after_secs),
                ..Self::new(1, "Throttled")
            },
        }
    }

    /// A provider error-code fault as the Vonage status closest to it.
    fn from_code(code: u32) -> Self {
        let status = vonage_status(code);
        Self::new(status, status_text(status))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "message-count": "1",
            "messages": [{ "status": self.status.to_string(), "error-text": self.text }],
        });
        let mut response = (self.http, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Vonage's status for a fault's code: small codes are Vonage statuses
/// already, other providers' codes get the nearest Vonage refusal.
fn vonage_status(code: u32) -> u32 {
    match code {
        0..100 => code,
        20003 => 4,
        20429 | 21611 => 1,
        21211 | 21614 => 3,
        21212 | 21606 => 15,
        21602..=21604 => 2,
        21408 | 21612 => 29,
        21610 => 7,
        21617 => 6,
        30002 => 8,
        _ => 5,
    }
}

fn status_text(status: u32) -> String {
    match status {
        1 => "Throttled",
        2 => "Missing params",
        3 => "Invalid params",
        4 => "Bad Credentials",
        5 => "Internal Error",
        6 => "Invalid Message",
        7 => "Number Barred",
        8 => "Partner Account Barred",
        9 => "Partner Quota Violation",
        15 => "Illegal Sender Address - rejected",
        29 => "Non-Whitelisted Destination",
        _ => return format!("Error {status}"),
    }
    .to_string()
}

/// The request's parameters: the query string, then a form or JSON body.
/// Later lookups take the first occurrence, so the body wins over the query.
fn parse_params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, Refusal> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let mut params: Vec<(String, String)> = if is_json {
        let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|_| Refusal::new(3, "Invalid params: the body is not a JSON object"))?;
        let mut params = Vec::with_capacity(object.len());
        for (key, value) in object {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Array(_) | Value::Object(_) => return Err(Refusal::invalid(&key)),
            };
            params.push((key, text));
        }
        params
    } else {
        form_urlencoded::parse(body).into_owned().collect()
    };
    if let Some(query) = query {
        params.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    Ok(params)
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `Authorization: Basic` key and secret, when the request carries them.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (key, secret) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(k, s)| (k.to_string(), s.to_string()))?;
    Some((key, secret))
}

/// How old a signed request may be before it counts as a replay.
const SIGNED_MAX_AGE_SECS: i64 = 300;

/// Every way Vonage documents to authenticate to the SMS API, in its order:
/// an `Authorization: Basic` header; `api_key` with `sig` (a signed request:
/// `timestamp` and the signature of every other parameter, made with the
/// account's signature secret and method); `api_key` with `api_secret` in
/// the parameters. Each refusal has Vonage's status and text.
fn authenticate(
    shared: &Shared,
    basic: Option<&(String, String)>,
    params: &[(String, String)],
) -> Result<(), Refusal> {
    let bad = || Refusal::new(4, "Bad Credentials");
    if let Some((key, secret)) = basic {
        return if credentials_match(shared, key, secret) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let key = first(params, "api_key").ok_or_else(|| Refusal::missing("api_key"))?;
    let key_ok = bool::from(
        key.as_bytes()
            .ct_eq(shared.accounts.vonage.api_key.as_bytes()),
    );
    if first(params, "sig").is_some() {
        if first(params, "api_secret").is_some() {
            return Err(Refusal::new(32, "Signature And API Secret Disallowed"));
        }
        let account = &shared.accounts.vonage;
        let Some(secret) = account.signature_secret.as_ref() else {
            // An account without a signature secret cannot sign.
            return Err(Refusal::new(14, "Invalid Signature"));
        };
        let fresh = first(params, "timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| (Utc::now().timestamp() - t).abs() <= SIGNED_MAX_AGE_SECS);
        if !fresh {
            return Err(Refusal::new(
                14,
                "Invalid Signature: timestamp missing or not within 5 minutes",
            ));
        }
        // The signature covers the parameters as sent, untrimmed.
        let signed: Vec<(String, String)> = params.to_vec();
        if !signature::verify(&signed, secret.expose(), account.signature_method) {
            return Err(Refusal::new(14, "Invalid Signature"));
        }
        return if key_ok { Ok(()) } else { Err(bad()) };
    }
    let secret = first(params, "api_secret").ok_or_else(|| Refusal::missing("api_secret"))?;
    if credentials_match(shared, key, secret) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Constant-time check of the account's key and secret.
fn credentials_match(shared: &Shared, key: &str, secret: &str) -> bool {
    let key_ok = key
        .as_bytes()
        .ct_eq(shared.accounts.vonage.api_key.as_bytes());
    let secret_ok = secret
        .as_bytes()
        .ct_eq(shared.accounts.vonage.api_secret.expose().as_bytes());
    bool::from(key_ok & secret_ok)
}

/// A number as stored: E.164 with `+`; alphanumeric senders as they are.
fn normalize(number: &str) -> String {
    if is_phone_number(number) {
        format!("+{}", vonage_digits(number))
    } else {
        number.to_string()
    }
}

/// Alphanumeric sender ids: up to 11 letters, digits and spaces, one letter at least.
fn is_alphanumeric_sender(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

async fn send_sms(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let received_at = ReceivedAt::of(&request);
    if let Some(fault) = shared.request_fault() {
        return Refusal::from_fault(fault).into_response();
    }
    let (parts, body) = request.into_parts();
    let correlation_id = parts
        .headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return Refusal::new(3, "Invalid params: the body is too large or unreadable")
            .into_response();
    };
    let basic = basic_credentials(&parts.headers);
    let result = parse_params(&parts.headers, parts.uri.query(), &body).and_then(|params| {
        authenticate(&shared, basic.as_ref(), &params)?;
        submit(&shared, &params, received_at, correlation_id)
    });
    match result {
        Ok(accepted) => axum::Json(accepted).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Checks in Vonage's order (credentials, then presence, then validity),
/// then accepts the message and starts its delivery.
fn submit(
    shared: &Arc<Shared>,
    params: &[(String, String)],
    received_at: Instant,
    correlation_id: Option<String>,
) -> Result<Value, Refusal> {
    let from = first(params, "from").ok_or_else(|| Refusal::missing("from"))?;
    let to = first(params, "to").ok_or_else(|| Refusal::missing("to"))?;
    // The text is taken as sent: leading spaces are part of a message.
    let text = params
        .iter()
        .find(|(k, _)| k == "text")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal::missing("text"))?;
    if !(is_phone_number(from) || is_alphanumeric_sender(from)) {
        return Err(Refusal::new(15, "Illegal Sender Address - rejected"));
    }
    if !is_phone_number(to) {
        return Err(Refusal::invalid("to"));
    }
    // The mock's magic test numbers (the same in every API it speaks), with
    // Vonage's statuses.
    match vonage_digits(to) {
        "15005550001" => return Err(Refusal::invalid("to")),
        "15005550004" => return Err(Refusal::new(7, "Number Barred")),
        _ => {}
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Refusal::new(6, "Invalid Message: the text is too long"));
    }
    let callback = match first(params, "callback") {
        Some(url) => {
            check_http_url(url).map_err(|_| Refusal::invalid("callback"))?;
            Some(url.to_string())
        }
        None => None,
    };
    let report = match first(params, "status-report-req") {
        None | Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(_) => return Err(Refusal::invalid("status-report-req")),
    };
    let client_ref = first(params, "client-ref").map(str::to_string);
    if client_ref
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_CLIENT_REF)
    {
        return Err(Refusal::invalid("client-ref"));
    }
    if let Some(code) = shared.code_fault() {
        return Err(Refusal::from_code(code));
    }
    let remaining = {
        let mut balance = lock(&shared.state.vonage.balance);
        if *balance < PRICE {
            return Err(Refusal::new(9, "Quota Exceeded - rejected"));
        }
        *balance -= PRICE;
        *balance
    };

    let to = normalize(to);
    let behaviour = shared.number(&to);
    let latency = shared.sample_latency(&behaviour);
    let faults = shared.message_faults();
    let now = Utc::now();
    let message = shared.store().insert(Message {
        seq: 0,
        sid: new_vonage_id(),
        api: InboundFormat::Vonage,
        direction: Direction::OutboundApi,
        from: normalize(from),
        to,
        body: text.to_string(),
        status: Status::Queued,
        error_code: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        status_callback: callback.filter(|_| report),
        correlation_id,
        client_ref: client_ref.clone(),
    });
    tracing::debug!(
        id = %message.sid,
        to = %mask_number(&message.to),
        latency_ms = latency.as_secs_f64() * 1e3,
        "mock carrier accepted a Vonage message"
    );
    let mut entry = json!({
        "to": vonage_digits(&message.to),
        "message-id": message.sid,
        "status": "0",
        "remaining-balance": format_money(remaining),
        "message-price": PRICE_TEXT,
        "network": NETWORK_CODE,
    });
    if let (Some(client_ref), Some(fields)) = (client_ref, entry.as_object_mut()) {
        fields.insert("client-ref".into(), Value::String(client_ref));
    }
    delivery::spawn(
        shared.clone(),
        message,
        Plan { behaviour, faults },
        received_at + latency,
    );
    Ok(json!({ "message-count": "1", "messages": [entry] }))
}

/// Ten-thousandths as Vonage's eight-decimal money strings.
fn format_money(amount: i64) -> String {
    format!("{}.{:04}0000", amount / 10_000, amount % 10_000)
}

/// `doctor`'s credential check: the balance, for the right key and secret.
async fn get_balance(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let authorized = match basic_credentials(&headers) {
        Some((key, secret)) => credentials_match(&shared, &key, &secret),
        None => match (first(&params, "api_key"), first(&params, "api_secret")) {
            (Some(key), Some(secret)) => credentials_match(&shared, key, secret),
            _ => false,
        },
    };
    if !authorized {
        let body = json!({ "error-code": "401", "error-code-label": "authentication failed" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let balance = *lock(&shared.state.vonage.balance);
    let body = json!({ "value": balance as f64 / 10_000.0, "autoReload": false });
    axum::Json(body).into_response()
}

/// Vonage's delivery receipt: `accepted` once sent, then `delivered` or
/// `failed` with an `err-code`. Queued is internal to Vonage: no receipt.
pub(crate) fn receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    let (status, err_code) = match m.status {
        Status::Queued | Status::Received => return None,
        Status::Sent => ("accepted", 0),
        Status::Delivered => ("delivered", 0),
        Status::Undelivered => ("failed", m.error_code.map_or(99, err_code)),
    };
    let now = Utc::now();
    let mut params = vec![
        ("api-key", shared.accounts.vonage.api_key.clone()),
        ("err-code", err_code.to_string()),
        ("message-timestamp", timestamp(now)),
        ("messageId", m.sid.clone()),
        ("msisdn", vonage_digits(&m.to).to_string()),
        ("network-code", NETWORK_CODE.to_string()),
        ("price", PRICE_TEXT.to_string()),
        ("scts", now.format("%y%m%d%H%M").to_string()),
        ("status", status.to_string()),
        ("to", vonage_digits(&m.from).to_string()),
    ];
    if let Some(client_ref) = &m.client_ref {
        params.push(("client-ref", client_ref.clone()));
    }
    signed_request(shared, url, params, m, now)
}

/// The inbound-message webhook for an owned number, Vonage's way.
pub(crate) fn inbound_request(
    shared: &Shared,
    m: &Message,
    url: &str,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    // Vonage routes keywords on the first word, upper-cased.
    let keyword = m
        .body
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_uppercase();
    let params = vec![
        ("api-key", shared.accounts.vonage.api_key.clone()),
        ("keyword", keyword),
        ("message-timestamp", timestamp(at)),
        ("messageId", m.sid.clone()),
        ("msisdn", vonage_digits(&m.from).to_string()),
        ("text", m.body.clone()),
        ("to", vonage_digits(&m.to).to_string()),
        ("type", "text".to_string()),
    ];
    signed_request(shared, url, params, m, at)
}

/// Vonage's `message-timestamp`: UTC, to the second.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A form POST with `timestamp` and `sig` added when the account signs.
fn signed_request(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    let mut params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(secret) = &shared.accounts.vonage.signature_secret {
        // What Vonage adds to a signed callback: the time and a nonce, both signed.
        params.push(("timestamp".to_string(), at.timestamp().to_string()));
        params.push((
            "nonce".to_string(),
            format!("{:032x}", ulid::Ulid::generate().0),
        ));
        let sig = signature::sign(
            &params,
            secret.expose(),
            shared.accounts.vonage.signature_method,
        );
        params.push(("sig".to_string(), sig));
    }
    delivery::build(shared.http.post(url).form(&params), m)
}

/// Vonage's DLR `err-code` for a number's `fail` code: small codes are taken
/// to be Vonage's own already, other providers' delivery codes get their nearest
/// Vonage meaning, anything else is a general error.
pub(crate) fn err_code(code: u32) -> u32 {
    match code {
        0..100 => code,
        30001 => 8,  // queue overflow: a network-side problem
        30003 => 2,  // handset off or out of coverage: absent, temporarily
        30004 => 4,  // blocked by the recipient
        30005 => 3,  // number does not exist: absent, permanently
        30006 => 11, // landline or unreachable carrier: unroutable
        30007 => 6,  // filtered: anti-spam
        30008 => 1,  // unknown error
        _ => 99,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn account(argv: &[&str]) -> Result<Account, (&'static str, String)> {
        let cli = Cli::try_parse_from(std::iter::once("mock-carrier").chain(argv.iter().copied()))
            .expect("flags parse");
        cli.args.account()
    }

    #[test]
    fn account_flags() {
        let a = account(&[]).unwrap();
        assert_eq!(a.api_key, "mockkey");
        assert_eq!(a.api_secret.expose(), "mock-api-secret");
        assert!(a.signature_secret.is_none());
        assert_eq!(a.signature_method, SignatureMethod::Md5hash);
        let a = account(&[
            "--vonage-api-key",
            "k",
            "--vonage-api-secret",
            "s",
            "--vonage-signature-secret",
            "sig",
        ])
        .unwrap();
        assert_eq!(a.api_key, "k");
        assert_eq!(a.api_secret.expose(), "s");
        assert_eq!(a.signature_secret.as_ref().map(Secret::expose), Some("sig"));
        assert_eq!(
            account(&["--vonage-api-key", ""]).unwrap_err().0,
            "--vonage-api-key"
        );
        let bad = Account {
            signature_secret: Some(Secret::new("")),
            ..Account::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn ids_are_uuid_shaped() {
        let id = new_vonage_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, new_vonage_id());
    }

    #[test]
    fn numbers_and_money() {
        assert_eq!(normalize("447700900000"), "+447700900000");
        assert_eq!(normalize("+447700900000"), "+447700900000");
        assert_eq!(normalize("Canary"), "Canary");
        assert_eq!(format_money(102_467), "10.24670000");
        assert_eq!(format_money(333), "0.03330000");
    }

    #[test]
    fn codes_translate() {
        assert_eq!(vonage_status(9), 9);
        assert_eq!(vonage_status(21610), 7);
        assert_eq!(vonage_status(20003), 4);
        assert_eq!(vonage_status(12345), 5);
        assert_eq!(status_text(29), "Non-Whitelisted Destination");
    }

    #[test]
    fn json_params() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let p = parse_params(
            &headers,
            None,
            br#"{"to":447700900000,"text":"hi","x":null}"#,
        )
        .unwrap();
        assert_eq!(first(&p, "to"), Some("447700900000"));
        assert_eq!(first(&p, "x"), None);
        assert_eq!(
            parse_params(&headers, None, br#"{"to":[1]}"#)
                .unwrap_err()
                .status,
            3
        );
        assert_eq!(parse_params(&headers, None, b"nope").unwrap_err().status, 3);
    }
}
