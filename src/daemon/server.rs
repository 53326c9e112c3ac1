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
        .route("/", get(status_page))
        .route("/probes/{name}", get(probe_page))
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

/// The status page: every probe at a glance.
async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    let (config, store, now) = (shared.config(), shared.store.clone(), shared.clock.now());
    let page = tokio::task::spawn_blocking(move || {
        crate::report::html::overview(&config, &store, now, crate::report::html::Links::Served)
    })
    .await;
    html(page)
}

#[derive(serde::Deserialize)]
struct PageQuery {
    window: Option<String>,
}

/// A probe's page, over `?window=` (24h by default; 1h to the rollups'
/// retention).
async fn probe_page(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    let config = shared.config();
    let known = config.probe(&name).is_some();
    let window = match query.window.as_deref().map(crate::config::parse_duration) {
        None => Ok(Duration::from_secs(86_400)),
        Some(Ok(w)) if w >= Duration::from_secs(3600) && w <= config.canary.rollup_retention => {
            Ok(w)
        }
        Some(_) => Err(format!(
            "window: a duration from 1h to rollup_retention ({}), e.g. {}",
            crate::report::window_text(config.canary.rollup_retention),
            crate::report::html::WINDOWS.join(", ")
        )),
    };
    let window = match window {
        Ok(w) => w,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (store, now) = (shared.store.clone(), shared.clock.now());
    let known = known
        || store
            .recent_runs(Some(&name), 1)
            .is_ok_and(|r| !r.is_empty());
    if !known {
        return (StatusCode::NOT_FOUND, "no such probe\n").into_response();
    }
    let page = tokio::task::spawn_blocking(move || {
        crate::report::html::probe_page(
            &config,
            &store,
            &name,
            window,
            now,
            crate::report::html::Links::Served,
        )
    })
    .await;
    html(page)
}

fn html(
    page: Result<Result<String, crate::store::StoreError>, tokio::task::JoinError>,
) -> Response {
    match page {
        Ok(Ok(page)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // Everything is inline: no script, no other origin.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
            ],
            page,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state store: {e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
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
