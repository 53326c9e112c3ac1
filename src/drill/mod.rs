//! `sms-canary drill`: chaos drills that prove a config's alerting keeps the
//! promise — transient faults heal silently, real outages alert at once.
//!
//! Every selected probe is played through each scenario of
//! [`scenario::ALL`] in a world of its own: the bundled mock carrier in place
//! of the probe's gateway, a local webhook listener in place of its receiver,
//! a fresh store in a temporary directory, and a capturing sink in place of
//! its alert channels (its real channels too only with `--notify`). The
//! probe's timeout, threshold, retry policy and alert policy are kept, and
//! each run goes through the real engine, alert state machine and outbox.
//!
//! Time is accelerated twice over, so hours of alerting play out in seconds:
//! the durations inside a run (timeout, threshold, retry backoff, carrier
//! latency) are divided by a speed factor, and the idle time between
//! scheduled runs is skipped on a virtual clock that stamps runs, alerts and
//! outbox entries. Every time the drill reports is in the probe's own time.

pub mod scenario;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use thiserror::Error;
use tokio::net::TcpListener;
use url::Url;

use crate::alert::Notification;
use crate::check::{self, CheckError};
use crate::config::{
    AlertConfig, Config, GatewayConfig, JsonPathExpr, MockGatewayConfig, Probe, ReceiverConfig,
    WebhookAlertConfig, WebhookReceiverConfig,
};
use crate::mock_carrier::{LatencyModel, MockConfig, NumberConfig};
use crate::monitor::Monitor;
use crate::probe::{self, Outcome, RunResult, Wiring};
use crate::providers::{self, MockGateway};
use crate::receiver::Inbox;
use crate::receiver::webhook::{self, Hooks, join_public};
use crate::schedule::Schedule;
use crate::store::Store;
pub use scenario::{Expect, Played, Verdict};

/// The drill's stand-ins for the probe's gateway, receiver and channels.
const GATEWAY: &str = "drill-carrier";
const RECEIVER: &str = "drill-inbox";
const SINK: &str = "drill-capture";

/// The speed factor aims for runs timing out after this many real seconds:
/// long enough for a whole-second Retry-After to be honoured within a run.
const TARGET_TIMEOUT: Duration = Duration::from_secs(4);
const MAX_SPEED: f64 = 120.0;

/// What to drill and how.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Probes by name; empty means every enabled probe.
    pub probes: Vec<String>,
    /// Scenarios by name; empty means all of them.
    pub scenarios: Vec<String>,
    /// Run-time speed factor; `None` picks one per probe from its timeout.
    pub speed: Option<f64>,
    /// Send the drill's notifications to the probes' own channels too.
    pub notify: bool,
    /// Scenarios played at once (0: 16).
    pub jobs: usize,
}

/// Why a drill could not run at all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DrillError {
    #[error(transparent)]
    Select(#[from] CheckError),
    #[error("no scenario named `{name}` (known: {known})")]
    UnknownScenario { name: String, known: String },
    #[error("--speed must be a number from 1 to {MAX_SPEED}, not {0}")]
    Speed(f64),
    #[error("cannot set up the drill: {0}")]
    Setup(String),
}

/// One scenario played for one probe.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub probe: String,
    pub scenario: &'static str,
    pub expect: Expect,
    pub verdict: Verdict,
    pub played: Played,
    /// The run-time speed factor it was played at.
    pub speed: f64,
    /// The probe's time between runs.
    pub interval: Duration,
}

/// Everything a drill played.
#[derive(Debug, Clone)]
pub struct DrillReport {
    pub instance: String,
    pub results: Vec<ScenarioResult>,
}

impl DrillReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.verdict.passed).count()
    }

    pub fn all_passed(&self) -> bool {
        self.passed() == self.results.len()
    }
}

