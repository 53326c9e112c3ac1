//! Twilio's webhooks: inbound messages and status callbacks, signed with
//! `X-Twilio-Signature` over our *public* URL (the one Twilio called) and
//! the POSTed form, with the auth token of the receiver's own gateway.
//!
//! - `POST /hooks/twilio/inbound/{receiver}`: an inbound message;
//! - `POST /hooks/twilio/status/{gateway}?run={token}`: a status callback.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::time::Instant;
use tracing::debug;

use super::signature;
use crate::net::field;
use crate::providers::GatewayConfig;
use crate::receiver::webhook::{Hooks, Route, parse_form, run_token};
use crate::receiver::{DeliveryStatus, Receipt};
use crate::redact::{Secret, mask_number};

/// Where a Twilio number's inbound messages are posted.
pub const INBOUND: Route = Route {
    name: "twilio_inbound",
    path: "/hooks/twilio/inbound/{receiver}",
    what: "Twilio inbound",
};

/// Where a gateway's status callbacks are posted (the URL goes with each message).
pub const STATUS: Route = Route {
    name: "twilio_status",
    path: "/hooks/twilio/status/{gateway}",
    what: "Twilio status callbacks",
};

/// The routes, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(INBOUND.path, post(inbound))
        .route(STATUS.path, post(status))
        .with_state(hooks)
}

/// The auth token that signs a gateway's Twilio callbacks: a Twilio
/// account's, or an in-process mock's (which speaks Twilio).
pub fn auth_token(gateway: &GatewayConfig) -> Option<&Secret> {
    match gateway {
        GatewayConfig::Twilio(t) => Some(&t.auth_token),
        GatewayConfig::Mock(m) => Some(&m.auth_token),
        _ => None,
    }
}

/// Twilio waits for TwiML; an empty `<Response/>` means "do not reply".
fn twiml_ok() -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response()
}

/// Checks `X-Twilio-Signature` with `token`.
fn signed(
    hooks: &Hooks,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
    token: Option<&Secret>,
) -> bool {
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let url = hooks.called_url(uri);
    token.is_some_and(|t| signature::verify(&url, params, t.expose(), signature))
}

async fn inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
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
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Twilio receiver");
    };
    let Some(params) = parse_form(&body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    let token = hooks.gateway_of(keys).and_then(auth_token);
    if keys.verify() && !signed(&hooks, &uri, &headers, &params, token) {
        return hooks.refuse(
            route,
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let (Some(text), Some(from)) = (field(&params, "Body"), field(&params, "From")) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "inbound message lacks Body or From",
        );
    };
    let matched = hooks.arrived(route, &receiver, text, field(&params, "MessageSid"), at);
    debug!(%receiver, from = %mask_number(from), matched, "inbound message");
    twiml_ok()
}

async fn status(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = &STATUS;
    let body = match hooks.body(route, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let at = Instant::now();
    let Some(token) = hooks.gateway(&gateway).and_then(auth_token) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Twilio gateway");
    };
    let Some(params) = parse_form(&body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    if !signed(&hooks, &uri, &headers, &params, Some(token)) {
        return hooks.refuse(
            route,
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let status = field(&params, "MessageStatus").or_else(|| field(&params, "SmsStatus"));
    let (Some(status), Some(run)) = (status, run_token(&uri)) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "status callback lacks MessageStatus or the run parameter",
        );
    };
    let code = field(&params, "ErrorCode");
    let receipt = Receipt {
        at,
        status: DeliveryStatus::parse(status),
        error_code: code.map(str::to_string),
        explanation: code
            .and_then(|c| c.parse().ok())
            .and_then(super::gateway::explain)
            .map(|(_, reason)| reason),
        message_id: field(&params, "MessageSid").map(str::to_string),
    };
    let matched = hooks.receipt(route, &run, receipt);
    debug!(%gateway, status, matched, "status callback");
    twiml_ok()
}
