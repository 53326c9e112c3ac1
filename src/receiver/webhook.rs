//! Provider webhooks under `/hooks/`: inbound messages and status callbacks.
//!
//! Routes:
//! - `POST /hooks/twilio/inbound/{receiver}`: a Twilio inbound message;
//! - `POST /hooks/twilio/status/{gateway}?run={token}`: a Twilio status callback;
//! - `GET|POST /hooks/vonage/inbound/{receiver}`: a Vonage inbound message;
//! - `GET|POST /hooks/vonage/receipt/{gateway}?run={token}`: a Vonage delivery receipt;
//! - `POST /hooks/json/{receiver}`: your own system's JSON, HMAC-SHA256 signed.
//!
//! A receiver serves the inbound route of its own gateway's provider only
//! ([`Inbound`]): a Twilio (or mock) receiver answers 404 on the Vonage route
//! and the other way round, and a receiver with no `gateway` serves only the
//! JSON route. The JSON route is also served by a receiver with a
//! `json_secret`.
//!
//! Twilio requests must carry a valid `X-Twilio-Signature` over our *public*
//! URL (the one the provider called), made with the auth token of the
//! receiver's own gateway, unless the receiver turned checks off; Vonage
//! requests must carry a valid, fresh `sig` made with its own gateway's
//! signature secret when that account has one (Vonage signs only on
//! request); JSON requests must be signed with the receiver's `json_secret`.
//! No other gateway's credentials count, so the in-process mock's public
//! token opens nothing but a mock's own receiver. Unsigned or badly signed →
//! 403, body over the limit → 413 (declared: before it is read), malformed → 400.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use super::inbox::{Arrival, DeliveryStatus, Inbox, Receipt};
use crate::config::{Config, ReceiverConfig};
use crate::config::{GatewayConfig, JsonPathExpr};
use crate::metrics::Metrics;
use crate::redact::{Secret, mask_number};
use crate::signing::{
    VonageMethod, verify_body_signature, verify_twilio_signature, verify_vonage_signature,
};

/// Largest webhook body accepted: Twilio's are well under 4 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

const TWILIO_INBOUND: &str = "/hooks/twilio/inbound/{receiver}";
const TWILIO_STATUS: &str = "/hooks/twilio/status/{gateway}";
const VONAGE_INBOUND: &str = "/hooks/vonage/inbound/{receiver}";
const VONAGE_RECEIPT: &str = "/hooks/vonage/receipt/{gateway}";
const JSON_INBOUND: &str = "/hooks/json/{receiver}";

/// Where a gateway's Twilio-style status callbacks come in.
pub fn twilio_status_path(gateway: &str) -> String {
    TWILIO_STATUS.replace("{gateway}", gateway)
}

/// Where a Vonage gateway's delivery receipts come in.
pub fn vonage_receipt_path(gateway: &str) -> String {
    VONAGE_RECEIPT.replace("{gateway}", gateway)
}

/// The inbound-message route a webhook receiver serves, chosen by its
/// gateway's provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// A `twilio` or `mock` gateway: Twilio's form, `X-Twilio-Signature`.
    Twilio,
    /// A `vonage` gateway: Vonage's fields, `sig` when the account signs.
    Vonage,
    /// No gateway: only your own system's JSON, signed with `json_secret`.
    Json,
}

impl Inbound {
    /// The route of receiver `name`, if it is a webhook receiver.
    pub fn of(config: &Config, name: &str) -> Option<Inbound> {
        let ReceiverConfig::Webhook(w) = config.receivers.get(name)? else {
            return None;
        };
        let Some(gateway) = &w.gateway else {
            return Some(Inbound::Json);
        };
        Some(match config.gateways.get(gateway.get_ref()) {
            Some(GatewayConfig::Vonage(_)) => Inbound::Vonage,
            Some(GatewayConfig::Twilio(_) | GatewayConfig::Mock(_)) => Inbound::Twilio,
            // Refused when the config loads: an `http` gateway signs nothing.
            Some(GatewayConfig::Http(_)) | None => Inbound::Json,
        })
    }

    /// The path (under the public URL) where receiver `name` takes messages.
    pub fn path(self, receiver: &str) -> String {
        let route = match self {
            Inbound::Twilio => TWILIO_INBOUND,
            Inbound::Vonage => VONAGE_INBOUND,
            Inbound::Json => JSON_INBOUND,
        };
        route.replace("{receiver}", receiver)
    }

