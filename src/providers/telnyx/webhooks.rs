//! Telnyx's webhooks: JSON events signed with Ed25519 (see [`super::signature`])
//! with the public key of the receiver's own gateway.
//!
//! - `POST /hooks/telnyx/inbound/{receiver}`: the messaging profile's
//!   webhook; `message.received` is an inbound message, other events there
//!   are taken and ignored;
//! - `POST /hooks/telnyx/status/{gateway}?run={token}`: a message's own
//!   webhook URL: `message.sent`, then `message.finalized` with the
//!   recipient's final status and, on failure, Telnyx's error codes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::time::Instant;
use tracing::debug;

use super::signature::{self, PublicKey, Refused};
use crate::providers::GatewayConfig;
use crate::receiver::webhook::{Hooks, Route, run_token};
use crate::receiver::{DeliveryStatus, Receipt};
use crate::redact::mask_number;

/// Where a Telnyx number's messaging profile posts its events.
pub const INBOUND: Route = Route {
    name: "telnyx_inbound",
    path: "/hooks/telnyx/inbound/{receiver}",
    what: "Telnyx inbound",
};

/// Where a gateway's message events are posted (the URL goes with each message).
pub const STATUS: Route = Route {
    name: "telnyx_status",
    path: "/hooks/telnyx/status/{gateway}",
    what: "Telnyx message events",
};

/// The routes, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(INBOUND.path, post(inbound))
        .route(STATUS.path, post(status))
        .with_state(hooks)
}

/// The public key that checks a Telnyx gateway's webhooks.
fn public_key(gateway: &GatewayConfig) -> Option<&PublicKey> {
    match gateway {
        GatewayConfig::Telnyx(t) => Some(&t.public_key),
        _ => None,
    }
}

/// Checks the signature headers over the raw body.
fn check(key: &PublicKey, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        key,
        header("telnyx-timestamp"),
        header("telnyx-signature-ed25519"),
        body,
        now,
    )
    .map_err(|refused| match refused {
        Refused::Malformed => "missing or malformed telnyx-signature-ed25519 or telnyx-timestamp",
        Refused::Stale => "telnyx-timestamp more than 5 minutes from now (a replay?)",
        Refused::Forged => "telnyx-signature-ed25519 does not verify",
    })
}

/// An event as Telnyx posts it: `{"data": {"event_type", "payload"}}`.
pub struct Event {
    pub event_type: String,
    pub payload: Value,
}

/// Reads an event; `None` if the body is not one.
pub fn parse_event(body: &[u8]) -> Option<Event> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let data = value.get("data")?;
    Some(Event {
        event_type: data.get("event_type")?.as_str()?.to_string(),
        payload: data.get("payload")?.clone(),
    })
}

/// The first error code of a payload, as text.
fn error_code(payload: &Value) -> Option<String> {
    match payload.get("errors")?.as_array()?.first()?.get("code")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A message's status as a receipt tells it: the recipient's status.
pub fn delivery_status(event_type: &str, payload: &Value) -> DeliveryStatus {
    let to = payload
        .get("to")
        .and_then(Value::as_array)
        .and_then(|to| to.first())
        .and_then(|to| to.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match (event_type, to) {
        (_, "delivered") => DeliveryStatus::Delivered,
        (_, "delivery_failed" | "sending_failed") => DeliveryStatus::Failed,
        ("message.sent", _) | (_, "sent") => DeliveryStatus::Sent,
        (_, "queued" | "sending") => DeliveryStatus::Queued,
        (_, other) => DeliveryStatus::Other(other.to_string()),
    }
}

async fn inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
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
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Telnyx receiver");
    };
    if keys.verify() {
        let Some(key) = hooks.gateway_of(keys).and_then(public_key) else {
            return hooks.refuse(route, StatusCode::FORBIDDEN, "no public key to check with");
        };
        if let Err(why) = check(key, &headers, &body) {
            return hooks.refuse(route, StatusCode::FORBIDDEN, why);
        }
    }
    let Some(event) = parse_event(&body) else {
        return hooks.refuse(route, StatusCode::BAD_REQUEST, "body is not a Telnyx event");
    };
    if event.event_type != "message.received" {
        // The profile's webhook also tells of its outbound messages.
        return StatusCode::OK.into_response();
    }
    let payload = &event.payload;
    let text = payload.get("text").and_then(Value::as_str);
    let from = payload
        .pointer("/from/phone_number")
        .and_then(Value::as_str);
    let (Some(text), Some(from)) = (text, from) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "message.received lacks text or from.phone_number",
        );
    };
    let id = payload.get("id").and_then(Value::as_str);
    let matched = hooks.arrived(route, &receiver, text, id, at);
    debug!(%receiver, from = %mask_number(from), matched, "Telnyx inbound message");
    StatusCode::OK.into_response()
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
    let Some(key) = hooks.gateway(&gateway).and_then(public_key) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Telnyx gateway");
    };
    if let Err(why) = check(key, &headers, &body) {
        return hooks.refuse(route, StatusCode::FORBIDDEN, why);
    }
    let (Some(event), Some(run)) = (parse_event(&body), run_token(&uri)) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "not a Telnyx event, or the run parameter is missing",
        );
    };
    let code = error_code(&event.payload);
    let receipt = Receipt {
        at,
        status: delivery_status(&event.event_type, &event.payload),
        explanation: code
            .as_deref()
            .and_then(|c| c.parse().ok())
            .and_then(super::gateway::explain_receipt),
        error_code: code,
        message_id: event
            .payload
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let matched = hooks.receipt(route, &run, receipt);
    debug!(%gateway, event = %event.event_type, matched, "Telnyx message event");
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_statuses_are_read() {
        let body = br#"{"data":{"event_type":"message.finalized","payload":{"id":"m1","to":[{"phone_number":"+15005550100","status":"delivery_failed"}],"errors":[{"code":"40001","title":"Not routable"}]}}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(event.event_type, "message.finalized");
        assert_eq!(
            delivery_status(&event.event_type, &event.payload),
            DeliveryStatus::Failed
        );
        assert_eq!(error_code(&event.payload).as_deref(), Some("40001"));
        let sent = serde_json::json!({"to":[{"status":"sent"}]});
        assert_eq!(delivery_status("message.sent", &sent), DeliveryStatus::Sent);
        let done = serde_json::json!({"to":[{"status":"delivered"}]});
        assert_eq!(
            delivery_status("message.finalized", &done),
            DeliveryStatus::Delivered
        );
        for garbage in [
            &b""[..],
            b"{}",
            br#"{"data":{}}"#,
            br#"{"data":{"event_type":1}}"#,
            &[0xff; 3],
        ] {
            assert!(parse_event(garbage).is_none());
        }
    }
}
