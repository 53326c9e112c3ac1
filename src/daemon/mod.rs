//! `sms-canary daemon`: probes on their schedules, for as long as it runs.
//!
//! One process holds: the scheduler (runs start at their due time, bounded by
//! `concurrency`), two HTTP listeners (public: the webhooks only; admin:
//! `/metrics`, `/healthz`, `/readyz` and the run API), the outbox delivery
//! loop, a watchdog thread, and the state store it shares with cron runs.
//! SIGHUP reloads the config off the scheduler's task (validated first; the
//! old one stays on error, and probing goes on while it loads); SIGTERM
//! stops scheduling, lets in-flight runs finish within a grace period and
//! records the rest as interrupted.

pub mod api;
pub mod client;
mod clock;
pub mod healthcheck;
mod receivers;
mod scheduler;
mod server;
pub mod watchdog;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tracing::{info, warn};
use url::Url;

pub use clock::Clock;

use crate::check::Setup;
use crate::config::{Config, ConfigErrors};
use crate::metrics::Metrics;
use crate::monitor::{Monitor, MonitorError};
use crate::probe::{Correlation, RunResult};
use crate::receiver::Inbox;
use crate::receiver::webhook::Hooks;
use crate::store::{Holder, Recovered, Store, StoreError};
use watchdog::Heartbeat;

/// Store calls that scheduled runs make at once, per side: one for starts
/// (cost guard, lease), one for the end (record, release). The store is one
/// SQLite connection behind a lock, so more callers only park blocking-pool
/// threads on it: at 10,000 runs in flight that was tokio's limit of 512
/// threads, and wake-up storms that delayed the webhooks whose arrival times
/// the runs measure. Runs wait for a slot as tasks instead, in order; a start
/// never queues behind the records of runs that have ended, since its delay
/// is schedule lag and theirs is not.
const STORE_CALLS: usize = 1;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Overrides `[canary] listen`.
    pub listen: Option<SocketAddr>,
    /// Overrides `[canary] admin_listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Run `doctor` first and refuse to start if it fails.
    pub preflight: bool,
    /// How long in-flight runs may take to finish on shutdown.
    pub grace: Duration,
    /// The watchdog exits the process after this long without a scheduler tick.
    pub stall_limit: Duration,
    /// How often to look for processes sharing the store (a cron `check`)
    /// that died mid-run, to record their runs as interrupted.
    pub recovery_interval: Duration,
    /// Limits of both HTTP listeners.
    pub limits: crate::server::Limits,
    /// How often the state store's file is checked for damage (SQLite's
    /// quick check, on a connection of its own) besides at start.
    pub store_check_interval: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            listen: None,
            admin_listen: None,
            preflight: true,
            grace: Duration::from_secs(30),
            stall_limit: Duration::from_secs(60),
            recovery_interval: Duration::from_secs(60),
            limits: crate::server::Limits::default(),
            store_check_interval: Duration::from_secs(600),
        }
    }
}

