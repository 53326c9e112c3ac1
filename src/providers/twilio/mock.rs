//! The mock carrier's Twilio: the REST routes (create, fetch and list
//! messages, fetch the account), the status callbacks and inbound webhooks
//! it sends, and its own copy of Twilio's error codes and messages (never the
//! client's table, so a wrong entry there fails a test).
//!
//! The shapes follow what Twilio returns and what its official SDKs parse:
//! RFC 2822 dates, string counters ("num_segments": "1"), errors as
//! `{code, message, more_info, status}`, and list pages whose
//! `next_page_uri` is a path the SDK appends to its base URL. Twilio's magic
//! test numbers give the errors they give on Twilio's test credentials, so a
//! gateway's error classification can be exercised without a real account.
//!
//! Every input here comes from the network: nothing panics on it, every
//! refusal is a Twilio-shaped error, injected faults included. Only messages
//! submitted through this API are fetched and listed here: another API's side
//! is another provider's account.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::signature;
use crate::mock_carrier::delivery::{self, Plan};
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{
    Direction, InboundFormat, Message, ReceivedAt, Shared, Status, check_http_url, correlation_id,
    is_phone_number,
};
use crate::redact::mask_number;

/// Twilio's API version, in paths and resources.
pub(crate) const API_VERSION: &str = "2010-04-01";
/// What Twilio's callbacks say they are.
const CALLBACK_AGENT: &str = "TwilioProxy/1.1";
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The Twilio routes; the caller adds the fallback and the request stamp
/// shared with the other APIs.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2010-04-01/Accounts/{file}", get(fetch_account))
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            get(list_messages).post(create_message),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages/{file}",
            get(fetch_message),
        )
        .with_state(shared)
}

/// A Twilio REST error: `{code, message, more_info, status}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// How Twilio answers when a fault refuses a submit.
    fn from_fault(fault: SubmitFault) -> Self {
        match fault {
            SubmitFault::Outage => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                20503,
                "Service Unavailable",
            ),
            SubmitFault::Error { status } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // Twilio's own code for "unavailable" where it has one.
                let code = if status == StatusCode::SERVICE_UNAVAILABLE {
                    20503
                } else {
                    20500
                };
                let reason = status.canonical_reason().unwrap_or("Internal Server Error");
                Self::new(status, code, reason)
            }
            SubmitFault::RateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
            },
        }
    }

    /// A provider error-code fault, with the HTTP status Twilio uses for it.
    fn from_code(code: u32) -> Self {
        let code = twilio_code(code);
        let status = match code {
            20003 => StatusCode::UNAUTHORIZED,
            20404 => StatusCode::NOT_FOUND,
            20429 => StatusCode::TOO_MANY_REQUESTS,
            20503 => StatusCode::SERVICE_UNAVAILABLE,
            20500 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = error_text(code).map_or_else(|| format!("Error {code}"), str::to_string);
        Self::new(status, code, message)
    }

    fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

/// Twilio's code for a fault's code: Twilio codes (>= 100) as they are,
/// other providers' small status codes translated to the nearest Twilio refusal.
fn twilio_code(code: u32) -> u32 {
    match code {
        100.. => code,
        1 => 20429,
        2 => 21604,
        3 => 21211,
        4 => 20003,
        6 => 21617,
        7 => 21610,
        8 => 30002,
        9 => 30002,
        15 => 21212,
        29 => 21408,
        _ => 20500,
    }
}

pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(request.uri().path())
}

