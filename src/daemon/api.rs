//! The run API on the admin listener: run a probe now, and fetch its result.
//!
//! - `POST /probes/{name}/run[?wait=20s]`: starts a run. It answers `200`
//!   with the run's JSON if the run ended within `wait`, else `202 Accepted`
//!   with `Location: /runs/{correlation_id}`; `409` when the run was refused
//!   (already running, cost guard, lease held by another process).
//! - `GET /runs/{id}[?wait=20s]`: that run's JSON once it ended (`200`),
//!   `202` while it runs, `409` if it was refused.
//!
//! `wait` is capped below the listener's request timeout, so a long run (a
//! lost message waits out the probe's whole timeout) never ends in a 408.
//!
//! Every request must pass, in this order: its `Host` is an IP address,
//! `localhost` or one of `[canary] admin_hosts` (no DNS rebinding); an
//! `Origin`, when sent, is the `Host` itself (no cross-site request from a
//! browser on the host); an `api_token` is configured (403 otherwise, saying
//! how); and `Authorization: Bearer <api_token>` matches it, compared in
//! constant time (401). The caller's address is never trusted: a reverse
//! proxy on the same host connects from loopback too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, watch};

use super::Control;
use crate::config::Config;
use crate::probe::{Correlation, RunResult};
use crate::redact::Secret;

/// Manual runs whose results are kept for `GET /runs/{id}`.
const KEPT_RUNS: usize = 1000;

/// Largest request the admin listener reads: its routes take no body.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;

/// What a run is, seen from the API.
type Ended = Option<Result<RunResult, String>>;

/// The run API's state: who may call it, and the manual runs it started.
pub struct RunApi {
    gate: RwLock<Gate>,
    control: mpsc::Sender<Control>,
    /// The longest `wait` honoured: below the listener's request timeout.
    max_wait: Duration,
    runs: Mutex<Runs>,
}

/// The settings the checks use, replaced on reload.
struct Gate {
    token: Option<Secret>,
    hosts: Vec<String>,
    /// Every probe of the config, disabled ones too: a manual run may name any.
    probes: std::collections::HashSet<String>,
}

#[derive(Default)]
struct Runs {
    by_id: HashMap<String, (String, watch::Receiver<Ended>)>,
    order: VecDeque<String>,
}

impl RunApi {
    /// The API of a daemon whose scheduler listens on `control`; the admin
    /// listener cuts requests at `request_timeout`.
    pub fn new(
        config: &Config,
        control: mpsc::Sender<Control>,
        request_timeout: Duration,
    ) -> Arc<RunApi> {
        let max_wait = request_timeout
            .saturating_sub(Duration::from_secs(5))
            .max(request_timeout / 2);
        Arc::new(RunApi {
            gate: RwLock::new(Gate::from(config)),
            control,
            max_wait,
            runs: Mutex::new(Runs::default()),
        })
    }

    /// Takes the token and host names of a reloaded config.
    pub fn configure(&self, config: &Config) {
        *self.gate.write().unwrap_or_else(|e| e.into_inner()) = Gate::from(config);
    }

    /// The longest `wait` a request gets.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a run's result channel, forgetting the oldest past [`KEPT_RUNS`].
    fn keep(&self, id: &str, probe: &str, ended: watch::Receiver<Ended>) {
        let mut runs = self.runs();
        runs.by_id
            .insert(id.to_string(), (probe.to_string(), ended));
        runs.order.push_back(id.to_string());
        while runs.order.len() > KEPT_RUNS {
            if let Some(old) = runs.order.pop_front() {
                runs.by_id.remove(&old);
            }
        }
    }
}

impl From<&Config> for Gate {
    fn from(config: &Config) -> Gate {
        Gate {
            token: config.canary.api_token.clone(),
            hosts: config
                .canary
                .admin_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            probes: config.probes.iter().map(|p| p.name.clone()).collect(),
        }
    }
}

/// The run API's routes, every one behind the checks.
pub fn router(api: Arc<RunApi>) -> Router {
    Router::new()
        .route("/probes/{name}/run", post(start_run))
        .route("/runs/{id}", get(get_run))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&api),
            guard,
        ))
        .with_state(api)
}