    /// The provider's name, as the plan shows it.
    pub fn name(self) -> &'static str {
        match self {
            Inbound::Twilio => "Twilio",
            Inbound::Vonage => "Vonage",
            Inbound::Json => "JSON",
        }
    }
}

/// What the webhook routes need: the inbox, the keys, and our public URL.
#[derive(Debug)]
pub struct Hooks {
    inbox: Arc<Inbox>,
    public_url: Url,
    receivers: HashMap<String, ReceiverKeys>,
    /// Each gateway's callback keys, by gateway name.
    gateways: HashMap<String, GatewayKeys>,
    counters: Counters,
    metrics: Option<Arc<Metrics>>,
    /// For rate-limiting warnings: when the routes were built, and the
    /// second (counted from 1) of the last warning.
    started: std::time::Instant,
    last_warned: AtomicU64,
}

/// What signs a gateway's callbacks.
#[derive(Debug, Clone, Default)]
struct GatewayKeys {
    twilio: Option<Secret>,
    vonage: Option<(Secret, VonageMethod)>,
    /// A Vonage gateway, signed or not: its receipts are routed here.
    is_vonage: bool,
}

#[derive(Debug)]
struct ReceiverKeys {
    /// The one provider route it serves.
    inbound: Inbound,
    verify: bool,
    /// Its gateway's auth token, which signs Twilio inbound messages.
    twilio: Option<Secret>,
    /// Its gateway's Vonage signature secret; unset when the account does not sign.
    vonage: Option<(Secret, VonageMethod)>,
    json_secret: Option<Secret>,
    json_header: String,
    json_body: JsonPathExpr,
}

/// How old a Vonage signed request may be before it counts as a replay.
const VONAGE_MAX_AGE_SECS: i64 = 300;

/// Requests by result, for logs now and metrics later.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub forbidden: AtomicU64,
    pub malformed: AtomicU64,
    /// Bodies over [`BODY_LIMIT`] (413).
    pub too_large: AtomicU64,
    pub unmatched: AtomicU64,
}

impl Hooks {
    /// Builds the routes' state from the config. `public_url` is the URL the
    /// providers call, which is what their signatures cover.
    pub fn new(config: &Config, inbox: Arc<Inbox>, public_url: Url) -> Arc<Hooks> {
        Hooks::with_metrics(config, inbox, public_url, None)
    }