/// Basic auth first (401 / 20003), then the account in the path (404).
fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    path_sid: &str,
    path: &str,
) -> Result<(), ApiError> {
    let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .ok_or_else(unauthorized)?;
    let decoded = BASE64.decode(encoded.trim()).map_err(|_| unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (user, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let user_ok = user.as_bytes().ct_eq(shared.account_sid.as_bytes());
    let password_ok = password
        .as_bytes()
        .ct_eq(shared.auth_token.expose().as_bytes());
    if !bool::from(user_ok & password_ok) {
        return Err(unauthorized());
    }
    if path_sid != shared.account_sid {
        return Err(ApiError::not_found(path));
    }
    Ok(())
}

fn collection_path(account_sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account_sid}/Messages.json")
}

/// The message resource as Twilio renders it.
pub(crate) fn resource(m: &Message, account_sid: &str) -> Value {
    let date = |d: &DateTime<Utc>| d.format("%a, %d %b %Y %H:%M:%S %z").to_string();
    let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{}", m.sid);
    json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": m.body,
        "date_created": date(&m.date_created),
        "date_sent": m.date_sent.as_ref().map(date),
        "date_updated": date(&m.date_updated),
        "direction": m.direction.as_str(),
        "error_code": m.error_code,
        "error_message": m.error_code.map(error_message),
        "from": m.from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status.as_str(),
        "subresource_uris": { "media": format!("{base}/Media.json") },
        "to": m.to,
        "uri": format!("{base}.json"),
    })
}

/// Twilio's own words for the error codes the mock answers a submit with,
/// as its API documents them.
fn error_text(code: u32) -> Option<&'static str> {
    Some(match code {
        20003 => "Authenticate",
        20404 => "The requested resource was not found",
        20429 => "Too Many Requests",
        20500 => "Internal Server Error",
        20503 => "Service Unavailable",
        21211 => "Invalid 'To' Phone Number",
        21212 => "Invalid 'From' Phone Number",
        21408 => {
            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"
        }
        21602 => "Message body is required",
        21603 => "A 'From' phone number is required",
        21604 => "A 'To' phone number is required",
        21606 => {
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account"
        }
        21610 => "Attempt to send to unsubscribed recipient",
        21611 => "This 'From' number has exceeded the maximum number of queued messages",
        21612 => "The 'To' phone number is not currently reachable via SMS",
        21614 => "'To' number is not a valid mobile number",
        21617 => "The concatenated message body exceeds the 1600 character limit",
        30001 => "Queue overflow",
        30002 => "Account suspended",
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        _ => return None,
    })
}

/// Descriptions of the delivery error codes a `fail` number is likely to use.
fn error_message(code: u32) -> String {
    match code {
        30001 => "Queue overflow",
        30002 => "Account suspended",
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        _ => "Message delivery failed",
    }
    .to_string()
}

/// First value of each named field; later repeats are ignored, as Twilio does
/// for single-valued parameters.
fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_pairs(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input).into_owned().collect()
}

/// Refusals by Twilio's magic test numbers, then by plain validation.
fn check_numbers(to: &str, from: &str) -> Result<(), ApiError> {
    let to_error = match to {
        "+15005550001" => Some((
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        )),
        "+15005550002" => Some((
            21612,
            format!(
                "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS."
            ),
        )),
        "+15005550003" => Some((
            21408,
            format!(
                "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
            ),
        )),
        "+15005550004" => Some((
            21610,
            "Attempt to send to unsubscribed recipient".to_string(),
        )),
        "+15005550009" => Some((
            21614,
            format!("'To' number {to} is not a valid mobile number"),
        )),
        _ if !is_phone_number(to) => Some((
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        )),
        _ => None,
    };
    let from_error = match from {
        "+15005550001" => Some((
            21212,
            format!(
                "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
            ),
        )),
        "+15005550007" => Some((
            21606,
            format!(
                "The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account."
            ),
        )),
        "+15005550008" => Some((
            21611,
            format!("This 'From' number {from} has exceeded the maximum number of queued messages"),
        )),
        _ if !(is_phone_number(from) || is_alphanumeric_sender(from)) => Some((
            21212,
            format!(
                "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
            ),
        )),
        _ => None,
    };
    // Twilio looks at the sender before the recipient.
    match from_error.or(to_error) {
        Some((code, message)) => Err(ApiError::bad_request(code, message)),
        None => Ok(()),
    }
}