/// What the outside world (signals, the HTTP API) asks of the scheduler.
#[derive(Debug)]
pub enum Control {
    /// Re-read the config (SIGHUP).
    Reload,
    /// Stop gracefully (SIGTERM, Ctrl-C).
    Shutdown,
    /// Run one probe now, under `correlation`, and answer with its result
    /// (or why it was not run).
    Run {
        probe: String,
        correlation: Correlation,
        reply: oneshot::Sender<Result<RunResult, String>>,
    },
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("preflight failed (start with --no-preflight to skip it):\n{0}")]
    Preflight(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{source}\nthe state store is damaged: stop every sms-canary using it, then move the file \
         aside to start with a new store (its runs and alert state are lost) or restore it from a backup"
    )]
    CorruptStore { source: StoreError },
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("cannot listen on {addr} ([canary] {which}): {source}")]
    Listen {
        /// `listen` or `admin_listen`.
        which: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// Everything the scheduler, the runs and the HTTP server share.
pub(crate) struct Shared {
    config_path: PathBuf,
    config: RwLock<Arc<Config>>,
    setup: RwLock<Arc<Setup>>,
    monitor: RwLock<Arc<Monitor>>,
    /// The webhook routes, built once per config: building them on every
    /// request cost two thirds of the listener's throughput.
    hook_routes: RwLock<axum::Router>,
    inbox: Arc<Inbox>,
    public_url: Url,
    store: Store,
    clock: Arc<Clock>,
    heartbeat: Arc<Heartbeat>,
    ready: AtomicBool,
    /// This daemon's claim on the store: the name of its leases and runs
    /// written ahead, alive exactly as long as the process.
    holder: Holder,
    /// Probes with a run going: its correlation id once begun (`None` while
    /// it waits for a permit), to record it as interrupted if shutdown cuts
    /// it off.
    in_flight: Mutex<HashMap<String, Option<String>>>,
    /// Enabled probes seen good since the last heartbeat ping.
    good_since_ping: Mutex<HashSet<String>>,
    /// Wakes the outbox loop when a run queued notifications.
    outbox_kick: Notify,
    /// Wakes the reconciling loop (after a reload).
    reconcile_kick: Notify,
    /// Store calls of starting runs in progress at once (see [`STORE_CALLS`]).
    store_starts: Semaphore,
    /// Store calls of ending runs in progress at once.
    store_ends: Semaphore,
    /// The run API: its checks follow the config on reload.
    api: Arc<api::RunApi>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
}

impl Shared {
    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn setup(&self) -> Arc<Setup> {
        Arc::clone(&self.setup.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn monitor(&self) -> Arc<Monitor> {
        Arc::clone(&self.monitor.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn hook_routes(&self) -> axum::Router {
        self.hook_routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the daemon until `Control::Shutdown` arrives on `control`.
///
/// `control_tx` is the sending side of the same channel (the HTTP API uses it
/// for manual runs); `clock` is [`Clock::system`] outside tests.
pub async fn run(
    config_path: PathBuf,
    options: DaemonOptions,
    clock: Arc<Clock>,
    control: mpsc::Receiver<Control>,
    control_tx: mpsc::Sender<Control>,
) -> Result<(), DaemonError> {
    let config = Arc::new(Config::load(&config_path)?);
    if options.preflight {
        let mut items = crate::doctor::doctor(&config, options.listen).await;
        // A silent phone is the daemon's to watch and alert on: refusing to
        // start would leave nobody to notice it come back.
        items.retain(|i| i.check != crate::doctor::PHONE_CHECK);
        if crate::doctor::exit_code(&items) != 0 {
            return Err(DaemonError::Preflight(crate::doctor::render(&items)));
        }
    }
    let store = {
        let dir = config.canary.state_dir.clone();
        tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| DaemonError::Setup(e.to_string()))??
    };
    // A damaged file would leave runs unrecorded and the outbox unread
    // while everything else looked fine: refuse to start on one.
    {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.quick_check())
            .await
            .map_err(|e| DaemonError::Setup(e.to_string()))?
            .map_err(|source| DaemonError::CorruptStore { source })?;
    }
    // Before anything runs: runs a crashed predecessor (or a killed cron
    // check) had in flight are recorded as interrupted and its leases freed.
    let holder = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let holder = Holder::claim(&store, "daemon")?;
            let recovered = crate::store::recover_crashed(&store)?;
            Ok::<_, StoreError>((holder, recovered))
        })
        .await
        .map_err(|e| DaemonError::Setup(e.to_string()))??
    };
    let (holder, recovered) = holder;
    report_recovered(&recovered);
    let (listener, bound) = listen("listen", options.listen.unwrap_or(config.canary.listen))?;
    let (admin_listener, admin_bound) = listen(
        "admin_listen",
        options.admin_listen.unwrap_or(config.canary.admin_listen),
    )?;
    let public_url = config.canary.public_url_for(bound);
    let inbox = Inbox::new();
    // Every probe, disabled ones too: `POST /probes/{name}/run` may name any.
    let probes: Vec<&crate::config::Probe> = config.probes.iter().collect();
    let setup = Setup::start(&config, &probes, Some(&public_url), &inbox)
        .await
        .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let metrics = Arc::new(Metrics::new(&config.canary.instance));
    metrics.config_loaded(true, clock.now());
    let enabled = config
        .probes
        .iter()
        .filter(|p| p.enabled)
        .map(|p| p.name.clone())
        .collect();
    seed_probe_up(&metrics, &store, enabled).await;
    let monitor = Monitor::new(&config, store.clone(), Some(Arc::clone(&metrics)))?;
    let hooks = Hooks::with_metrics(
        &config,
        Arc::clone(&inbox),
        public_url.clone(),
        Some(Arc::clone(&metrics)),
    );
    let heartbeat = Arc::new(Heartbeat::default());
    let api = api::RunApi::new(&config, control_tx, options.limits.request_timeout);
    let shared = Arc::new(Shared {
        config_path,
        config: RwLock::new(Arc::clone(&config)),
        setup: RwLock::new(Arc::new(setup)),
        monitor: RwLock::new(monitor),
        hook_routes: RwLock::new(crate::receiver::webhook::router(hooks)),
        inbox,
        public_url,
        store,
        clock,
        heartbeat: Arc::clone(&heartbeat),
        ready: AtomicBool::new(false),
        holder,
        in_flight: Mutex::new(HashMap::new()),
        good_since_ping: Mutex::new(HashSet::new()),
        outbox_kick: Notify::new(),
        reconcile_kick: Notify::new(),
        store_starts: Semaphore::new(STORE_CALLS),
        store_ends: Semaphore::new(STORE_CALLS),
        api,
        metrics,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DaemonError::Setup(e.to_string()))?,
    });

    let (stop_servers, servers_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let public = tokio::spawn(crate::server::serve(
        listener,
        server::public_router(Arc::clone(&shared)),
        options.limits,
        stopped(servers_stopped.clone()),
    ));
    let admin = tokio::spawn(crate::server::serve(
        admin_listener,
        server::admin_router(Arc::clone(&shared)),
        options.limits,
        stopped(servers_stopped),
    ));
    let outbox = tokio::spawn(scheduler::outbox_loop(Arc::clone(&shared)));
    let silences = tokio::spawn(silence_loop(Arc::clone(&shared)));
    let retention = tokio::spawn(retention_loop(Arc::clone(&shared)));
    let store_watch = tokio::spawn(store_watch(
        Arc::clone(&shared),
        options.store_check_interval,
    ));
    let recovery = tokio::spawn(recovery_loop(
        Arc::clone(&shared),
        options.recovery_interval,
    ));
    let phones = tokio::spawn(receivers::watch(Arc::clone(&shared)));
    watchdog::spawn(Arc::clone(&heartbeat), options.stall_limit);
    let enabled = config.probes.iter().filter(|p| p.enabled).count();
    info!(%bound, admin = %admin_bound, probes = enabled, "daemon started");

    scheduler::schedule(Arc::clone(&shared), control, &options).await;

    heartbeat.stop();
    outbox.abort();
    silences.abort();
    store_watch.abort();
    retention.abort();
    recovery.abort();
    phones.abort();
    // One last chance for notifications queued by the final runs.
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.monitor().deliver_due()).await;
    let _ = stop_servers.send(true);
    let _ = public.await;
    let _ = admin.await;
    info!("daemon stopped");
    Ok(())
}

/// Binds the daemon's listener `which`; the address it got.
fn listen(which: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), DaemonError> {
    let failed = |source| DaemonError::Listen {
        which,
        addr,
        source,
    };
    let listener = crate::server::bind(addr).map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    Ok((listener, bound))
}

fn report_recovered(recovered: &Recovered) {
    if !recovered.holders.is_empty() {
        warn!(
            processes = recovered.holders.len(),
            runs = recovered.runs.len(),
            "found processes that stopped mid-work; their runs in flight are recorded as interrupted"
        );
    }
}

/// Looks now and then for processes sharing the store (cron checks) that
/// died mid-run: their runs are recorded and their leases freed without
/// waiting for a restart. Leases of this daemon's own for probes it is not
/// running (a release that failed) are freed too, so a live daemon never
/// keeps a cron `check` out of a probe it is not running.
async fn recovery_loop(shared: Arc<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let shared = Arc::clone(&shared);
        let recovered = tokio::task::spawn_blocking(move || {
            let recovered = crate::store::recover_crashed(&shared.store)?;
            // A run is in `in_flight` before it takes its lease: holding the
            // map while releasing keeps a run from starting in between.
            let in_flight = shared.in_flight();
            let running: Vec<String> = in_flight.keys().cloned().collect();
            shared
                .store
                .release_leases_except(shared.holder.name(), &running)?;
            drop(in_flight);
            Ok::<_, StoreError>(recovered)
        });
        match recovered.await {
            Ok(Ok(recovered)) => report_recovered(&recovered),
            Ok(Err(e)) => warn!("cannot look for runs cut off by a crash: {e}"),
            Err(e) => warn!("cannot look for runs cut off by a crash: {e}"),
        }
    }
}

