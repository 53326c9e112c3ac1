//! The daemon's two listeners.
//!
//! The public one (`[canary] listen`) faces the internet and serves the
//! webhook routes of the config in force, `/hooks/...`, and nothing else
//! (404). The admin one (`[canary] admin_listen`) serves operators:
//!
//! - `GET /healthz`: 200 only if the scheduler ticked recently, the store
//!   takes a write and no store operation failed in the last minute — what a
//!   liveness probe should restart on;
//! - `GET /readyz`: 200 once the daemon schedules (after preflight);
//! - `GET /metrics`: Prometheus metrics;
//! - the run API (see [`super::api`]): `POST /probes/{name}/run`, `GET /runs/{id}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceExt;

use super::Shared;
use super::api::{self, ADMIN_BODY_LIMIT};

/// Where liveness is asked (`sms-canary healthcheck` asks it too).
pub(crate) const HEALTHZ: &str = "/healthz";

/// Longest silence of the scheduler that still counts as healthy.
const HEALTHY_TICK: Duration = Duration::from_secs(10);

/// What the public listener serves: webhooks only.
pub(crate) fn public_router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(webhooks).with_state(shared)
}

/// What the admin listener serves.
pub(crate) fn admin_router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route(HEALTHZ, get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&shared))
        .merge(api::router(Arc::clone(&shared.api)));
    crate::server::limit_body(routes, ADMIN_BODY_LIMIT, |_| {})
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

/// Hands `/hooks/...` to the webhook routes of the config in force.
async fn webhooks(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if !request.uri().path().starts_with("/hooks/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match shared.hook_routes().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
