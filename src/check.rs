//! The one-shot `check`: start what the selected probes need (the webhook
//! listener, in-process mock carriers), run the probes concurrently, and
//! return their results. Used from a terminal, from cron and from CI.
//!
//! With state (the default), a check is a cron run: each probe is leased in
//! the store so overlapping runs cannot both send, runs are recorded, the
//! alert state machine counts across runs, and notifications — new ones and
//! those earlier runs could not deliver — go out through the outbox.

use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tracing::{Instrument, debug, warn};
use url::Url;

use crate::config::{Config, Probe};
use crate::metrics::Metrics;
use crate::monitor::{Delivered, Monitor, Refusal, Ticket};
use crate::probe::{self, Correlation, RunResult, Status, Wiring};
use crate::receiver::Inbox;
use crate::receiver::webhook::{self, Hooks};
use crate::store::{Holder, Store, StoreError};
pub(crate) use crate::wiring::Setup;
use crate::wiring::needs_listener;

/// What to check and how.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Probes to run by name; empty means every enabled probe.
    pub probes: Vec<String>,
    /// Overrides `[canary] listen` for the webhook listener (e.g. `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// Without state: no store, no leases, no alerts (a quick look, or CI).
    pub stateless: bool,
    /// Count runs and notifications here (for a Pushgateway or a textfile).
    pub metrics: Option<Arc<Metrics>>,
    /// Limits of the webhook listener.
    pub limits: crate::server::Limits,
    /// The token index to use; unset, a fresh one. Lets a caller watch the
    /// inbox's bookkeeping while the check runs.
    pub inbox: Option<Arc<Inbox>>,
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
    #[error("state store: {0}")]
    Store(String),
}

/// The results of one check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub instance: String,
    pub runs: Vec<RunResult>,
    /// Probes not run, and why (another run of them is in progress): UNKNOWN.
    pub skipped: Vec<Skipped>,
    /// Inbound messages seen during the check that belonged to no run.
    pub strangers: u64,
    /// Arrivals for runs that had already ended: duplicates, late messages.
    pub late: u64,
    /// What the outbox did, when the check kept state.
    pub notifications: Option<Delivered>,
}

/// A probe a check did not run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub probe: String,
    pub reason: String,
}

