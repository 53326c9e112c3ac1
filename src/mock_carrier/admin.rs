//! The admin API under `/_mock/`: faults at run time, every message, reset.
//!
//! Chaos drills and reliability tests drive the mock from outside the
//! process through these routes, so they sit on the same server as the
//! provider APIs. They take no credentials: the mock is the tester's own,
//! and for the same reason numbers are shown in full here.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::faults::Faults;
use super::{Direction, InboundFormat, Message, Shared, Status, lock};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_mock/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_mock/messages", get(list_messages))
        .route("/_mock/reset", post(reset))
        .with_state(shared)
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn faults_json(faults: &Faults) -> Response {
    axum::Json(faults).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    faults_json(&lock(&shared.faults).current())
}

/// Replaces the faults with the body's; what is not in it is off.
async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(e) => return bad_request(format!("invalid faults: {e}")),
    };
    if let Err(e) = faults.validate() {
        return bad_request(e.to_string());
    }
    let mut state = lock(&shared.faults);
    state.set(faults);
    faults_json(&state.current())
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    let mut state = lock(&shared.faults);
    state.set(Faults::default());
    faults_json(&state.current())
}

/// Every message of both APIs, newest first.
async fn list_messages(State(shared): State<Arc<Shared>>) -> Response {
    let messages: Vec<Value> = shared.store().newest_first().map(render).collect();
    axum::Json(json!({ "messages": messages })).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

fn render(m: &Message) -> Value {
    let date = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "id": m.sid,
        "api": m.api.as_str(),
        "direction": m.direction.as_str(),
        "from": m.from,
        "to": m.to,
        "body": m.body,
        "status": status(m),
        "error_code": m.error_code,
        "client_ref": m.client_ref,
        "date_created": date(&m.date_created),
        "date_updated": date(&m.date_updated),
        "date_sent": m.date_sent.as_ref().map(date),
    })
}

/// Each API's own word for the state, as its clients would see it.
fn status(m: &Message) -> &'static str {
    match (m.api, m.direction, m.status) {
        (InboundFormat::Twilio, _, s) | (InboundFormat::Vonage, Direction::Inbound, s) => {
            s.as_str()
        }
        (InboundFormat::Vonage, _, Status::Queued) => "submitted",
        (InboundFormat::Vonage, _, Status::Sent) => "accepted",
        (InboundFormat::Vonage, _, Status::Delivered) => "delivered",
        (InboundFormat::Vonage, _, Status::Undelivered) => "failed",
        (InboundFormat::Vonage, _, Status::Received) => "received",
    }
}
