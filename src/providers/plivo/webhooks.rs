//! Plivo's webhooks: inbound messages (the application's message URL) and
//! status callbacks (each message's own URL), as a form POST or a GET query,
//! signed with the Auth Token of the receiver's own gateway (see
//! [`super::signature`]).
//!
//! - `GET|POST /hooks/plivo/inbound/{receiver}`: an inbound message;
//! - `GET|POST /hooks/plivo/status/{gateway}?run={token}`: a status callback.
//!
//! A request with V3 headers must carry a valid V3 signature. One with only
//! V2's is checked by V2, which covers no parameter: a nonce seen once is
//! refused after that (see [`SeenOnce`]), so a captured signature cannot be
//! replayed with other words.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use super::signature;
use crate::net::field;
use crate::providers::GatewayConfig;
use crate::receiver::webhook::{Hooks, Route, SeenOnce, parse_form, run_token};
use crate::receiver::{DeliveryStatus, Receipt};
use crate::redact::{Secret, mask_number};

/// Where a Plivo application posts its numbers' inbound messages.
pub const INBOUND: Route = Route {
    name: "plivo_inbound",
    path: "/hooks/plivo/inbound/{receiver}",
    what: "Plivo inbound",
};

/// Where a gateway's status callbacks come (the URL goes with each message).
pub const STATUS: Route = Route {
    name: "plivo_status",
    path: "/hooks/plivo/status/{gateway}",
    what: "Plivo status callbacks",
};

/// The routes, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(INBOUND.path, get(inbound).post(inbound))
        .route(STATUS.path, get(status).post(status))
        .with_state(hooks)
}

/// The Auth Token that signs a Plivo gateway's callbacks.
fn auth_token(gateway: &GatewayConfig) -> Option<&Secret> {
    match gateway {
        GatewayConfig::Plivo(p) => Some(&p.auth_token),
        _ => None,
    }
}

/// V2 nonces already taken.
fn nonces() -> &'static Mutex<SeenOnce> {
    static NONCES: std::sync::OnceLock<Mutex<SeenOnce>> = std::sync::OnceLock::new();
    NONCES.get_or_init(Mutex::default)
}

/// The parameters of a callback: the query of a GET (our own `run` aside),
/// the form of a POST.
fn params(method: &Method, uri: &Uri, body: &[u8]) -> Option<Vec<(String, String)>> {
    if *method == Method::GET {
        let query = uri.query().unwrap_or("");
        return Some(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "run")
                .collect(),
        );
    }
    parse_form(body)
}

/// Checks the signature headers of a request Plivo made to `url`.
fn check(
    token: &Secret,
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    body_params: &[(String, String)],
) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Ok(url) = Url::parse(url) else {
        return Err("the URL called is not a URL");
    };
    let is_get = *method == Method::GET;
    if let (Some(sig), Some(nonce)) = (
        header("x-plivo-signature-v3"),
        header("x-plivo-signature-v3-nonce"),
    ) {
        // A GET is signed over its whole query, which holds the parameters.
        let posted: &[(String, String)] = if is_get { &[] } else { body_params };
        return if signature::verify_v3(token.expose(), is_get, &url, posted, nonce, sig) {
            Ok(())
        } else {
            Err("X-Plivo-Signature-V3 does not verify")
        };
    }
    if let (Some(sig), Some(nonce)) = (
        header("x-plivo-signature-v2"),
        header("x-plivo-signature-v2-nonce"),
    ) {
        if !signature::verify_v2(token.expose(), &url, nonce, sig) {
            return Err("X-Plivo-Signature-V2 does not verify");
        }
        let fresh = nonces()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_use(nonce);
        return if fresh {
            Ok(())
        } else {
            Err("X-Plivo-Signature-V2 nonce used before (a replay?)")
        };
    }
    Err("missing X-Plivo-Signature-V3 (or -V2) and its nonce")
}

/// A status as Plivo's callbacks write it.
pub fn delivery_status(status: &str) -> DeliveryStatus {
    match status.to_ascii_lowercase().as_str() {
        "queued" => DeliveryStatus::Queued,
        "sent" => DeliveryStatus::Sent,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "rejected" => DeliveryStatus::Failed,
        other => DeliveryStatus::Other(other.to_string()),
    }
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
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Plivo receiver");
    };
    let Some(params) = params(&method, &uri, &body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    if keys.verify() {
        let Some(token) = hooks.gateway_of(keys).and_then(auth_token) else {
            return hooks.refuse(route, StatusCode::FORBIDDEN, "no auth token to check with");
        };
        if let Err(why) = check(token, &method, &hooks.called_url(&uri), &headers, &params) {
            return hooks.refuse(route, StatusCode::FORBIDDEN, why);
        }
    }
    let (Some(text), Some(from)) = (field(&params, "Text"), field(&params, "From")) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "inbound message lacks Text or From",
        );
    };
    let matched = hooks.arrived(route, &receiver, text, field(&params, "MessageUUID"), at);
    debug!(%receiver, from = %mask_number(from), matched, "Plivo inbound message");
    StatusCode::OK.into_response()
}

async fn status(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    method: Method,
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
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Plivo gateway");
    };
    let Some(params) = params(&method, &uri, &body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    if let Err(why) = check(token, &method, &hooks.called_url(&uri), &headers, &params) {
        return hooks.refuse(route, StatusCode::FORBIDDEN, why);
    }
    let (Some(status), Some(run)) = (field(&params, "Status"), run_token(&uri)) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "status callback lacks Status or the run parameter",
        );
    };
    let code = field(&params, "ErrorCode")
        .filter(|c| !c.is_empty() && *c != "0" && *c != "000")
        .map(str::to_string);
    let receipt = Receipt {
        at,
        status: delivery_status(status),
        explanation: code
            .as_deref()
            .and_then(|c| c.parse().ok())
            .and_then(super::gateway::explain_receipt),
        error_code: code,
        message_id: field(&params, "MessageUUID").map(str::to_string),
    };
    let matched = hooks.receipt(route, &run, receipt);
    debug!(%gateway, status, matched, "Plivo status callback");
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_nonces_are_taken_once() {
        let mut n = SeenOnce::default();
        assert!(n.first_use("a"));
        assert!(!n.first_use("a"));
        assert_eq!(delivery_status("undelivered"), DeliveryStatus::Undelivered);
        assert_eq!(delivery_status("FAILED"), DeliveryStatus::Failed);
    }
}
