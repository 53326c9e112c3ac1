//! The one-shot `check`: start what the selected probes need (the webhook
//! listener, in-process mock carriers), run the probes concurrently, and
//! return their results. Used from a terminal, from cron and from CI.

use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tracing::debug;
use url::Url;

use crate::config::{Config, GatewayConfig, Probe};
use crate::gateway::{Gateway, mock, twilio::TwilioGateway};
use crate::mock_carrier::MockHandle;
use crate::probe::{self, RunResult, Status};
use crate::receiver::Inbox;
use crate::receiver::webhook::{self, Hooks};

/// What to check and how.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Probes to run by name; empty means every enabled probe.
    pub probes: Vec<String>,
    /// Overrides `[canary] listen` for the webhook listener (e.g. `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
}

/// Why a check could not run at all (as opposed to a probe failing): UNKNOWN.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("no probe named `{name}` (known: {known})")]
    UnknownProbe { name: String, known: String },
    #[error("no probes to run: none is configured and enabled (see [canary] probes in {config})")]
    NoProbes { config: String },
    #[error(
        "cannot listen on {addr} for webhooks: {source} (is the daemon running? `--listen 127.0.0.1:0` picks a free port)"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Gateway(String),
}

/// The results of one check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub instance: String,
    pub runs: Vec<RunResult>,
    /// Inbound messages seen during the check that belonged to no run.
    pub strangers: u64,
}

impl CheckReport {
    /// The worst status of all runs: the exit code.
    pub fn status(&self) -> Status {
        Status::worst(self.runs.iter().map(RunResult::status))
    }
}

/// Picks the probes to run: the named ones (even if disabled: naming a probe is
/// explicit), or every enabled probe.
pub fn select<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a Probe>, CheckError> {
    if names.is_empty() {
        let probes: Vec<&Probe> = config.probes.iter().filter(|p| p.enabled).collect();
        if probes.is_empty() {
            return Err(CheckError::NoProbes {
                config: config.path.display().to_string(),
            });
        }
        return Ok(probes);
    }
    names
        .iter()
        .map(|name| {
            config.probe(name).ok_or_else(|| CheckError::UnknownProbe {
                name: name.clone(),
                known: config
                    .probes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// Runs the selected probes once.
pub async fn check(config: &Config, options: &CheckOptions) -> Result<CheckReport, CheckError> {
    let probes = select(config, &options.probes)?;
    let inbox = Inbox::new();

    let addr = options.listen.unwrap_or(config.canary.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CheckError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| CheckError::Listen { addr, source })?;
    let public_url = match &config.canary.public_url {
        Some(url) => url.clone(),
        None => Url::parse(&format!("http://{bound}"))
            .map_err(|e| CheckError::Gateway(e.to_string()))?,
    };
    let hooks = Hooks::new(config, Arc::clone(&inbox), public_url.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, webhook::router(Arc::clone(&hooks)))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    debug!(%bound, %public_url, "webhook listener up");

    let (gateways, mocks) = match start_gateways(config, &probes, &hooks).await {
        Ok(started) => started,
        Err(e) => {
            let _ = stop.send(());
            return Err(e);
        }
    };
    let runs = futures_util::future::join_all(probes.iter().map(|probe| {
        let gateway = gateways
            .iter()
            .find(|(name, _)| name == &probe.gateway)
            .map(|(_, g)| g.as_ref());
        let inbox = &inbox;
        let public_url = &public_url;
        async move {
            // Every selected probe's gateway was started above.
            let gateway = gateway.expect("gateway started for each selected probe");
            probe::run(probe, gateway, inbox, Some(public_url)).await
        }
    }))
    .await;

    for m in mocks {
        m.shutdown().await;
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(CheckReport {
        instance: config.canary.instance.clone(),
        runs,
        strangers: inbox.strangers(),
    })
}

type Started = (Vec<(String, Box<dyn Gateway>)>, Vec<MockHandle>);

/// Builds each gateway the probes use; in-process mocks are started and told
/// which numbers they own and where those numbers' inbound webhooks go.
async fn start_gateways(
    config: &Config,
    probes: &[&Probe],
    hooks: &Hooks,
) -> Result<Started, CheckError> {
    let mut gateways: Vec<(String, Box<dyn Gateway>)> = Vec::new();
    let mut mocks = Vec::new();
    for probe in probes {
        if gateways.iter().any(|(name, _)| name == &probe.gateway) {
            continue;
        }
        let name = probe.gateway.as_str();
        let gateway: Box<dyn Gateway> = match &config.gateways[name] {
            GatewayConfig::Mock(m) => {
                let inbound = probes.iter().filter(|p| p.gateway == name).filter_map(|p| {
                    config
                        .receivers
                        .get(&p.receiver)
                        .filter(|r| r.is_webhook())?;
                    Some((
                        p.to.as_str().to_string(),
                        hooks.url_for(&format!("/hooks/twilio/inbound/{}", p.receiver)),
                    ))
                });
                let started = mock::start(name, m, inbound)
                    .await
                    .map_err(CheckError::Gateway)?;
                mocks.push(started.carrier);
                Box::new(started.gateway)
            }
            GatewayConfig::Http(h) => Box::new(
                crate::gateway::http::HttpGateway::new(name, h)
                    .map_err(|e| CheckError::Gateway(format!("gateway `{name}`: {e}")))?,
            ),
            GatewayConfig::Vonage(_) => {
                return Err(CheckError::Gateway(format!(
                    "gateway `{name}`: vonage is not wired yet"
                )));
            }
            GatewayConfig::Twilio(t) => Box::new(
                TwilioGateway::new(
                    name,
                    &t.base_url,
                    &t.account_sid,
                    t.auth_token.clone(),
                    t.request_timeout,
                )
                .map_err(|e| CheckError::Gateway(format!("gateway `{name}`: {e}")))?,
            ),
        };
        gateways.push((name.to_string(), gateway));
    }
    Ok((gateways, mocks))
}