/// Alphanumeric sender ids: up to 11 letters, digits and spaces, one letter at least.
fn is_alphanumeric_sender(s: &str) -> bool {
    (1..=11).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let received_at = ReceivedAt::of(&request);
    if let Some(fault) = shared.request_fault() {
        return Err(ApiError::from_fault(fault));
    }
    let path = request.uri().path().to_string();
    let (parts, body) = request.into_parts();
    authorize(&shared, &parts.headers, &account_sid, &path)?;
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| {
        ApiError::bad_request(20001, "Request body is too large or could not be read")
    })?;
    let params = parse_pairs(&body);

    let non_empty = |name| {
        first(&params, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let to = non_empty("To")
        .ok_or_else(|| ApiError::bad_request(21604, "A 'To' phone number is required."))?;
    let from = non_empty("From")
        .ok_or_else(|| ApiError::bad_request(21603, "A 'From' phone number is required."))?;
    let body = first(&params, "Body")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad_request(21602, "Message body is required."))?;
    check_numbers(to, from)?;
    let status_callback = match non_empty("StatusCallback") {
        Some(url) => {
            check_http_url(url).map_err(|_| {
                ApiError::bad_request(
                    21609,
                    format!("The StatusCallback URL {url} is not a valid URL."),
                )
            })?;
            Some(url.to_string())
        }
        None => None,
    };
    if let Some(code) = shared.code_fault() {
        return Err(ApiError::from_code(code));
    }

    let behaviour = shared.number(to);
    let latency = shared.sample_latency(&behaviour);
    let faults = shared.message_faults();
    let now = Utc::now();
    let message = shared.store().insert(Message {
        seq: 0,
        sid: new_message_sid(),
        api: InboundFormat::Twilio,
        direction: Direction::OutboundApi,
        from: from.to_string(),
        to: to.to_string(),
        body: body.to_string(),
        status: Status::Queued,
        error_code: None,
        date_created: now,
        date_updated: now,
        date_sent: None,
        status_callback,
        correlation_id: correlation_id(&parts.headers),
        client_ref: None,
    });
    tracing::debug!(
        sid = %message.sid,
        to = %mask_number(to),
        latency_ms = latency.as_secs_f64() * 1e3,
        "mock carrier accepted a message"
    );
    let rendered = resource(&message, &shared.account_sid);
    delivery::spawn(
        shared,
        message,
        Plan { behaviour, faults },
        received_at + latency,
    );
    Ok((StatusCode::CREATED, axum::Json(rendered)).into_response())
}

async fn fetch_message(
    State(shared): State<Arc<Shared>>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = uri.path();
    authorize(&shared, &headers, &account_sid, path)?;
    let sid = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found(path))?;
    let store = shared.store();
    let message = store
        .get(sid)
        .filter(|m| m.api == InboundFormat::Twilio)
        .ok_or_else(|| ApiError::not_found(path))?;
    Ok(axum::Json(resource(message, &shared.account_sid)).into_response())
}

/// The account resource, which `doctor` fetches to check the credentials
/// without sending anything.
async fn fetch_account(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let sid = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found(path))?;
    authorize(&shared, &headers, sid, path)?;
    let sid = &shared.account_sid;
    // A fixed creation date: the account predates any message.
    let created = "Thu, 01 Jan 2026 00:00:00 +0000";
    let base = format!("/{API_VERSION}/Accounts/{sid}");
    let body = json!({
        "auth_token": null,
        "date_created": created,
        "date_updated": created,
        "friendly_name": "sms-canary mock account",
        "owner_account_sid": sid,
        "sid": sid,
        "status": "active",
        "subresource_uris": {
            "messages": format!("{base}/Messages.json"),
        },
        "type": "Full",
        "uri": format!("{base}.json"),
    });
    Ok(axum::Json(body).into_response())
}