    /// As [`Hooks::new`], counting requests in `webhook_requests_total` too.
    pub fn with_metrics(
        config: &Config,
        inbox: Arc<Inbox>,
        public_url: Url,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Hooks> {
        let gateways: HashMap<String, GatewayKeys> = config
            .gateways
            .iter()
            .map(|(name, g)| {
                let keys = GatewayKeys {
                    twilio: g.twilio_auth_token().cloned(),
                    vonage: g.vonage_signature().map(|(s, m)| (s.clone(), m)),
                    is_vonage: matches!(g, GatewayConfig::Vonage(_)),
                };
                (name.clone(), keys)
            })
            .collect();
        let receivers = config
            .receivers
            .iter()
            .filter_map(|(name, r)| match r {
                ReceiverConfig::Webhook(w) => Some((name, w)),
                _ => None,
            })
            .map(|(name, w)| {
                // The receiving number's account signs inbound messages: only
                // that account's credentials count, never another gateway's.
                let account = w
                    .gateway
                    .as_ref()
                    .and_then(|g| gateways.get(g.get_ref()))
                    .cloned()
                    .unwrap_or_default();
                let keys = ReceiverKeys {
                    inbound: Inbound::of(config, name).unwrap_or(Inbound::Json),
                    verify: w.verify_signatures,
                    twilio: account.twilio,
                    vonage: account.vonage,
                    json_secret: w.json_secret.clone(),
                    json_header: w.json_signature_header.clone(),
                    json_body: w.json_body.clone(),
                };
                (name.clone(), keys)
            })
            .collect();
        Arc::new(Hooks {
            inbox,
            public_url,
            receivers,
            gateways,
            counters: Counters::default(),
            metrics,
            started: std::time::Instant::now(),
            last_warned: AtomicU64::new(0),
        })
    }

    /// Hands an accepted inbound message to the inbox; how many runs it matched.
    fn arrived(
        &self,
        route: &str,
        receiver: &str,
        text: &str,
        message_id: Option<&str>,
        at: Instant,
    ) -> usize {
        self.accepted(route);
        let arrival = Arrival {
            at,
            receiver: receiver.to_string(),
            message_id: message_id.map(str::to_string),
        };
        self.inbox.arrival(text, arrival)
    }

    /// Counts a request the route accepted.
    fn accepted(&self, route: &str) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.webhook_request(route, "accepted");
        }
    }

    /// Receiver `name`, if it serves the `route` asked for.
    fn receiver(&self, name: &str, route: Inbound) -> Option<&ReceiverKeys> {
        self.receivers.get(name).filter(|keys| {
            keys.inbound == route || (route == Inbound::Json && keys.json_secret.is_some())
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The URL a provider should call for `path` (e.g. to configure a number's webhook).
    pub fn url_for(&self, path: &str) -> String {
        join_public(&self.public_url, path)
    }
}

/// `public_url` + a path (and query), keeping any path prefix of the public URL.
pub fn join_public(public_url: &Url, path_and_query: &str) -> String {
    format!(
        "{}{}",
        public_url.as_str().trim_end_matches('/'),
        path_and_query
    )
}

/// The webhook routes, ready to be served or merged into a bigger router.
pub fn router(hooks: Arc<Hooks>) -> Router {
    let counting = Arc::clone(&hooks);
    let routes = Router::new()
        .route(TWILIO_INBOUND, post(twilio_inbound))
        .route(TWILIO_STATUS, post(twilio_status))
        .route(VONAGE_INBOUND, get(vonage_inbound).post(vonage_inbound))
        .route(VONAGE_RECEIPT, get(vonage_receipt).post(vonage_receipt))
        .route(JSON_INBOUND, post(json_inbound))
        .with_state(hooks);
    crate::server::limit_body(routes, BODY_LIMIT, move |path| {
        counting.counters.too_large.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &counting.metrics {
            m.webhook_request(route_name(path), "too_large");
        }
    })
}

/// The route label of a request path, for a refusal made before routing.
fn route_name(path: &str) -> &'static str {
    let prefixes = [
        ("/hooks/twilio/inbound/", "twilio_inbound"),
        ("/hooks/twilio/status/", "twilio_status"),
        ("/hooks/vonage/inbound/", "vonage_inbound"),
        ("/hooks/vonage/receipt/", "vonage_receipt"),
        ("/hooks/json/", "json"),
    ];
    prefixes
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or("other", |(_, name)| name)
}

/// Twilio waits for TwiML; an empty `<Response/>` means "do not reply".
fn twiml_ok() -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response()
}

fn refuse(hooks: &Hooks, route: &str, status: StatusCode, why: &str) -> Response {
    let (counter, result) = match status {
        StatusCode::FORBIDDEN => (&hooks.counters.forbidden, "forbidden"),
        StatusCode::NOT_FOUND => (&hooks.counters.unmatched, "not_found"),
        StatusCode::PAYLOAD_TOO_LARGE => (&hooks.counters.too_large, "too_large"),
        _ => (&hooks.counters.malformed, "malformed"),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(m) = &hooks.metrics {
        m.webhook_request(route, result);
    }
    // A refusal is worth a warning (a wrong public_url makes every callback
    // fail), but a flood of them must not become a flood of log lines: one a
    // second at most, the rest at debug; the metric counts them all.
    let second = hooks.started.elapsed().as_secs() + 1;
    if hooks.last_warned.fetch_max(second, Ordering::Relaxed) < second {
        warn!(%route, status = status.as_u16(), "webhook refused: {why} (at most one such warning a second)");
    } else {
        debug!(%route, status = status.as_u16(), "webhook refused: {why}");
    }
    (status, why.to_string()).into_response()
}

/// Parses a form body; `None` if it is not UTF-8 form encoding.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks `X-Twilio-Signature` against each candidate token.
fn signed(
    hooks: &Hooks,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
    tokens: &[Secret],
) -> bool {
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let url = join_public(&hooks.public_url, path_and_query);
    tokens
        .iter()
        .any(|t| verify_twilio_signature(&url, params, t.expose(), signature))
}

async fn twilio_inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return refuse(&hooks, "twilio_inbound", e.status(), &e.body_text()),
    };
    let at = Instant::now();
    let Some(keys) = hooks.receiver(&receiver, Inbound::Twilio) else {
        return refuse(
            &hooks,
            "twilio_inbound",
            StatusCode::NOT_FOUND,
            "no such Twilio receiver",
        );
    };
    let Some(params) = parse_form(&body) else {
        return refuse(
            &hooks,
            "twilio_inbound",
            StatusCode::BAD_REQUEST,
            "body is not a UTF-8 form",
        );
    };
    if keys.verify && !signed(&hooks, &uri, &headers, &params, keys.twilio.as_slice()) {
        return refuse(
            &hooks,
            "twilio_inbound",
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let (Some(text), Some(from)) = (field(&params, "Body"), field(&params, "From")) else {
        return refuse(
            &hooks,
            "twilio_inbound",
            StatusCode::BAD_REQUEST,
            "inbound message lacks Body or From",
        );
    };
    let matched = hooks.arrived(
        "twilio_inbound",
        &receiver,
        text,
        field(&params, "MessageSid"),
        at,
    );
    debug!(%receiver, from = %mask_number(from), matched, "inbound message");
    twiml_ok()
}

async fn twilio_status(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return refuse(&hooks, "twilio_status", e.status(), &e.body_text()),
    };
    let at = Instant::now();
    let Some(token) = hooks.gateways.get(&gateway).and_then(|k| k.twilio.as_ref()) else {
        return refuse(
            &hooks,
            "twilio_status",
            StatusCode::NOT_FOUND,
            "no such Twilio gateway",
        );
    };
    let Some(params) = parse_form(&body) else {
        return refuse(
            &hooks,
            "twilio_status",
            StatusCode::BAD_REQUEST,
            "body is not a UTF-8 form",
        );
    };
    if !signed(&hooks, &uri, &headers, &params, std::slice::from_ref(token)) {
        return refuse(
            &hooks,
            "twilio_status",
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let status = field(&params, "MessageStatus").or_else(|| field(&params, "SmsStatus"));
    let run = run_token(&uri);
    let (Some(status), Some(run)) = (status, run) else {
        return refuse(
            &hooks,
            "twilio_status",
            StatusCode::BAD_REQUEST,
            "status callback lacks MessageStatus or the run parameter",
        );
    };
    hooks.accepted("twilio_status");
    let receipt = Receipt {
        at,
        status: DeliveryStatus::parse(status),
        error_code: field(&params, "ErrorCode").map(str::to_string),
        explanation: field(&params, "ErrorCode")
            .and_then(|c| c.parse().ok())
            .and_then(crate::gateway::twilio::explain)
            .map(|(_, reason)| reason),
        message_id: field(&params, "MessageSid").map(str::to_string),
    };
    let matched = hooks.inbox.receipt(&run, receipt);
    debug!(%gateway, status, matched, "status callback");
    twiml_ok()
}

/// The `run` query parameter our callback URLs carry: the run's token.
fn run_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "run")
        .map(|(_, v)| v.into_owned())
}

/// Vonage sends parameters in the query (GET), as a form, or as JSON (POST).
fn vonage_params(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    if *method == Method::GET {
        let query = uri.query().unwrap_or("");
        // The query also holds our own `run`, which Vonage did not sign.
        return Some(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "run")
                .collect(),
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return parse_form(body);
    }
    let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect(),
    )
}

