//! Your own system's webhook: `POST /hooks/json/{receiver}`, a JSON body
//! signed with the receiver's `json_secret` (HMAC-SHA256 in a header, the
//! generic signature of [`crate::signing`]), the text at its `json_body` path.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::time::Instant;
use tracing::debug;

use crate::receiver::webhook::{Hooks, Route};
use crate::signing::verify_body_signature;

/// Where your own system posts inbound messages.
pub const JSON: Route = Route {
    name: "json",
    path: "/hooks/json/{receiver}",
    what: "JSON inbound",
};

/// The route, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(JSON.path, post(inbound))
        .with_state(hooks)
}

async fn inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = &JSON;
    let body = match hooks.body(route, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let at = Instant::now();
    let Some(keys) = hooks.receiver(&receiver, route) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such JSON receiver");
    };
    let settings = &keys.settings;
    if keys.verify() {
        let Some(secret) = &settings.json_secret else {
            return hooks.refuse(
                route,
                StatusCode::FORBIDDEN,
                "this receiver has no json_secret to check signatures with",
            );
        };
        let signature = headers
            .get(settings.json_signature_header.as_str())
            .and_then(|v| v.to_str().ok());
        if !signature.is_some_and(|sig| verify_body_signature(&body, secret.expose(), sig)) {
            return hooks.refuse(
                route,
                StatusCode::FORBIDDEN,
                "missing or invalid body signature",
            );
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(text) = settings.json_body.first(&value).and_then(|v| v.as_str()) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "no message text at the receiver's json_body path",
        );
    };
    let message_id = value.get("id").and_then(|v| v.as_str());
    let matched = hooks.arrived(route, &receiver, text, message_id, at);
    debug!(%receiver, matched, "JSON inbound message");
    StatusCode::OK.into_response()
}
