//! `sms-canary trigger`: asks the running daemon to run a probe now.
//!
//! It reads `admin_listen` and `api_token` from the same config the daemon
//! runs, so an operator never handles the token by hand, and calls the run
//! API on loopback (an unspecified `0.0.0.0` or `[::]` is reached there).
//! Without `--wait` it says the run started (or why it was refused) within
//! a second; with `--wait` it follows the run to its end.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use crate::config::{Config, reachable};
use crate::probe::{Outcome, Status};

/// How long one request may take: the longest `wait` the API grants (25 s
/// with the default 30 s request timeout) and some slack.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon said.
#[derive(Debug, Clone)]
pub enum Triggered {
    /// The run started and has not ended yet.
    Started { correlation_id: String },
    /// The run ended: its JSON, as `check --format json` shows a run.
    Ended(Value),
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TriggerError {
    #[error(
        "{config} has no [canary] api_token, so the daemon's run API is off; set one (e.g. api_token = \"${{SMS_CANARY_API_TOKEN}}\"), reload the daemon, and trigger again"
    )]
    NoToken { config: String },
    #[error("no probe named `{name}` in {config} (known: {known})")]
    UnknownProbe {
        name: String,
        config: String,
        known: String,
    },
    #[error(
        "cannot reach the daemon's admin listener at {addr} (is `sms-canary daemon` running with this config?): {reason}"
    )]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("the daemon did not run `{probe}`: {reason}")]
    Refused { probe: String, reason: String },
    #[error("the daemon answered HTTP {status}: {reason}")]
    Daemon { status: u16, reason: String },
}

/// Asks the daemon configured by `config` to run `probe`; with `wait`,
/// follows the run to its end. `admin` overrides `[canary] admin_listen`.
pub async fn trigger(
    config: &Config,
    admin: Option<SocketAddr>,
    probe: &str,
    wait: bool,
) -> Result<Triggered, TriggerError> {
    let Some(token) = &config.canary.api_token else {
        return Err(TriggerError::NoToken {
            config: config.path.display().to_string(),
        });
    };
    if config.probe(probe).is_none() {
        return Err(TriggerError::UnknownProbe {
            name: probe.to_string(),
            config: config.path.display().to_string(),
            known: config
                .probes
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let addr = reachable(admin.unwrap_or(config.canary.admin_listen));
    let unreachable = |e: reqwest::Error| TriggerError::Unreachable {
        addr,
        reason: e.without_url().to_string(),
    };
    // No proxy from the environment: the request carries the token.
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(unreachable)?;
    let base = format!("http://{addr}");
    let first_wait = if wait { "20s" } else { "1s" };
    let mut url = format!("{base}/probes/{probe}/run?wait={first_wait}");
    let mut post = true;
    loop {
        let request = if post {
            http.post(&url)
        } else {
            http.get(&url)
        };
        let response = request
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
        match status {
            200 => return Ok(Triggered::Ended(body)),
            202 => {
                let id = text("correlation_id");
                if !wait {
                    return Ok(Triggered::Started { correlation_id: id });
                }
                url = format!("{base}/runs/{id}?wait=20s");
                post = false;
            }
            409 => {
                return Err(TriggerError::Refused {
                    probe: probe.to_string(),
                    reason: text("error"),
                });
            }
            _ => {
                return Err(TriggerError::Daemon {
                    status,
                    reason: text("error"),
                });
            }
        }
    }
}

/// One line for a run the daemon ran, and the exit code its outcome means.
pub fn render_run(run: &Value) -> (String, u8) {
    let outcome = run["outcome"].as_str().unwrap_or("unknown");
    let status = Outcome::parse(outcome).map_or(Status::Unknown, Outcome::status);
    let mut line = format!(
        "{}: {}",
        run["probe"].as_str().unwrap_or("?"),
        outcome.to_ascii_uppercase()
    );
    if let Some(ms) = run["latency_ms"].as_f64() {
        line.push_str(&format!(" in {:.1}s", ms / 1000.0));
    }
    if let Some(reason) = run["reason"].as_str() {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(id) = run["correlation_id"].as_str() {
        line.push_str(&format!(" (correlation id {id})"));
    }
    line.push('\n');
    (line, status.code())
}
