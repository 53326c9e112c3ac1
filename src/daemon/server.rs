//! The daemon's HTTP endpoints, next to the webhook routes.
//!
//! - `GET /healthz`: 200 only if the scheduler ticked recently, the store
//!   takes a write and no store operation failed in the last minute — what a
//!   liveness probe should restart on;
//! - `GET /readyz`: 200 once the daemon schedules (after preflight);
//! - `GET /metrics`: Prometheus metrics;
//! - `POST /probes/{name}/run`: run a probe now and get its result, from
//!   loopback or with `Authorization: Bearer <api_token>`;
//! - everything else: the webhook routes of the current config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;
use tower::ServiceExt;

use super::{Control, Shared};

/// Where liveness is asked (`sms-canary healthcheck` asks it too).
pub(crate) const HEALTHZ: &str = "/healthz";

/// Longest silence of the scheduler that still counts as healthy.
const HEALTHY_TICK: Duration = Duration::from_secs(10);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/probes/{name}/run", post(run_now))
        .fallback(webhooks)
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let since = shared.heartbeat.since_tick();
    if since > HEALTHY_TICK {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("scheduler has not ticked for {}s\n", since.as_secs()),
        )
            .into_response();
    }
    let store = shared.store.clone();
    let now = shared.clock.now();
    match tokio::task::spawn_blocking(move || store.touch(now)).await {
        // A trivial write can succeed while the tables runs need are
        // corrupt: any store failure of the last minute fails the check.
        Ok(Ok(())) => match shared.store.failed_within(crate::store::HEALTH_WINDOW) {
            None => (StatusCode::OK, "ok\n").into_response(),
            Some(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("state store failing (within the last minute): {e}\n"),
            )
                .into_response(),
        },
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not writable: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store check failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.observe_store(&shared.store);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// Loopback callers are trusted; others need the configured bearer token.
fn authorized(shared: &Shared, peer: SocketAddr, headers: &HeaderMap) -> bool {
    if peer.ip().is_loopback() {
        return true;
    }
    let Some(token) = shared.config().canary.api_token.clone() else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.len() == token.expose().len()
        && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
}

async fn run_now(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, peer, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "loopback or a valid bearer token required\n",
        )
            .into_response();
    }
    if shared.config().probe(&name).is_none() {
        return (StatusCode::NOT_FOUND, format!("no probe named `{name}`\n")).into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    if shared
        .control
        .send(Control::Run { probe: name, reply })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match answer.await {
        Ok(Ok(run)) => axum::Json(run).into_response(),
        Ok(Err(why)) => (StatusCode::CONFLICT, format!("{why}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

/// Hands the request to the webhook routes of the config in force.
async fn webhooks(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match shared.hook_routes().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