/// A Vonage signature is valid under one of `keys` and recent (not a replay).
fn vonage_signed(params: &[(String, String)], keys: &[(Secret, VonageMethod)]) -> bool {
    let fresh = field(params, "timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= VONAGE_MAX_AGE_SECS);
    fresh
        && keys
            .iter()
            .any(|(secret, method)| verify_vonage_signature(params, secret.expose(), *method))
}

async fn vonage_inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return refuse(&hooks, "vonage_inbound", e.status(), &e.body_text()),
    };
    let at = Instant::now();
    let Some(keys) = hooks.receiver(&receiver, Inbound::Vonage) else {
        return refuse(
            &hooks,
            "vonage_inbound",
            StatusCode::NOT_FOUND,
            "no such Vonage receiver",
        );
    };
    let Some(params) = vonage_params(&method, &uri, &headers, &body) else {
        return refuse(
            &hooks,
            "vonage_inbound",
            StatusCode::BAD_REQUEST,
            "body is neither a UTF-8 form nor a JSON object",
        );
    };
    if keys.verify
        && let Some(key) = &keys.vonage
        && !vonage_signed(&params, std::slice::from_ref(key))
    {
        return refuse(
            &hooks,
            "vonage_inbound",
            StatusCode::FORBIDDEN,
            "missing, invalid or stale Vonage sig",
        );
    }
    let (Some(text), Some(from)) = (field(&params, "text"), field(&params, "msisdn")) else {
        return refuse(
            &hooks,
            "vonage_inbound",
            StatusCode::BAD_REQUEST,
            "inbound message lacks text or msisdn",
        );
    };
    let matched = hooks.arrived(
        "vonage_inbound",
        &receiver,
        text,
        field(&params, "messageId"),
        at,
    );
    debug!(%receiver, from = %mask_number(from), matched, "Vonage inbound message");
    StatusCode::OK.into_response()
}