impl CheckReport {
    /// The worst status of all runs (UNKNOWN for a skipped probe): the exit code.
    pub fn status(&self) -> Status {
        let skipped = self.skipped.iter().map(|_| Status::Unknown);
        Status::worst(self.runs.iter().map(RunResult::status).chain(skipped))
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
///
/// Everything that can fail before a message is sent (the state store, the
/// webhook listener, the gateways) is set up first; only then is each probe
/// begun (cost guard, lease, write-ahead), so a check that cannot run holds
/// no lease.
pub async fn check(config: &Config, options: &CheckOptions) -> Result<CheckReport, CheckError> {
    let probes = select(config, &options.probes)?;
    let state = if options.stateless {
        None
    } else {
        Some(State::open(config, options.metrics.clone()).await?)
    };
    let inbox = options.inbox.clone().unwrap_or_default();
    let listener = if needs_listener(config, &probes) {
        Some(Listener::start(config, options, &inbox).await?)
    } else {
        None
    };
    let public_url = listener.as_ref().map(|l| l.public_url.clone());
    let setup = match Setup::start(config, &probes, public_url.as_ref(), &inbox).await {
        Ok(setup) => setup,
        Err(e) => {
            if let Some(l) = listener {
                l.stop().await;
            }
            return Err(e);
        }
    };
    let mut skipped = Vec::new();
    let mut begun: Vec<(&Probe, Correlation, Option<Ticket>)> = Vec::new();
    for probe in probes {
        match &state {
            None => begun.push((probe, Correlation::new(), None)),
            Some(state) => match state.begin(probe).await {
                Ok(ticket) => begun.push((probe, ticket.correlation().clone(), Some(ticket))),
                Err(refusal) => skipped.push(Skipped {
                    probe: probe.name.clone(),
                    reason: refusal.reason(),
                }),
            },
        }
    }
    let runs = futures_util::future::join_all(begun.iter().map(|(probe, correlation, _)| {
        let wiring = Wiring {
            gateway: setup.gateway(&probe.gateway),
            inbox: &inbox,
            callback_base: public_url.as_ref(),
            poller: setup.poller(&probe.receiver),
        };
        probe::run_as(probe, wiring, correlation.clone())
    }))
    .await;
    if let Some(m) = &options.metrics {
        runs.iter().for_each(|r| m.observe_run(r));
    }
    setup.shutdown().await;
    if let Some(l) = listener {
        l.stop().await;
    }
    let notifications = match &state {
        Some(state) => Some(state.finish(begun, &runs).await),
        None => None,
    };
    Ok(CheckReport {
        instance: config.canary.instance.clone(),
        runs,
        skipped,
        strangers: inbox.strangers(),
        late: inbox.late(),
        notifications,
    })
}

/// Batches of old runs a stateful check prunes at most (each
/// [`crate::store::PRUNE_BATCH`] runs).
const CHECK_PRUNE_BATCHES: usize = 4;

/// A check's use of the state store.
struct State {
    monitor: Arc<Monitor>,
    /// `[canary] retention` and `rollup_retention`.
    retention: (std::time::Duration, std::time::Duration),
    /// This process's claim on the store (see [`Holder`]).
    holder: Holder,
}

impl State {
    async fn open(config: &Config, metrics: Option<Arc<Metrics>>) -> Result<State, CheckError> {
        let dir = config.canary.state_dir.clone();
        // Runs a crashed daemon or a killed check left in flight are
        // recorded as interrupted first, and their leases freed.
        let (store, holder) = tokio::task::spawn_blocking(move || {
            let store = Store::open(&dir)?;
            let holder = Holder::claim(&store, "check")?;
            crate::store::recover_crashed(&store)?;
            Ok::<_, StoreError>((store, holder))
        })
        .await
        .map_err(|e| CheckError::Store(e.to_string()))?
        .map_err(|e| CheckError::Store(e.to_string()))?;
        let monitor =
            Monitor::new(config, store, metrics).map_err(|e| CheckError::Store(e.to_string()))?;
        // Alerts of probes removed or disabled since the last run resolve,
        // and what an expired silence held back is told (sent at the end).
        if let Err(e) = monitor.reconcile(config).await {
            warn!("cannot bring the alert states up to date: {e}");
        }
        Ok(State {
            monitor,
            retention: (config.canary.retention, config.canary.rollup_retention),
            holder,
        })
    }

    /// Begins a run of `probe`: refused by the cost guard, by a live run of
    /// it elsewhere, or by a store that cannot write it ahead.
    async fn begin(&self, probe: &Probe) -> Result<Ticket, Refusal> {
        self.monitor
            .begin(probe, self.holder.name(), chrono::Utc::now())
            .await
    }

    /// Records the runs (freeing their leases) and delivers the outbox,
    /// earlier runs' leftovers too.
    async fn finish(
        &self,
        begun: Vec<(&Probe, Correlation, Option<Ticket>)>,
        runs: &[RunResult],
    ) -> Delivered {
        for ((probe, correlation, ticket), run) in begun.into_iter().zip(runs) {
            let Some(ticket) = ticket else { continue };
            let span = probe::span(probe, &correlation);
            if let Err(e) = ticket
                .finish(&self.monitor, probe, run)
                .instrument(span)
                .await
            {
                warn!(probe = %probe.name, correlation_id = %correlation.id, "cannot record the run: {e}");
            }
        }
        let delivered = match self.monitor.deliver_due().await {
            Ok(d) => d,
            Err(e) => {
                warn!("outbox delivery failed: {e}");
                Delivered::default()
            }
        };
        // A little of what retention drops, at each cron run (a daemon
        // prunes in the background): bounded, so a check stays quick.
        let (retention, rollups) = self.retention;
        if let Err(e) = self
            .monitor
            .prune(retention, rollups, CHECK_PRUNE_BATCHES)
            .await
        {
            warn!("cannot prune old runs: {e}");
        }
        delivered
    }
}

/// The webhook listener of one check.
struct Listener {
    public_url: Url,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start(
        config: &Config,
        options: &CheckOptions,
        inbox: &Arc<Inbox>,
    ) -> Result<Listener, CheckError> {
        let addr = options.listen.unwrap_or(config.canary.listen);
        let listener =
            crate::server::bind(addr).map_err(|source| CheckError::Listen { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| CheckError::Listen { addr, source })?;
        let public_url = config.canary.public_url_for(bound);
        let hooks = Hooks::new(config, Arc::clone(inbox), public_url.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let routes = webhook::router(Arc::clone(&hooks));
        let server = tokio::spawn(crate::server::serve(
            listener,
            routes,
            options.limits,
            async {
                let _ = stopped.await;
            },
        ));
        debug!(%bound, %public_url, "webhook listener up");
        Ok(Listener {
            public_url,
            stop,
            server,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
