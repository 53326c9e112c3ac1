//! Vonage's webhooks: inbound messages and delivery receipts, as a GET
//! query, a form or JSON. When the account has a signature secret, each must
//! carry a valid, fresh `sig` made with the secret of the receiver's own
//! gateway (Vonage signs only on request).
//!
//! - `GET|POST /hooks/vonage/inbound/{receiver}`: an inbound message;
//! - `GET|POST /hooks/vonage/receipt/{gateway}?run={token}`: a delivery receipt.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;
use tracing::debug;

use super::signature::{self, SignatureMethod};
use crate::net::field;
use crate::providers::GatewayConfig;
use crate::receiver::webhook::{Hooks, Route, parse_form, run_token};
use crate::receiver::{DeliveryStatus, Receipt};
use crate::redact::{Secret, mask_number};

/// Where a Vonage number's inbound messages are posted.
pub const INBOUND: Route = Route {
    name: "vonage_inbound",
    path: "/hooks/vonage/inbound/{receiver}",
    what: "Vonage inbound",
};

/// Where a gateway's delivery receipts are posted (the URL goes with each message).
pub const RECEIPT: Route = Route {
    name: "vonage_receipt",
    path: "/hooks/vonage/receipt/{gateway}",
    what: "Vonage delivery receipts",
};

/// How old a signed request may be before it counts as a replay.
const MAX_AGE_SECS: i64 = 300;

/// The routes, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(INBOUND.path, get(inbound).post(inbound))
        .route(RECEIPT.path, get(receipt).post(receipt))
        .with_state(hooks)
}

/// A Vonage gateway's settings, if `gateway` is one.
fn account(gateway: &GatewayConfig) -> Option<&super::config::VonageGatewayConfig> {
    match gateway {
        GatewayConfig::Vonage(v) => Some(v),
        _ => None,
    }
}

/// The secret and method that sign a Vonage account's callbacks, if it signs.
fn signing_key(gateway: &super::config::VonageGatewayConfig) -> Option<(&Secret, SignatureMethod)> {
    gateway
        .signature_secret
        .as_ref()
        .map(|s| (s, gateway.signature_method))
}

/// Vonage sends parameters in the query (GET), as a form, or as JSON (POST).
fn params(
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

/// A signature valid under `key` and recent (not a replay).
fn signed(params: &[(String, String)], (secret, method): (&Secret, SignatureMethod)) -> bool {
    let fresh = field(params, "timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= MAX_AGE_SECS);
    fresh && signature::verify(params, secret.expose(), method)
}

async fn inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = &INBOUND;
    let body = match hooks.body(route, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let at = Instant::now();
    let Some(keys) = hooks.receiver(&receiver, route) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Vonage receiver");
    };
    let Some(params) = params(&method, &uri, &headers, &body) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "body is neither a UTF-8 form nor a JSON object",
        );
    };
    let key = hooks
        .gateway_of(keys)
        .and_then(account)
        .and_then(signing_key);
    if keys.verify()
        && let Some(key) = key
        && !signed(&params, key)
    {
        return hooks.refuse(
            route,
            StatusCode::FORBIDDEN,
            "missing, invalid or stale Vonage sig",
        );
    }
    let (Some(text), Some(from)) = (field(&params, "text"), field(&params, "msisdn")) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "inbound message lacks text or msisdn",
        );
    };
    let matched = hooks.arrived(route, &receiver, text, field(&params, "messageId"), at);
    debug!(%receiver, from = %mask_number(from), matched, "Vonage inbound message");
    StatusCode::OK.into_response()
}

async fn receipt(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = &RECEIPT;
    let body = match hooks.body(route, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let at = Instant::now();
    let Some(settings) = hooks.gateway(&gateway).and_then(account) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Vonage gateway");
    };
    let Some(params) = params(&method, &uri, &headers, &body) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "body is neither a UTF-8 form nor a JSON object",
        );
    };
    if let Some(key) = signing_key(settings)
        && !signed(&params, key)
    {
        return hooks.refuse(
            route,
            StatusCode::FORBIDDEN,
            "missing, invalid or stale Vonage sig",
        );
    }
    let (Some(status), Some(run)) = (field(&params, "status"), run_token(&uri)) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "delivery receipt lacks status or the run parameter",
        );
    };
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
            .and_then(super::gateway::explain_receipt),
        error_code: code,
        message_id: field(&params, "messageId").map(str::to_string),
    };
    let matched = hooks.receipt(route, &run, receipt);
    debug!(%gateway, matched, "Vonage delivery receipt");
    StatusCode::OK.into_response()
}