async fn vonage_receipt(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return refuse(&hooks, "vonage_receipt", e.status(), &e.body_text()),
    };
    let at = Instant::now();
    let Some(keys) = hooks.gateways.get(&gateway).filter(|k| k.is_vonage) else {
        return refuse(
            &hooks,
            "vonage_receipt",
            StatusCode::NOT_FOUND,
            "no such Vonage gateway",
        );
    };
    let Some(params) = vonage_params(&method, &uri, &headers, &body) else {
        return refuse(
            &hooks,
            "vonage_receipt",
            StatusCode::BAD_REQUEST,
            "body is neither a UTF-8 form nor a JSON object",
        );
    };
    if let Some(key) = &keys.vonage
        && !vonage_signed(&params, std::slice::from_ref(key))
    {
        return refuse(
            &hooks,
            "vonage_receipt",
            StatusCode::FORBIDDEN,
            "missing, invalid or stale Vonage sig",
        );
    }
    let (Some(status), Some(run)) = (field(&params, "status"), run_token(&uri)) else {
        return refuse(
            &hooks,
            "vonage_receipt",
            StatusCode::BAD_REQUEST,
            "delivery receipt lacks status or the run parameter",
        );
    };
    hooks.accepted("vonage_receipt");
    let status = match status.to_ascii_lowercase().as_str() {
        "accepted" | "buffered" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "failed" | "rejected" | "expired" => DeliveryStatus::Failed,
        other => DeliveryStatus::Other(other.to_string()),
    };
    let code = field(&params, "err-code").map(str::to_string);
    let receipt = Receipt {
        at,
        status,
        explanation: code
            .as_deref()
            .and_then(|c| c.parse().ok())
            .and_then(crate::gateway::vonage::explain_receipt),
        error_code: code,
        message_id: field(&params, "messageId").map(str::to_string),
    };
    let matched = hooks.inbox.receipt(&run, receipt);
    debug!(%gateway, matched, "Vonage delivery receipt");
    StatusCode::OK.into_response()
}

async fn json_inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return refuse(&hooks, "json", e.status(), &e.body_text()),
    };
    let at = Instant::now();
    let Some(keys) = hooks.receiver(&receiver, Inbound::Json) else {
        return refuse(
            &hooks,
            "json",
            StatusCode::NOT_FOUND,
            "no such JSON receiver",
        );
    };
    if keys.verify {
        let Some(secret) = &keys.json_secret else {
            return refuse(
                &hooks,
                "json",
                StatusCode::FORBIDDEN,
                "this receiver has no json_secret to check signatures with",
            );
        };
        let signature = headers
            .get(keys.json_header.as_str())
            .and_then(|v| v.to_str().ok());
        if !signature.is_some_and(|sig| verify_body_signature(&body, secret.expose(), sig)) {
            return refuse(
                &hooks,
                "json",
                StatusCode::FORBIDDEN,
                "missing or invalid body signature",
            );
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return refuse(&hooks, "json", StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(text) = keys.json_body.first(&value).and_then(|v| v.as_str()) else {
        return refuse(
            &hooks,
            "json",
            StatusCode::BAD_REQUEST,
            "no message text at the receiver's json_body path",
        );
    };
    let message_id = value.get("id").and_then(|v| v.as_str());
    let matched = hooks.arrived("json", &receiver, text, message_id, at);
    debug!(%receiver, matched, "JSON inbound message");
    StatusCode::OK.into_response()
}