/// Brings the alert states in line with the config and the silences, on
/// start, after each reload, when a silence ends, and every minute (for a
/// silence lifted by another process): what a silence held back is told,
/// and alerts of probes removed or disabled resolve.
async fn silence_loop(shared: Arc<Shared>) {
    const AT_LEAST: Duration = Duration::from_secs(60);
    loop {
        match shared.monitor().reconcile(&shared.config()).await {
            Ok(done) if !done.is_empty() => shared.outbox_kick.notify_one(),
            Ok(_) => {}
            Err(e) => warn!("cannot bring the alert states up to date: {e}"),
        }
        let store = shared.store.clone();
        let now = shared.clock.now();
        let next = tokio::task::spawn_blocking(move || store.next_silence_end(now)).await;
        let limit = tokio::time::Instant::now() + AT_LEAST;
        let wake = match next {
            // Just past its end, so the silence no longer counts.
            Ok(Ok(Some(end))) => shared
                .clock
                .instant_at(end + chrono::Duration::milliseconds(10))
                .min(limit),
            _ => limit,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = shared.reconcile_kick.notified() => {}
        }
    }
}

/// Prunes what retention no longer keeps, a minute after the start and
/// every ten minutes: in small batches with pauses between, so runs that
/// start meanwhile barely wait (the schedule lag is measured against it).
async fn retention_loop(shared: Arc<Shared>) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::time::sleep(wait).await;
        wait = Duration::from_secs(600);
        let canary = &shared.config().canary;
        let (retention, rollups) = (canary.retention, canary.rollup_retention);
        if let Err(e) = shared.monitor().prune(retention, rollups, usize::MAX).await {
            warn!("cannot prune old runs: {e}");
        }
    }
}

