//! The app's webhooks: JSON events `{deviceId, event, id, webhookId,
//! payload}` signed as [`super::signature`] says, with the signing key of
//! the receiver (or gateway) the URL names, never another's.
//!
//! - `POST /hooks/android/{receiver}`: `sms:received` is an inbound message,
//!   `system:ping` a sign of life; other events are taken and ignored;
//! - `POST /hooks/android/receipt/{gateway}`: `sms:sent`, `sms:delivered`
//!   and `sms:failed` for the messages the gateway sent, found by the id we
//!   gave each message (its run's correlation id).
//!
//! Every event is checked in this order: signature and its 5-minute window
//! (403), shape (400), device and webhook ids when configured (403), then
//! its `id`: the app retries an event until it sees a 2xx, for days, so an
//! id taken before is answered 200 and handed on to nothing. The payload's
//! `messageId` is no such key: the app derives it from the content, so two
//! probes' messages may share one. `receivedAt` is the phone's local time
//! with no zone: latency is measured on our clock, when the event arrives.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::time::Instant;
use tracing::debug;

use super::signature::{self, Refused};
use crate::probe::Correlation;
use crate::providers::{GatewayConfig, ReceiverConfig};
use crate::receiver::webhook::{Hooks, Route};
use crate::receiver::{DeliveryStatus, Receipt};
use crate::redact::{Secret, mask_number};

/// Where a receiving phone posts its events.
pub const INBOUND: Route = Route {
    name: "android_inbound",
    path: "/hooks/android/{receiver}",
    what: "Android inbound and pings",
};

/// Where a sending phone posts its messages' receipts.
pub const RECEIPT: Route = Route {
    name: "android_receipt",
    path: "/hooks/android/receipt/{gateway}",
    what: "Android receipts",
};

/// The events a receiving phone's webhooks are registered for.
pub const INBOUND_EVENTS: &[&str] = &["sms:received", "system:ping"];
/// The events a sending phone's webhooks are registered for.
pub const RECEIPT_EVENTS: &[&str] = &["sms:sent", "sms:delivered", "sms:failed"];

/// The routes, for the registry to mount.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route(INBOUND.path, post(inbound))
        .route(RECEIPT.path, post(receipt))
        .with_state(hooks)
}

/// An event as the app posts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub device_id: Option<String>,
    pub webhook_id: Option<String>,
    pub payload: Value,
}

/// Reads an event; `None` if the body is not one.
pub fn parse_event(body: &[u8]) -> Option<Event> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let id = text("id").filter(|id| !id.trim().is_empty())?;
    Some(Event {
        id,
        event: text("event")?,
        device_id: text("deviceId"),
        webhook_id: text("webhookId"),
        payload: value.get("payload").filter(|p| p.is_object())?.clone(),
    })
}

/// What checks a phone's events: its signing key and, when configured, the
/// device and webhooks it must come from.
struct Expected<'a> {
    signing_key: &'a Secret,
    device_id: Option<&'a str>,
    webhook_ids: &'a [String],
}

impl Expected<'_> {
    fn signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        signature::verify(
            self.signing_key.expose(),
            header("x-timestamp"),
            header("x-signature"),
            body,
            now,
        )
        .map_err(|refused| match refused {
            Refused::Malformed => "missing or malformed X-Signature or X-Timestamp",
            Refused::Stale => "X-Timestamp more than 5 minutes from now (a replay?)",
            Refused::Forged => "X-Signature does not verify",
        })
    }

    fn source(&self, event: &Event) -> Result<(), &'static str> {
        if let Some(device) = self.device_id
            && event.device_id.as_deref() != Some(device)
        {
            return Err("the event comes from another device than the configured device_id");
        }
        if !self.webhook_ids.is_empty()
            && !event
                .webhook_id
                .as_ref()
                .is_some_and(|w| self.webhook_ids.contains(w))
        {
            return Err("the event comes from a webhook not in webhook_ids");
        }
        Ok(())
    }
}

/// Checks a request against `expected`: the event, or the answer refusing it.
fn accept(
    hooks: &Hooks,
    route: &Route,
    expected: &Expected<'_>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Event, Box<Response>> {
    if let Err(why) = expected.signature(headers, body) {
        return Err(Box::new(hooks.refuse(route, StatusCode::FORBIDDEN, why)));
    }
    let Some(event) = parse_event(body) else {
        return Err(Box::new(hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "body is not an SMS Gateway for Android event (id, event, payload)",
        )));
    };
    if let Err(why) = expected.source(&event) {
        return Err(Box::new(hooks.refuse(route, StatusCode::FORBIDDEN, why)));
    }
    if !hooks.first_delivery(route, &event.id) {
        return Err(Box::new(hooks.duplicate(route)));
    }
    Ok(event)
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
    let Some(ReceiverConfig::Android(config)) = hooks.receiver_config(&receiver) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Android receiver");
    };
    let expected = Expected {
        signing_key: &config.signing_key,
        device_id: config.device_id.as_deref(),
        webhook_ids: &config.webhook_ids,
    };
    let event = match accept(&hooks, route, &expected, &headers, &body) {
        Ok(event) => event,
        Err(refused) => return *refused,
    };
    match event.event.as_str() {
        "sms:received" => {
            let text = event.payload.get("message").and_then(Value::as_str);
            let from = ["phoneNumber", "sender"]
                .iter()
                .find_map(|f| event.payload.get(*f).and_then(Value::as_str));
            let (Some(text), Some(from)) = (text, from) else {
                return hooks.refuse(
                    route,
                    StatusCode::BAD_REQUEST,
                    "sms:received lacks message or phoneNumber",
                );
            };
            hooks.heard_from(&receiver);
            let id = event.payload.get("messageId").and_then(Value::as_str);
            let matched = hooks.arrived(route, &receiver, text, id, at);
            debug!(%receiver, from = %mask_number(from), matched, "Android inbound message");
        }
        other => {
            // A ping, or an event the phone was asked for that we do not
            // use: a sign of life all the same.
            hooks.heard_from(&receiver);
            hooks.accepted(route);
            debug!(%receiver, event = %other, "Android event");
        }
    }
    StatusCode::OK.into_response()
}