/// Plays the selected scenarios for the selected probes.
pub async fn drill(config: &Config, options: &DrillOptions) -> Result<DrillReport, DrillError> {
    let probes = check::select(config, &options.probes)?;
    let scenarios: Vec<&'static str> = if options.scenarios.is_empty() {
        scenario::ALL.to_vec()
    } else {
        options
            .scenarios
            .iter()
            .map(|name| {
                scenario::ALL
                    .iter()
                    .find(|s| **s == name.as_str())
                    .copied()
                    .ok_or_else(|| DrillError::UnknownScenario {
                        name: name.clone(),
                        known: scenario::ALL.join(", "),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    if let Some(speed) = options.speed
        && !(1.0..=MAX_SPEED).contains(&speed)
    {
        return Err(DrillError::Speed(speed));
    }
    let sink = Sink::start().await?;
    let jobs = tokio::sync::Semaphore::new(if options.jobs == 0 { 16 } else { options.jobs });
    let (sink_ref, jobs_ref) = (&sink, &jobs);
    let plays = probes.iter().flat_map(|probe| {
        scenarios.iter().map(move |name| {
            let (sink, jobs) = (sink_ref, jobs_ref);
            async move {
                let _permit = jobs
                    .acquire()
                    .await
                    .map_err(|e| DrillError::Setup(e.to_string()))?;
                play(config, probe, name, sink, options).await
            }
        })
    });
    let results = futures_util::future::join_all(plays).await;
    sink.stop().await;
    Ok(DrillReport {
        instance: config.canary.instance.clone(),
        results: results.into_iter().collect::<Result<_, _>>()?,
    })
}

/// The time between two runs of `schedule` (for cron: the next two slots).
fn interval_of(schedule: &Schedule, probe: &str) -> Duration {
    match schedule {
        Schedule::Every(d) => *d,
        Schedule::Cron(_) => {
            let first = schedule.next_after(Utc::now(), probe);
            let second = first.and_then(|t| schedule.next_after(t, probe));
            match (first, second) {
                (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
                _ => Duration::from_secs(60),
            }
        }
    }
}

/// Speed for `probe`: a run that times out takes about [`TARGET_TIMEOUT`].
fn auto_speed(timeout: Duration) -> f64 {
    (timeout.as_secs_f64() / TARGET_TIMEOUT.as_secs_f64()).clamp(1.0, MAX_SPEED)
}

async fn play(
    config: &Config,
    probe: &Probe,
    name: &'static str,
    sink: &Sink,
    options: &DrillOptions,
) -> Result<ScenarioResult, DrillError> {
    let interval = interval_of(&probe.schedule, &probe.name);
    let speed = options.speed.unwrap_or_else(|| auto_speed(probe.timeout));
    let plan =
        scenario::plan(name, probe, interval).ok_or_else(|| DrillError::UnknownScenario {
            name: name.to_string(),
            known: scenario::ALL.join(", "),
        })?;
    let world = World::start(config, probe, &plan, speed, sink, options.notify).await?;
    let played = world.play(&plan.steps, interval, sink).await;
    world.stop().await;
    let verdict = scenario::judge(&plan, probe, &played);
    Ok(ScenarioResult {
        probe: probe.name.clone(),
        scenario: plan.name,
        expect: plan.expect,
        verdict,
        played,
        speed,
        interval,
    })
}

/// The virtual clock of one world: each run starts at its scheduled time,
/// and time inside a run passes `speed` times faster than real time.
struct DrillClock {
    speed: f64,
    run: Mutex<(DateTime<Utc>, std::time::Instant)>,
}

impl DrillClock {
    fn begin_run(&self, at: DateTime<Utc>) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = (at, std::time::Instant::now());
    }

    fn now(&self) -> DateTime<Utc> {
        let (at, real) = *self.run.lock().unwrap_or_else(|e| e.into_inner());
        at + chrono::Duration::from_std(real.elapsed().mul_f64(self.speed))
            .unwrap_or(chrono::Duration::zero())
    }
}

/// One probe's stand-in pipeline for one scenario.
struct World {
    id: String,
    probe: Probe,
    speed: f64,
    timeout: Duration,
    carrier: MockGateway,
    inbox: Arc<Inbox>,
    public_url: Url,
    inbound_url: String,
    closed_url: String,
    healthy: Duration,
    slow: Duration,
    monitor: Arc<Monitor>,
    /// The world's own config, which `reconcile` reads.
    config: Config,
    clock: Arc<DrillClock>,
    stop_listener: tokio::sync::oneshot::Sender<()>,
    listener: tokio::task::JoinHandle<()>,
    // Holds the store until the world is gone.
    _dir: tempfile::TempDir,
}

impl World {
    async fn start(
        config: &Config,
        probe: &Probe,
        plan: &scenario::Plan,
        speed: f64,
        sink: &Sink,
        notify: bool,
    ) -> Result<World, DrillError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| DrillError::Setup(format!("{what}: {e}"));
        let id = ulid::Ulid::generate().to_string();
        let dir = tempfile::tempdir().map_err(|e| setup("temporary directory", &e))?;
        let scaled = |d: Duration| d.div_f64(speed);

        let mut drilled = probe.clone();
        drilled.gateway = GATEWAY.to_string();
        drilled.receiver = RECEIVER.to_string();
        drilled.timeout = scaled(probe.timeout);
        drilled.threshold = scaled(probe.threshold);
        drilled.retry.initial = scaled(probe.retry.initial);
        drilled.alerts = vec![SINK.to_string()];
        let mut world_config = config.clone();
        let mut alerts = BTreeMap::new();
        if notify {
            for name in &probe.alerts {
                if let Some(channel) = config.alerts.get(name) {
                    alerts.insert(name.clone(), channel.clone());
                    drilled.alerts.push(name.clone());
                }
            }
        }
        alerts.insert(
            SINK.to_string(),
            AlertConfig::Webhook(WebhookAlertConfig {
                url: sink.url_for(&id),
                secret: None,
                headers: BTreeMap::new(),
            }),
        );
        let defaults = MockConfig::default();
        let carrier_config = MockGatewayConfig {
            account_sid: defaults.account_sid,
            auth_token: defaults.auth_token,
            latency: LatencyModel::Fixed(scaled(probe.threshold / 5)),
            seed: 0,
            numbers: BTreeMap::new(),
            faults: Default::default(),
            api: Default::default(),
        };
        world_config.gateways = BTreeMap::from([(
            GATEWAY.to_string(),
            GatewayConfig::Mock(carrier_config.clone()),
        )]);
        world_config.receivers = BTreeMap::from([(
            RECEIVER.to_string(),
            ReceiverConfig::Webhook(WebhookReceiverConfig {
                gateway: Some(toml::Spanned::new(0..0, GATEWAY.to_string())),
                verify_signatures: true,
                json_secret: None,
                json_signature_header: "X-Signature-256".to_string(),
                json_body: JsonPathExpr::parse("$.body").map_err(|e| setup("json path", &e))?,
            }),
        )]);
        world_config.alerts = alerts;
        world_config.canary.state_dir = dir.path().to_path_buf();
        world_config.canary.public_url = None;
        // With --notify, people see these: they must not pass for a real
        // outage, nor resolve one in Alertmanager.
        world_config.canary.instance = format!("{} (drill)", config.canary.instance);
        world_config.probes = vec![drilled.clone()];
        // The canary's own alerts (the cost guard's) go to the sink only.
        world_config.canary.alerts = Some(vec![SINK.to_string()]);
        if let Some(budget) = plan.budget {
            world_config.defaults.max_messages_per_day = budget;
        }

        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| setup("webhook listener", &e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| setup("webhook listener", &e))?;
        let public_url = world_config.canary.public_url_for(bound);
        let inbox = Inbox::new();
        let hooks = Hooks::new(&world_config, Arc::clone(&inbox), public_url.clone());
        let (stop_listener, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = tokio::spawn(crate::server::serve(
            listener,
            webhook::router(hooks),
            crate::server::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        // The mock's own inbound route: the drill's receiver takes its messages.
        let inbound_path = world_config.gateways[GATEWAY]
            .inbound_route()
            .ok_or_else(|| DrillError::Setup("the mock carrier posts no inbound messages".into()))?
            .path_for(RECEIVER);
        let inbound_url = join_public(&public_url, &inbound_path);
        let closed_url = format!("http://{}{inbound_path}", closed_port().await?);
        let carrier = providers::start_mock(
            GATEWAY,
            &carrier_config,
            [(probe.to.as_str().to_string(), Some(inbound_url.clone()))],
            &providers::Links {
                inbox: &inbox,
                receivers: &world_config.receivers,
            },
        )
        .await
        .map_err(DrillError::Setup)?;

        let state_dir = dir.path().to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&state_dir))
            .await
            .map_err(|e| setup("store", &e))?
            .map_err(|e| setup("store", &e))?;
        let clock = Arc::new(DrillClock {
            speed,
            run: Mutex::new((Utc::now(), std::time::Instant::now())),
        });
        let now = {
            let clock = Arc::clone(&clock);
            Arc::new(move || clock.now())
        };
        let monitor = Monitor::with_clock(&world_config, store, None, now)
            .map_err(|e| setup("alert channels", &e))?;
        Ok(World {
            id,
            probe: drilled,
            speed,
            timeout: probe.timeout,
            carrier,
            inbox,
            public_url,
            inbound_url,
            closed_url,
            healthy: scaled(probe.threshold / 5),
            slow: scaled((probe.threshold + probe.timeout) / 2),
            monitor,
            config: world_config,
            clock,
            stop_listener,
            listener,
            _dir: dir,
        })
    }

    /// Plays `steps`, one run each, `interval` apart in probe time.
    async fn play(&self, steps: &[scenario::Step], interval: Duration, sink: &Sink) -> Played {
        let origin = Utc::now();
        let mut played = Played {
            outcomes: Vec::new(),
            notifications: Vec::new(),
            fault_start: Duration::ZERO,
            fault_end: None,
            silence_end: None,
        };
        let mut silenced = false;
        let mut fault_started = false;
        for (k, step) in steps.iter().enumerate() {
            let at = interval * k as u32;
            if step.is_faulty() && !fault_started {
                fault_started = true;
                played.fault_start = at;
            } else if !step.is_faulty() && fault_started && played.fault_end.is_none() {
                played.fault_end = Some(at);
            }
            self.carrier.carrier.set_faults(step.faults.clone());
            self.carrier.carrier.set_number(
                self.probe.to.as_str(),
                NumberConfig {
                    latency: Some(LatencyModel::Fixed(if step.slow {
                        self.slow
                    } else {
                        self.healthy
                    })),
                    owned: true,
                    inbound_url: Some(if step.receiver_down {
                        self.closed_url.clone()
                    } else {
                        self.inbound_url.clone()
                    }),
                    ..NumberConfig::default()
                },
            );
            let now = origin + chrono::Duration::from_std(at).unwrap_or_default();
            self.clock.begin_run(now);
            if step.silenced != silenced {
                silenced = step.silenced;
                self.set_silence(silenced, now).await;
                if !silenced {
                    played.silence_end = Some(at);
                }
            }
            // The run's whole lifecycle, as cron and the daemon live it:
            // the cost guard may refuse it, which is itself an alert.
            match self.monitor.begin(&self.probe, &self.id, now).await {
                Ok(ticket) => {
                    let wiring = Wiring {
                        gateway: self.carrier.gateway.as_ref(),
                        inbox: &self.inbox,
                        callback_base: Some(&self.public_url),
                        poller: None,
                    };
                    let run =
                        probe::run_as(&self.probe, wiring, ticket.correlation().clone()).await;
                    let run = self.in_probe_time(run);
                    played.outcomes.push(run.outcome);
                    if let Err(e) = ticket.finish(&self.monitor, &self.probe, &run).await {
                        tracing::warn!(probe = %self.probe.name, "drill: cannot record the run: {e}");
                    }
                }
                Err(refusal) => {
                    tracing::debug!(probe = %self.probe.name, "drill: run refused: {}", refusal.reason());
                    // A refused run is the fault (the cost guard's).
                    if !fault_started {
                        fault_started = true;
                        played.fault_start = at;
                    }
                }
            }
            if let Err(e) = self.monitor.deliver_due().await {
                tracing::warn!(probe = %self.probe.name, "drill: outbox delivery failed: {e}");
            }
        }
        played.notifications = sink
            .take(&self.id)
            .into_iter()
            .map(|n| ((n.at - origin).to_std().unwrap_or_default(), n))
            .collect();
        played
    }

    /// Silences the probe, or lifts its silence and tells what it held
    /// back, as `silence` and `unsilence` do.
    async fn set_silence(&self, on: bool, now: DateTime<Utc>) {
        let store = self.monitor.store().clone();
        let probe = self.probe.name.clone();
        let until = now + chrono::Duration::days(1);
        let changed = tokio::task::spawn_blocking(move || {
            if on {
                store.silence(&probe, until, Some("drill"), now)
            } else {
                store.unsilence(&probe).map(|_| ())
            }
        })
        .await;
        if !matches!(changed, Ok(Ok(()))) {
            tracing::warn!(probe = %self.probe.name, "drill: cannot change the silence");
        }
        if !on && let Err(e) = self.monitor.reconcile(&self.config).await {
            tracing::warn!(probe = %self.probe.name, "drill: cannot tell what the silence held back: {e}");
        }
    }

    /// A run's figures and reason in probe time, for the alerts it causes.
    fn in_probe_time(&self, mut run: RunResult) -> RunResult {
        let up = |d: Duration| d.mul_f64(self.speed);
        let scaled_timeout = humantime::format_duration(probe::round_ms(run.timeout)).to_string();
        let timeout = humantime::format_duration(probe::round_ms(self.timeout)).to_string();
        run.latency = run.latency.map(up);
        run.threshold = up(run.threshold);
        run.timeout = self.timeout;
        for phase in [
            &mut run.phases.submit,
            &mut run.phases.sent,
            &mut run.phases.delivered,
            &mut run.phases.received,
        ] {
            *phase = phase.map(up);
        }
        run.reason = match (run.outcome, run.latency) {
            (Outcome::Slow, Some(latency)) => Some(probe::slow_reason(latency, run.threshold)),
            _ => run.reason.map(|r| {
                r.replace(
                    &format!("within {scaled_timeout}"),
                    &format!("within {timeout}"),
                )
            }),
        };
        run
    }

    async fn stop(self) {
        let World {
            carrier,
            stop_listener,
            listener,
            ..
        } = self;
        carrier.carrier.shutdown().await;
        let _ = stop_listener.send(());
        let _ = listener.await;
    }
}

/// A loopback URL nobody listens on: where a downed receiver's messages go.
async fn closed_port() -> Result<std::net::SocketAddr, DrillError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| DrillError::Setup(format!("probing for a closed port: {e}")))?;
    listener
        .local_addr()
        .map_err(|e| DrillError::Setup(format!("probing for a closed port: {e}")))
}

/// Notifications received, by world.
type Captured = Arc<Mutex<HashMap<String, Vec<Notification>>>>;

/// The capturing alert sink: a webhook endpoint per world, over real HTTP,
/// so notifications travel the same outbox and channel code as in production.
struct Sink {
    base: Url,
    captured: Captured,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> Result<Sink, DrillError> {
        let failed = |e: std::io::Error| DrillError::Setup(format!("capturing alert sink: {e}"));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(failed)?;
        let addr = listener.local_addr().map_err(failed)?;
        let captured: Captured = Arc::default();
        let routes = Router::new()
            .route("/drill/{world}", post(capture))
            .with_state(Arc::clone(&captured));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(
            listener,
            routes,
            crate::server::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let base = Url::parse(&format!("http://{addr}/drill/"))
            .map_err(|e| DrillError::Setup(format!("capturing alert sink: {e}")))?;
        Ok(Sink {
            base,
            captured,
            stop,
            server,
        })
    }

    fn url_for(&self, world: &str) -> Url {
        self.base.join(world).unwrap_or_else(|_| self.base.clone())
    }

    /// The notifications a world's outbox delivered, each once (delivery is
    /// at least once; the id is the deduplication key).
    fn take(&self, world: &str) -> Vec<Notification> {
        let mut all = self
            .captured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(world)
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        all.retain(|n| seen.insert(n.id.clone()));
        all.sort_by_key(|n| n.at);
        all
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

async fn capture(
    State(captured): State<Captured>,
    Path(world): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    match serde_json::from_slice::<Notification>(&body) {
        Ok(n) => {
            captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(world)
                .or_default()
                .push(n);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