/// A bound on `date_sent`: a date covers its whole (UTC) day, a datetime is
/// compared to the second, as `date_sent` is rendered to the second.
#[derive(Debug, Clone, Copy)]
enum DateBound {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl DateBound {
    /// Every form Twilio takes: a day (`2026-11-27`), an ISO 8601 datetime
    /// with a zone (`2026-11-27T10:00:00Z`, `…+01:00`) or without one (UTC,
    /// `T` or a space between date and time), and RFC 2822 as Twilio writes
    /// dates itself (`Fri, 27 Nov 2026 10:00:00 +0000`).
    fn parse(name: &str, value: &str) -> Result<Self, ApiError> {
        let value = value.trim();
        if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return Ok(DateBound::Day(day));
        }
        let instant = DateTime::parse_from_rfc3339(value)
            .or_else(|_| DateTime::parse_from_rfc2822(value))
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok())
                    .map(|t| t.and_utc())
            });
        instant.map(DateBound::Instant).ok_or_else(|| {
            ApiError::bad_request(
                20001,
                format!("Invalid {name}: `{value}` is neither YYYY-MM-DD nor an ISO 8601 datetime"),
            )
        })
    }

    /// The covered range as whole seconds since the epoch, inclusive.
    fn range(self) -> (i64, i64) {
        match self {
            DateBound::Day(day) => {
                let start = day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
                (start, start + TimeDelta::days(1).num_seconds() - 1)
            }
            DateBound::Instant(t) => (t.timestamp(), t.timestamp()),
        }
    }
}

#[derive(Debug, Default)]
struct ListQuery {
    to: Option<String>,
    from: Option<String>,
    sent_on: Option<DateBound>,
    sent_before: Option<DateBound>,
    sent_after: Option<DateBound>,
    page_size: usize,
    page: usize,
    page_token: Option<String>,
}

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            page_size: DEFAULT_PAGE_SIZE,
            ..Default::default()
        };
        for (key, value) in pairs {
            match key.as_str() {
                "To" => q.to = Some(value.clone()),
                "From" => q.from = Some(value.clone()),
                "DateSent" => q.sent_on = Some(DateBound::parse(key, value)?),
                // `DateSent>=2026-11-27` in a URL is the key `DateSent>`.
                "DateSent<" | "DateSent<=" => q.sent_before = Some(DateBound::parse(key, value)?),
                "DateSent>" | "DateSent>=" => q.sent_after = Some(DateBound::parse(key, value)?),
                "PageSize" => {
                    q.page_size = value
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            ApiError::bad_request(20001, format!("Invalid PageSize: `{value}`"))
                        })?
                        .min(MAX_PAGE_SIZE)
                }
                "Page" => {
                    q.page = value.trim().parse().map_err(|_| {
                        ApiError::bad_request(20001, format!("Invalid Page: `{value}`"))
                    })?
                }
                "PageToken" => q.page_token = Some(value.clone()),
                _ => {}
            }
        }
        Ok(q)
    }

    fn matches(&self, m: &Message) -> bool {
        if self.to.as_ref().is_some_and(|to| *to != m.to)
            || self.from.as_ref().is_some_and(|f| *f != m.from)
        {
            return false;
        }
        let bounds = [
            self.sent_on.map(|b| b.range()),
            self.sent_after.map(|b| (b.range().0, i64::MAX)),
            self.sent_before.map(|b| (i64::MIN, b.range().1)),
        ];
        if bounds.iter().all(Option::is_none) {
            return true;
        }
        // Messages not sent yet have no date_sent and match no date filter.
        let Some(sent) = m.date_sent.map(|d| d.timestamp()) else {
            return false;
        };
        bounds
            .iter()
            .flatten()
            .all(|&(lo, hi)| lo <= sent && sent <= hi)
    }

    /// The query string for this filter at some page.
    fn uri(&self, path: &str, page: usize, token: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let date = |b: DateBound| match b {
            DateBound::Day(d) => d.format("%Y-%m-%d").to_string(),
            DateBound::Instant(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        };
        if let Some(to) = &self.to {
            q.append_pair("To", to);
        }
        if let Some(from) = &self.from {
            q.append_pair("From", from);
        }
        if let Some(b) = self.sent_on {
            q.append_pair("DateSent", &date(b));
        }
        if let Some(b) = self.sent_before {
            q.append_pair("DateSent<", &date(b));
        }
        if let Some(b) = self.sent_after {
            q.append_pair("DateSent>", &date(b));
        }
        q.append_pair("PageSize", &self.page_size.to_string());
        q.append_pair("Page", &page.to_string());
        if let Some(token) = token {
            q.append_pair("PageToken", token);
        }
        format!("{path}?{}", q.finish())
    }
}