/// A receipt event's status, as the providers' common vocabulary has it.
pub fn delivery_status(event: &str) -> Option<DeliveryStatus> {
    match event {
        "sms:sent" => Some(DeliveryStatus::Sent),
        "sms:delivered" => Some(DeliveryStatus::Delivered),
        "sms:failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

async fn receipt(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let route = &RECEIPT;
    let body = match hooks.body(route, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let at = Instant::now();
    let Some(GatewayConfig::Android(config)) = hooks.gateway(&gateway) else {
        return hooks.refuse(route, StatusCode::NOT_FOUND, "no such Android gateway");
    };
    let expected = Expected {
        signing_key: &config.signing_key,
        device_id: config.device_id.as_deref(),
        webhook_ids: &config.webhook_ids,
    };
    let event = match accept(&hooks, route, &expected, &headers, &body) {
        Ok(event) => event,
        Err(refused) => return *refused,
    };
    let Some(status) = delivery_status(&event.event) else {
        // A ping or another event sent here too: nothing for a run.
        hooks.accepted(route);
        return StatusCode::OK.into_response();
    };
    let Some(message_id) = event.payload.get("messageId").and_then(Value::as_str) else {
        return hooks.refuse(
            route,
            StatusCode::BAD_REQUEST,
            "a receipt event lacks payload.messageId",
        );
    };
    let reason = event
        .payload
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let receipt = Receipt {
        at,
        status,
        error_code: reason.and_then(super::gateway::failure_code),
        explanation: reason.and_then(super::gateway::explain_failure),
        message_id: Some(message_id.to_string()),
    };
    // We gave each message its run's correlation id as its id.
    let run = Correlation::token_of(message_id);
    let matched = hooks.receipt(route, &run, receipt);
    debug!(%gateway, event = %event.event, matched, "Android receipt");
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_and_garbage_is_not() {
        let body = br#"{"deviceId":"d1","event":"sms:received","id":"e1","webhookId":"w1","payload":{"messageId":"m","message":"hi","phoneNumber":"+15005550006","simNumber":1,"receivedAt":"2024-06-07T11:41:31.000+07:00"}}"#;
        let event = parse_event(body).unwrap();
        assert_eq!(event.id, "e1");
        assert_eq!(event.event, "sms:received");
        assert_eq!(event.device_id.as_deref(), Some("d1"));
        assert_eq!(event.webhook_id.as_deref(), Some("w1"));
        for garbage in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"id":"","event":"sms:received","payload":{}}"#,
            br#"{"id":"e","event":"sms:received"}"#,
            br#"{"id":"e","event":"sms:received","payload":"x"}"#,
            br#"{"id":1,"event":"sms:received","payload":{}}"#,
            &[0xff; 3],
        ] {
            assert!(parse_event(garbage).is_none());
        }
        assert_eq!(delivery_status("sms:failed"), Some(DeliveryStatus::Failed));
        assert_eq!(delivery_status("system:ping"), None);
    }

    #[test]
    fn device_and_webhook_must_be_the_configured_ones() {
        let key = Secret::new("k");
        let webhooks = vec!["w1".to_string()];
        let expected = Expected {
            signing_key: &key,
            device_id: Some("d1"),
            webhook_ids: &webhooks,
        };
        let event = |device: Option<&str>, webhook: Option<&str>| Event {
            id: "e".into(),
            event: "sms:received".into(),
            device_id: device.map(str::to_string),
            webhook_id: webhook.map(str::to_string),
            payload: Value::Null,
        };
        assert!(expected.source(&event(Some("d1"), Some("w1"))).is_ok());
        assert!(expected.source(&event(Some("d2"), Some("w1"))).is_err());
        assert!(expected.source(&event(None, Some("w1"))).is_err());
        assert!(expected.source(&event(Some("d1"), Some("w2"))).is_err());
        assert!(expected.source(&event(Some("d1"), None)).is_err());
        let open = Expected {
            signing_key: &key,
            device_id: None,
            webhook_ids: &[],
        };
        assert!(open.source(&event(None, None)).is_ok());
    }
}