/// A refusal, as JSON with a plain-words `error`.
fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Host, Origin, token configured, bearer token: see the module comment.
async fn guard(State(api): State<Arc<RunApi>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let (token, host_ok) = {
        let gate = api.gate.read().unwrap_or_else(|e| e.into_inner());
        (gate.token.clone(), allowed_host(headers, &gate.hosts))
    };
    let host = match host_ok {
        Ok(host) => host,
        Err(message) => return refuse(StatusCode::FORBIDDEN, message),
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://").or(o.strip_prefix("https://")))
            .is_some_and(|o| o.eq_ignore_ascii_case(&host));
        if !same {
            return refuse(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: the run API takes requests from its own origin only"
                    .into(),
            );
        }
    }
    let Some(token) = token else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the run API is off: set [canary] api_token (e.g. api_token = \"${SMS_CANARY_API_TOKEN}\"), reload, and send Authorization: Bearer <token>, or use `sms-canary trigger PROBE`".into(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // `ct_eq` on slices of different lengths is false without comparing;
    // the length of the token is not the secret.
    if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <api_token>)".into(),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

/// The request's `Host`, if it may reach this API: an IP address (a DNS
/// rebinding attack needs a name), `localhost`, or a configured name; ports
/// are not compared, so a proxy may forward any.
fn allowed_host(headers: &HeaderMap, names: &[String]) -> Result<String, String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| "a Host header is required".to_string())?;
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host.as_str(), |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host.as_str()
            }
        }),
    };
    let named = names.iter().any(|n| n == &host || n == name);
    if name.parse::<IpAddr>().is_ok() || name == "localhost" || named {
        Ok(host)
    } else {
        Err(format!(
            "Host `{host}` is not this admin listener: add it to [canary] admin_hosts if a proxy forwards it"
        ))
    }
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<String>,
}

/// The `wait` asked for, capped at the API's maximum.
fn wait_of(api: &RunApi, query: &WaitQuery) -> Result<Duration, String> {
    match &query.wait {
        None => Ok(Duration::ZERO),
        Some(text) => crate::config::parse_duration(text)
            .map(|d| d.min(api.max_wait))
            .map_err(|e| format!("wait: {e}")),
    }
}

async fn start_run(
    State(api): State<Arc<RunApi>>,
    Path(name): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Response {
    let wait = match wait_of(&api, &query) {
        Ok(wait) => wait,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let known = {
        let gate = api.gate.read().unwrap_or_else(|e| e.into_inner());
        gate.probes.contains(&name)
    };
    if !known {
        return refuse(StatusCode::NOT_FOUND, format!("no probe named `{name}`"));
    }
    let correlation = Correlation::new();
    let id = correlation.id.clone();
    let (reply, answer) = oneshot::channel();
    let run = Control::Run {
        probe: name.clone(),
        correlation,
        reply,
    };
    if api.control.send(run).await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    }
    let (ended_tx, ended) = watch::channel(None);
    tokio::spawn(async move {
        let ended = answer
            .await
            .unwrap_or_else(|_| Err("the daemon shut down before the run ended".into()));
        let _ = ended_tx.send(Some(ended));
    });
    api.keep(&id, &name, ended.clone());
    answer_for(&id, &name, ended, wait).await
}

async fn get_run(
    State(api): State<Arc<RunApi>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Response {
    let wait = match wait_of(&api, &query) {
        Ok(wait) => wait,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
    };
    let found = api.runs().by_id.get(&id).cloned();
    let Some((probe, ended)) = found else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "no run `{id}` here: the last {KEPT_RUNS} runs started through this API are kept; `sms-canary history` has them all"
            ),
        );
    };
    answer_for(&id, &probe, ended, wait).await
}

/// The run's JSON if it ended within `wait`; else where to look for it.
async fn answer_for(
    id: &str,
    probe: &str,
    mut ended: watch::Receiver<Ended>,
    wait: Duration,
) -> Response {
    let _ = tokio::time::timeout(wait, ended.wait_for(Option::is_some)).await;
    let state = ended.borrow().clone();
    match state {
        Some(Ok(run)) => axum::Json(run).into_response(),
        Some(Err(reason)) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "correlation_id": id,
                "probe": probe,
                "status": "refused",
                "error": reason,
            })),
        )
            .into_response(),
        None => {
            let location = format!("/runs/{id}");
            (
                StatusCode::ACCEPTED,
                [
                    (header::LOCATION, location.clone()),
                    (header::RETRY_AFTER, "1".to_string()),
                ],
                axum::Json(json!({
                    "correlation_id": id,
                    "probe": probe,
                    "status": "running",
                    "location": location,
                })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str, names: &[&str]) -> Result<String, String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        allowed_host(&headers, &names)
    }

    #[test]
    fn hosts_are_addresses_localhost_or_configured_names() {
        for ok in [
            "127.0.0.1:9188",
            "127.0.0.1",
            "[::1]:9188",
            "10.1.2.3:80",
            "LOCALHOST:9188",
        ] {
            assert!(host(ok, &[]).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:9188",
            "127.0.0.1.nip.io:9188",
            "localhost.evil.example",
            "",
        ] {
            assert!(host(bad, &[]).is_err(), "{bad}");
        }
        assert!(host("canary.internal:9188", &["canary.internal"]).is_ok());
        assert!(host("canary.internal:9188", &["canary.internal:9188"]).is_ok());
        assert!(host("canary.internal:1", &["canary.internal:9188"]).is_err());
    }
}
