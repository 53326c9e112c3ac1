//! The admin API under `/_mock/`: faults at run time, every message, reset.
//!
//! Chaos drills and reliability tests drive the mock from outside the
//! process through these routes, so they sit on the same server as the
//! provider APIs. With an admin token (`--admin-token`) every route needs
//! `Authorization: Bearer <token>`; without one they are open, as befits a
//! tester's own mock on loopback. `/_mock/messages` masks phone numbers
//! unless asked for them in full (`?numbers=full`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::faults::Faults;
use super::{Message, Shared, lock};
use crate::redact::mask_number;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_mock/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_mock/messages", get(list_messages))
        .route("/_mock/reset", post(reset))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            authorize,
        ))
        .with_state(shared)
}

/// With an admin token set, a request must carry it (compared in constant time).
async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(token) = &shared.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({
                    "error": "the mock's admin API needs Authorization: Bearer <its --admin-token>"
                })),
            )
                .into_response();
        }
    }
    next.run(request).await
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

#[derive(serde::Deserialize)]
struct ListQuery {
    /// `full` shows phone numbers unmasked.
    numbers: Option<String>,
}

/// Every message of both APIs, newest first.
async fn list_messages(State(shared): State<Arc<Shared>>, Query(q): Query<ListQuery>) -> Response {
    let full = match q.numbers.as_deref() {
        None | Some("masked") => false,
        Some("full") => true,
        Some(other) => {
            return bad_request(format!(
                "numbers={other}: use numbers=full, or leave it out for masked numbers"
            ));
        }
    };
    let messages: Vec<Value> = shared
        .store()
        .newest_first()
        .map(|m| render(m, full))
        .collect();
    axum::Json(json!({ "messages": messages })).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

fn render(m: &Message, full: bool) -> Value {
    let date = |d: &DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
    let number = |n: &str| if full { n.to_string() } else { mask_number(n) };
    json!({
        "id": m.sid,
        "api": m.api.as_str(),
        "direction": m.direction.as_str(),
        "from": number(&m.from),
        "to": number(&m.to),
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
    m.api.status_word(m)
}