/// Pages are newest first. `PageToken` (`PA` + the last sid of the previous
/// page) continues after that message, so a page boundary does not shift
/// when new messages arrive mid-listing; `Page` alone counts from the start.
async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = uri.path();
    authorize(&shared, &headers, &account_sid, path)?;
    let pairs = parse_pairs(raw_query.as_deref().unwrap_or("").as_bytes());
    let query = ListQuery::parse(&pairs)?;

    let store = shared.store();
    let after_seq = match &query.page_token {
        Some(token) => {
            let sid = token.strip_prefix("PA").unwrap_or(token);
            Some(store.get(sid).map(|m| m.seq).ok_or_else(|| {
                ApiError::bad_request(20001, format!("Invalid PageToken: `{token}`"))
            })?)
        }
        None => None,
    };
    let (messages, next_token, more) = {
        let mut matching = store
            .newest_first()
            .filter(|m| m.api == InboundFormat::Twilio)
            .filter(|m| after_seq.is_none_or(|seq| m.seq < seq))
            .filter(|m| query.matches(m));
        let skip = if after_seq.is_some() {
            0
        } else {
            query.page.saturating_mul(query.page_size)
        };
        let page: Vec<&Message> = matching.by_ref().skip(skip).take(query.page_size).collect();
        let more = matching.next().is_some();
        let messages: Vec<Value> = page
            .iter()
            .map(|m| resource(m, &shared.account_sid))
            .collect();
        (messages, page.last().map(|m| format!("PA{}", m.sid)), more)
    };
    drop(store);

    let collection = collection_path(&shared.account_sid);
    let start = query.page * query.page_size;
    let body = json!({
        "end": (start + messages.len()).saturating_sub(1).max(start),
        "first_page_uri": query.uri(&collection, 0, None),
        "messages": messages,
        "next_page_uri": if more { Some(query.uri(&collection, query.page + 1, next_token.as_deref())) } else { None },
        "page": query.page,
        "page_size": query.page_size,
        "previous_page_uri": if query.page > 0 { Some(query.uri(&collection, query.page - 1, None)) } else { None },
        "start": start,
        "uri": query.uri(&collection, query.page, query.page_token.as_deref()),
    });
    Ok(axum::Json(body).into_response())
}

/// The status callback Twilio sends for a message in its current state.
pub(crate) fn receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    let status = m.status.as_str();
    let mut params = vec![
        ("AccountSid", shared.account_sid.clone()),
        ("ApiVersion", API_VERSION.to_string()),
        ("From", m.from.clone()),
        ("MessageSid", m.sid.clone()),
        ("MessageStatus", status.to_string()),
        ("SmsSid", m.sid.clone()),
        ("SmsStatus", status.to_string()),
        ("To", m.to.clone()),
    ];
    if let Some(code) = m.error_code {
        params.push(("ErrorCode", code.to_string()));
    }
    signed_request(shared, url, params, m)
}

/// The incoming-message webhook for an owned number, Twilio's way.
pub(crate) fn inbound_request(shared: &Shared, m: &Message, url: &str) -> Option<reqwest::Request> {
    let params = vec![
        ("AccountSid", shared.account_sid.clone()),
        ("ApiVersion", API_VERSION.to_string()),
        ("Body", m.body.clone()),
        ("From", m.from.clone()),
        ("MessageSid", m.sid.clone()),
        ("NumMedia", "0".to_string()),
        ("NumSegments", "1".to_string()),
        ("SmsMessageSid", m.sid.clone()),
        ("SmsSid", m.sid.clone()),
        ("SmsStatus", Status::Received.as_str().to_string()),
        ("To", m.to.clone()),
    ];
    signed_request(shared, url, params, m)
}

/// A form POST signed over the exact URL as configured, query included.
fn signed_request(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
) -> Option<reqwest::Request> {
    let params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let signature = signature::sign(url, &params, shared.auth_token.expose());
    let request = shared
        .http
        .post(url)
        .header(header::USER_AGENT, CALLBACK_AGENT)
        .header("X-Twilio-Signature", signature)
        .form(&params);
    delivery::build(request, m)
}