/// Watches the state store: while its operations fail, runs may go
/// unrecorded and the outbox unread, so the canary says so itself, straight
/// to its channels (the outbox lives in the failing store), and again when
/// it works. Until a channel took the notice it is tried every tick.
async fn store_watch(shared: Arc<Shared>, check_every: Duration) {
    let tick = check_every.min(Duration::from_secs(10));
    let mut told_failing = false;
    let mut next_check = tokio::time::Instant::now() + check_every;
    loop {
        tokio::time::sleep(tick).await;
        if tokio::time::Instant::now() >= next_check {
            let store = shared.store.clone();
            // A failure is kept by the store's health, read just below.
            let _ = tokio::task::spawn_blocking(move || store.quick_check()).await;
            next_check = tokio::time::Instant::now() + check_every;
        }
        let failing = shared.store.failed_within(crate::store::HEALTH_WINDOW);
        shared.metrics.observe_store(&shared.store);
        let monitor = shared.monitor();
        match (failing, told_failing) {
            (Some(e), false) => {
                let reason = format!(
                    "state store failing: {e}; runs may go unrecorded and alerts queued in it unsent \
                     (see `sms-canary doctor`)"
                );
                told_failing = monitor
                    .tell_now(
                        crate::alert::Transition::Firing,
                        crate::monitor::STORE_KEY,
                        reason,
                    )
                    .await
                    > 0;
            }
            (None, true) => {
                let reason = "state store works again".to_string();
                told_failing = monitor
                    .tell_now(
                        crate::alert::Transition::Resolved,
                        crate::monitor::STORE_KEY,
                        reason,
                    )
                    .await
                    == 0;
            }
            _ => {}
        }
    }
}

/// `probes`' `probe_up` from their last recorded runs.
async fn seed_probe_up(metrics: &Metrics, store: &Store, probes: Vec<String>) {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.last_ok_flags(&probes)).await {
        Ok(Ok(flags)) => metrics.seed_probes(&flags),
        Ok(Err(e)) => warn!("cannot read the probes' last outcomes: {e}"),
        Err(e) => warn!("cannot read the probes' last outcomes: {e}"),
    }
}

/// A reloaded config with everything built from it, ready to swap in.
pub(crate) struct Reloaded {
    config: Arc<Config>,
    setup: Setup,
    monitor: Arc<Monitor>,
    hooks: Arc<Hooks>,
}

/// SIGHUP: load and validate the new config and build what it describes.
/// Runs as a task of its own, never on the scheduler's: however long the
/// files take to read, probes keep running on the old config meanwhile.
pub(crate) async fn prepare_reload(shared: Arc<Shared>) -> Result<Reloaded, String> {
    let path = shared.config_path.clone();
    let config = match tokio::task::spawn_blocking(move || Config::load(&path)).await {
        Ok(Ok(config)) => Arc::new(config),
        Ok(Err(errors)) => return Err(errors.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    let probes: Vec<&crate::config::Probe> = config.probes.iter().collect();
    let setup = Setup::start(&config, &probes, Some(&shared.public_url), &shared.inbox)
        .await
        .map_err(|e| e.to_string())?;
    let metrics = Some(Arc::clone(&shared.metrics));
    let monitor =
        Monitor::new(&config, shared.store.clone(), metrics.clone()).map_err(|e| e.to_string())?;
    let hooks = Hooks::with_metrics(
        &config,
        Arc::clone(&shared.inbox),
        shared.public_url.clone(),
        metrics,
    );
    // Probes the reload adds show in probe_up at once, like those at start.
    let running = shared.config();
    let added = config
        .probes
        .iter()
        .filter(|p| p.enabled && running.probe(&p.name).is_none_or(|old| !old.enabled))
        .map(|p| p.name.clone())
        .collect();
    seed_probe_up(&shared.metrics, &shared.store, added).await;
    Ok(Reloaded {
        config,
        setup,
        monitor,
        hooks,
    })
}

/// Swaps a reloaded config in; the scheduler does this between two ticks.
pub(crate) fn apply_reload(shared: &Shared, reloaded: Reloaded) {
    let Reloaded {
        config,
        setup,
        monitor,
        hooks,
    } = reloaded;
    // Runs in flight keep the Arcs of the old setup until they finish.
    *shared.setup.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(setup);
    *shared.monitor.write().unwrap_or_else(|e| e.into_inner()) = monitor;
    *shared
        .hook_routes
        .write()
        .unwrap_or_else(|e| e.into_inner()) = crate::receiver::webhook::router(hooks);
    shared.api.configure(&config);
    *shared.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    shared.reconcile_kick.notify_one();
}

/// Pings the heartbeat URL (a dead-man's switch) once every enabled probe has
/// had a good run since the last ping; a failure (or a failing store)
/// restarts the count.
pub(crate) async fn heartbeat_after(shared: &Shared, run: &RunResult) {
    let config = shared.config();
    let Some(url) = &config.canary.heartbeat_url else {
        return;
    };
    // A failing store means runs unrecorded: no "all is well" ping, so the
    // dead-man's switch fires if it lasts.
    let store_failing = shared
        .store
        .failed_within(crate::store::HEALTH_WINDOW)
        .is_some();
    let complete = {
        let mut good = shared
            .good_since_ping
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if run.outcome != crate::probe::Outcome::Ok || store_failing {
            good.clear();
            return;
        }
        good.insert(run.probe.clone());
        let all = config
            .probes
            .iter()
            .filter(|p| p.enabled)
            .all(|p| good.contains(&p.name));
        if all {
            good.clear();
        }
        all
    };
    if complete {
        match shared.http.get(url.expose()).send().await {
            Ok(r) if r.status().is_success() => info!("heartbeat sent"),
            Ok(r) => warn!(
                status = r.status().as_u16(),
                "heartbeat URL refused the ping"
            ),
            Err(e) => warn!("heartbeat ping failed: {}", e.without_url()),
        }
    }
}