/// A new message sid: "SM" and 32 lowercase hex digits.
pub(crate) fn new_message_sid() -> String {
    format!("SM{:032x}", ulid::Ulid::generate().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_and_validation() {
        let code = |to, from| check_numbers(to, from).err().map(|e| e.code);
        assert_eq!(code("+15005550006", "+15005550006"), None);
        assert_eq!(code("+15005550001", "+15005550006"), Some(21211));
        assert_eq!(code("+15005550002", "+15005550006"), Some(21612));
        assert_eq!(code("+15005550003", "+15005550006"), Some(21408));
        assert_eq!(code("+15005550004", "+15005550006"), Some(21610));
        assert_eq!(code("+15005550009", "+15005550006"), Some(21614));
        assert_eq!(code("+15005550006", "+15005550001"), Some(21212));
        assert_eq!(code("+15005550006", "+15005550007"), Some(21606));
        assert_eq!(code("+15005550006", "+15005550008"), Some(21611));
        assert_eq!(code("call me", "+15005550006"), Some(21211));
        assert_eq!(code("+15005550006", "!!"), Some(21212));
        assert_eq!(code("+15005550006", "Canary"), None);
    }

    #[test]
    fn sids_are_unique_and_well_formed() {
        let a = new_message_sid();
        let b = new_message_sid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(
            a[2..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
    }

    #[test]
    fn date_bounds() {
        let q = ListQuery::parse(&[("DateSent>".into(), "2026-11-27".into())]).unwrap();
        let mut m = Message {
            seq: 0,
            sid: "SM1".into(),
            api: InboundFormat::Twilio,
            direction: Direction::OutboundApi,
            from: "+1".into(),
            to: "+2".into(),
            body: String::new(),
            status: Status::Sent,
            error_code: None,
            date_created: Utc::now(),
            date_updated: Utc::now(),
            date_sent: None,
            status_callback: None,
            correlation_id: None,
            client_ref: None,
        };
        assert!(!q.matches(&m));
        m.date_sent = Some("2026-11-27T00:00:00Z".parse().unwrap());
        assert!(q.matches(&m));
        m.date_sent = Some("2026-11-26T23:59:59.9Z".parse().unwrap());
        assert!(!q.matches(&m));
        let q = ListQuery::parse(&[("DateSent<".into(), "2026-11-27".into())]).unwrap();
        m.date_sent = Some("2026-11-27T23:59:59Z".parse().unwrap());
        assert!(q.matches(&m));
        let q = ListQuery::parse(&[("DateSent>".into(), "2026-11-27T10:00:00Z".into())]).unwrap();
        m.date_sent = Some("2026-11-27T10:00:00.5Z".parse().unwrap());
        assert!(q.matches(&m));
        m.date_sent = Some("2026-11-27T09:59:59.5Z".parse().unwrap());
        assert!(!q.matches(&m));
        assert!(ListQuery::parse(&[("DateSent>".into(), "yesterday".into())]).is_err());
        // Every form of one instant bounds alike.
        m.date_sent = Some("2026-11-27T10:00:00Z".parse().unwrap());
        for form in [
            "2026-11-27T10:00:00Z",
            "2026-11-27T11:00:00+01:00",
            "2026-11-27T10:00:00",
            "2026-11-27 10:00:00",
            "2026-11-27T10:00:00.000",
            "Fri, 27 Nov 2026 10:00:00 +0000",
        ] {
            let after = ListQuery::parse(&[("DateSent>".into(), form.into())]).unwrap();
            assert!(after.matches(&m), "{form}");
            let before = ListQuery::parse(&[("DateSent<".into(), form.into())]).unwrap();
            assert!(before.matches(&m), "{form}");
            let exact = ListQuery::parse(&[("DateSent".into(), form.into())]).unwrap();
            assert!(exact.matches(&m), "{form}");
        }
        let later =
            ListQuery::parse(&[("DateSent>".into(), "2026-11-27 10:00:01".into())]).unwrap();
        assert!(!later.matches(&m));
        assert!(ListQuery::parse(&[("PageSize".into(), "0".into())]).is_err());
        assert_eq!(
            ListQuery::parse(&[("PageSize".into(), "5000".into())])
                .unwrap()
                .page_size,
            1000
        );
    }
}
