//! A run's lifecycle, the same from cron, the daemon and the drill, in one
//! place: [`Monitor::begin`] checks the cost guard, takes the probe's lease
//! and writes the run ahead (one store transaction); the [`Ticket`] it
//! returns is finished with the run's result, which stores the run, feeds
//! the alert state machine, queues its notifications in the persistent
//! outbox and frees the lease (again one transaction). A ticket dropped
//! unfinished (a panic, a cancelled task) records its run as interrupted and
//! frees the lease, so no exit path leaves a probe locked out.
//!
//! The canary's own failure modes are alerts too: a run refused because the
//! day's message budget is spent fires the cost guard's alert through the
//! normal channels, and the first run allowed again resolves it.
//!
//! Delivery is at least once: a notification leaves the outbox only when its
//! channel accepted it; transient failures are retried with backoff; after the
//! retry budget it becomes a dead letter that `history` reports. None is
//! dropped silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::{error, info, warn};

use crate::alert::{self, AlertState, Channel, Notification, Observation, Policy, Transition};
use crate::config::{Config, Probe};
use crate::metrics::Metrics;
use crate::net::ErrorClass;
use crate::probe::{Correlation, RunResult};
use crate::store::{BeginRun, Begun, COST_GUARD_KEY, OutboxItem, StartedRun, Store, StoreError};

/// How long one delivery attempt may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Correlation ids carried by a notification: this run and the ones before it.
const RECENT_IDS: usize = 5;
/// Notifications one outbox pass sends at most; the rest wait for the next.
const MAX_PER_PASS: usize = 200;
/// How long a sender's claim on a notification lasts: past one delivery
/// attempt's limit, so only a sender that died lets it go to another.
const CLAIM_HOLD: Duration = Duration::from_secs(SEND_TIMEOUT.as_secs() + 15);

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alert channel `{name}`: {reason}")]
    Channel { name: String, reason: String },
    #[error("the store task failed: {0}")]
    Join(String),
}

/// Delivery results of one pass over the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u32,
    pub retrying: u32,
    pub dead: u32,
}

/// The store plus the configured alert channels.
pub struct Monitor {
    store: Store,
    instance: String,
    retry: crate::config::RetryPolicy,
    channels: BTreeMap<String, Box<dyn Channel>>,
    metrics: Option<Arc<Metrics>>,
    now: Now,
    /// The cost guard's daily budget.
    cap: u32,
    /// Where the canary's own alerts go.
    canary_channels: Vec<String>,
    /// How often the canary's own alerts remind while they fire.
    reminder: Duration,
    /// Tickets begun and not yet finished: their messages count against the
    /// cost guard before they are recorded.
    in_flight: Arc<AtomicU64>,
    /// Consecutive refusals per probe, so a refusal that repeats is said louder.
    refused: Mutex<HashMap<String, u32>>,
    /// Who this monitor is when it claims outbox entries.
    claimer: String,
    /// Where operators reach the status page, for a link in every notice.
    status_url: Option<url::Url>,
}

/// Why a run was not started. Its [`Refusal::reason`] is what `check`
/// prints and the daemon logs; its [`Refusal::label`] is the metric's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The day's message budget is spent.
    CostGuard {
        cap: u32,
        sent: u64,
        resumes_at: DateTime<Utc>,
    },
    /// Another live process is running the probe.
    LeaseHeld { holder: String },
    /// The run could not be written ahead, so its message is not sent.
    Store(String),
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::CostGuard {
                cap,
                sent,
                resumes_at,
            } => format!(
                "cost guard reached: {sent} of {cap} messages in the last 24h \
                 (max_messages_per_day); probes are not running until {} UTC",
                resumes_at.format("%Y-%m-%d %H:%M")
            ),
            Refusal::LeaseHeld { holder } => format!(
                "another run of this probe is in progress ({}); not sent",
                holder_kind(holder)
            ),
            Refusal::Store(e) => format!("state store: {e}; not sent"),
        }
    }

    /// The `reason` label of `sms_canary_probe_skipped_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::CostGuard { .. } => "cost_guard",
            Refusal::LeaseHeld { .. } => "lease_held",
            Refusal::Store(_) => "store_error",
        }
    }
}

/// Who holds a lease, in words: holders are named `<kind>-<pid>-<ulid>`.
fn holder_kind(holder: &str) -> String {
    let mut parts = holder.splitn(3, '-');
    match (parts.next(), parts.next()) {
        (Some("daemon"), Some(pid)) => format!("the daemon, pid {pid}"),
        (Some("check"), Some(pid)) => format!("a cron or terminal `check`, pid {pid}"),
        _ => format!("holder {holder}"),
    }
}

/// A run that may send its message: leased and written ahead. Finish it
/// with [`Ticket::finish`]; dropped unfinished, it records the run as
/// interrupted and frees the lease.
pub struct Ticket {
    store: Store,
    correlation: Correlation,
    probe: String,
    holder: String,
    in_flight: Arc<AtomicU64>,
    done: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("probe", &self.probe)
            .field("correlation_id", &self.correlation.id)
            .finish()
    }
}

/// The pause between two batches of pruning.
const PRUNE_PAUSE: Duration = Duration::from_millis(20);

/// Why a ticket dropped unfinished ended.
const CUT_OFF_REASON: &str =
    "interrupted: the run was cut off before it ended (a panic, or its task was cancelled)";

impl Ticket {
    pub fn correlation(&self) -> &Correlation {
        &self.correlation
    }

    pub fn probe(&self) -> &str {
        &self.probe
    }

    /// Stores the run with what it caused and frees the lease. Returns the
    /// alert transition it caused, if any.
    pub async fn finish(
        mut self,
        monitor: &Monitor,
        probe: &Probe,
        run: &RunResult,
    ) -> Result<Option<Transition>, MonitorError> {
        let recorded = monitor.record(probe, run, false).await;
        let (store, name, holder) = (self.store.clone(), self.probe.clone(), self.holder.clone());
        let released = match &recorded {
            Ok(_) => blocking(move || store.release_lease(&name, &holder)).await,
            // Not recorded: at least free the lease, and keep the run as
            // interrupted if the store takes that.
            Err(e) => {
                let (store, id, reason) = (
                    self.store.clone(),
                    self.correlation.id.clone(),
                    format!("interrupted: the run's result could not be recorded: {e}"),
                );
                blocking(move || store.interrupt_run(&id, &reason).map(|_| ())).await
            }
        };
        if let Err(e) = released {
            warn!(probe = %self.probe, "cannot release the lease: {e}");
        }
        self.end();
        recorded
    }

    /// Records the run as interrupted with `reason` (nothing counted for
    /// alerting) and frees the lease.
    pub async fn interrupt(mut self, reason: &str) -> Result<(), MonitorError> {
        let (store, id, reason) = (
            self.store.clone(),
            self.correlation.id.clone(),
            reason.to_string(),
        );
        let done = blocking(move || store.interrupt_run(&id, &reason)).await;
        self.end();
        done.map(|_| ())
    }

    fn end(&mut self) {
        if !self.done {
            self.done = true;
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.end();
        let (store, id) = (self.store.clone(), self.correlation.id.clone());
        let interrupt = move || {
            if let Err(e) = store.interrupt_run(&id, CUT_OFF_REASON) {
                warn!(correlation_id = %id, "cannot record a cut-off run as interrupted: {e}");
            }
        };
        // Off the async workers when there is a runtime; a ticket dropped
        // outside one (a panic unwinding past it) does it in place.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(interrupt);
            }
            Err(_) => interrupt(),
        }
    }
}

/// Where the monitor reads the time: the wall clock, except in a drill, whose
/// accelerated clock lets hours of alerting play out in seconds.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("store", &self.store)
            .field("channels", &self.channels.keys())
            .finish()
    }
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, MonitorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MonitorError::Join(e.to_string()))?
        .map_err(MonitorError::from)
}

impl Monitor {
    pub fn new(
        config: &Config,
        store: Store,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Arc<Monitor>, MonitorError> {
        Monitor::with_clock(config, store, metrics, Arc::new(Utc::now))
    }

    /// A monitor that stamps runs, alerts and outbox entries with `now`.
    pub fn with_clock(
        config: &Config,
        store: Store,
        metrics: Option<Arc<Metrics>>,
        now: Now,
    ) -> Result<Arc<Monitor>, MonitorError> {
        let mut channels = BTreeMap::new();
        for (name, channel) in &config.alerts {
            let built = alert::build_channel(name, channel).map_err(|e| MonitorError::Channel {
                name: name.clone(),
                reason: e.reason,
            })?;
            channels.insert(name.clone(), built);
        }
        Ok(Arc::new(Monitor {
            store,
            instance: config.canary.instance.clone(),
            retry: config.canary.notify_retry,
            channels,
            metrics,
            now,
            cap: config.defaults.max_messages_per_day,
            canary_channels: config.canary_channels(),
            status_url: config.canary.status_url.clone(),
            reminder: config.defaults.reminder,
            in_flight: Arc::new(AtomicU64::new(0)),
            refused: Mutex::new(HashMap::new()),
            claimer: format!(
                "{}-{}-{}",
                config.canary.instance,
                std::process::id(),
                ulid::Ulid::generate()
            ),
        }))
    }

    /// Starts a run of `probe` for `holder` at `now`: the cost guard, the
    /// lease and the write-ahead. A lease held by a process that has ended
    /// is taken over at once (its runs recorded as interrupted). A refusal
    /// is counted, logged (at WARN once it repeats) and, for the cost guard,
    /// raised as the canary's own alert.
    pub async fn begin(
        &self,
        probe: &Probe,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, Refusal> {
        self.begin_as(probe, holder, now, Correlation::new()).await
    }

    /// As [`Monitor::begin`], under a correlation chosen by the caller: the
    /// run API answers with a run's id before the run has begun.
    pub async fn begin_as(
        &self,
        probe: &Probe,
        holder: &str,
        now: DateTime<Utc>,
        correlation: Correlation,
    ) -> Result<Ticket, Refusal> {
        let begin = BeginRun {
            run: StartedRun {
                probe: probe.name.clone(),
                correlation_id: correlation.id.clone(),
                instance: self.instance.clone(),
                holder: holder.to_string(),
                started_at: now,
                threshold: probe.threshold,
                timeout: probe.timeout,
            },
            lease_ttl: probe.timeout + Duration::from_secs(60),
            cap: self.cap,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        };
        let mut begun = self.begin_run(&begin).await;
        if let Ok(Begun::LeaseHeld { holder: other }) = &begun {
            let (store, other) = (self.store.clone(), other.clone());
            if let Ok(Some(runs)) =
                blocking(move || crate::store::recover_if_dead(&store, &other)).await
            {
                info!(probe = %probe.name, interrupted = runs.len(), "the process holding this probe's lease has ended: lease taken over");
                begun = self.begin_run(&begin).await;
            }
        }
        let refusal = match begun {
            Ok(Begun::Started { cost_guard_firing }) => {
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                self.refused_streak(&probe.name, None);
                if cost_guard_firing {
                    self.feed_canary_alert(COST_GUARD_KEY, None, now).await;
                }
                return Ok(Ticket {
                    store: self.store.clone(),
                    correlation,
                    probe: probe.name.clone(),
                    holder: holder.to_string(),
                    in_flight: Arc::clone(&self.in_flight),
                    done: false,
                });
            }
            Ok(Begun::CostGuard { sent, resumes_at }) => Refusal::CostGuard {
                cap: self.cap,
                sent,
                resumes_at,
            },
            Ok(Begun::LeaseHeld { holder }) => Refusal::LeaseHeld { holder },
            Err(e) => Refusal::Store(e.to_string()),
        };
        let streak = self.refused_streak(&probe.name, Some(&refusal));
        if let Some(m) = &self.metrics {
            m.probe_skipped(&probe.name, refusal.label());
        }
        let reason = refusal.reason();
        if streak > 1 || matches!(refusal, Refusal::Store(_)) {
            warn!(probe = %probe.name, skipped = streak, "run skipped: {reason}");
        } else {
            info!(probe = %probe.name, "run skipped: {reason}");
        }
        if matches!(refusal, Refusal::CostGuard { .. }) {
            self.feed_canary_alert(COST_GUARD_KEY, Some(reason), now)
                .await;
        }
        Err(refusal)
    }

    async fn begin_run(&self, begin: &BeginRun) -> Result<Begun, MonitorError> {
        let (store, begin) = (self.store.clone(), begin.clone());
        blocking(move || store.begin_run(&begin)).await
    }

    /// Counts `probe`'s consecutive refusals (`None`: it started); returns the count.
    fn refused_streak(&self, probe: &str, refusal: Option<&Refusal>) -> u32 {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refusal {
            None => {
                refused.remove(probe);
                0
            }
            Some(_) => {
                let n = refused.entry(probe.to_string()).or_default();
                *n += 1;
                *n
            }
        }
    }

    /// Feeds one of the canary's own checks (`key`) into the alert state
    /// machine: `Some(reason)` it is failing, `None` it works. It fires at
    /// once, reminds like a probe and resolves on the first good sign; its
    /// notices go to the canary's channels through the outbox.
    async fn feed_canary_alert(
        &self,
        key: &'static str,
        failing: Option<String>,
        now: DateTime<Utc>,
    ) {
        let store = self.store.clone();
        let instance = self.instance.clone();
        let channels = self.canary_channels.clone();
        let policy = Policy {
            failure_threshold: 1,
            success_threshold: 1,
            reminder: self.reminder,
            fire_on_permanent: false,
            silenced: false,
        };
        let fed = blocking(move || {
            let before = store.alert_state(key)?;
            let outcome = if failing.is_some() {
                crate::probe::Outcome::Error
            } else {
                crate::probe::Outcome::Ok
            };
            let (after, transition) =
                alert::evaluate(&before, &Observation { outcome, at: now }, &policy);
            if after == before {
                return Ok(None);
            }
            let mut outbox = Vec::new();
            if let Some(t) = transition {
                let reason =
                    failing.unwrap_or_else(|| "the canary's check passes again".to_string());
                let firing = after.firing.as_ref().or(before.firing.as_ref());
                let n = Notification::without_run(t, key, reason, &instance, firing, now);
                warn!(check = key, transition = ?t, channels = channels.len(), "{}", n.headline());
                outbox = fan_out(&channels, &n);
            }
            store.record_alert(key, &after, &outbox, now)?;
            Ok(transition)
        })
        .await;
        if let Err(e) = fed {
            error!(check = key, "cannot record the canary's own alert: {e}");
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores a finished run with its alert state and queued notifications.
    /// Returns the alert transition it caused, if any.
    pub async fn record(
        &self,
        probe: &Probe,
        run: &RunResult,
        interrupted: bool,
    ) -> Result<Option<Transition>, MonitorError> {
        let store = self.store.clone();
        let instance = self.instance.clone();
        let status = self.status_url.clone();
        let probe = probe.clone();
        let run = run.clone();
        let now = (self.now)();
        blocking(move || {
            let before = store.alert_state(&probe.name)?;
            let policy = policy_of(&probe, store.silenced(&probe.name, now)?.is_some());
            // An interrupted run says nothing about the pipeline: store it, count nothing.
            let (mut after, transition) = if interrupted {
                (before.clone(), None)
            } else {
                alert::evaluate(&before, &Observation { outcome: run.outcome, at: now }, &policy)
            };
            if let Some(firing) = &mut after.firing {
                firing.channels = probe.alerts.clone();
            }
            let mut outbox = Vec::new();
            if let Some(t) = transition {
                let facts = facts(&store, &probe, &run.correlation_id, status.as_ref())?;
                let n = Notification::new(t, &run, &instance, &before, &after, facts, now);
                note_firing_notice(&mut after, t, &n);
                outbox = fan_out(&probe.alerts, &n);
                info!(probe = %probe.name, transition = ?t, channels = outbox.len(), "alert {}", n.headline());
            }
            store.record_run(&run, &instance, interrupted, &after, &outbox, now)?;
            Ok(transition)
        })
        .await
    }

    /// Sends every notification that is due; failures are rescheduled or
    /// dead-lettered in the store.
    pub async fn deliver_due(&self) -> Result<Delivered, MonitorError> {
        let mut result = Delivered::default();
        // One at a time, each claimed before it is sent: another process
        // sharing the store (a daemon, a cron check) never sends it too.
        for _ in 0..MAX_PER_PASS {
            let (store, claimer, at) = (self.store.clone(), self.claimer.clone(), (self.now)());
            let claimed = blocking(move || store.claim_next(&claimer, at, CLAIM_HOLD)).await?;
            let Some(entry) = claimed else {
                break;
            };
            match self.deliver(entry).await? {
                Attempt::Sent => result.sent += 1,
                Attempt::Retrying { .. } => result.retrying += 1,
                Attempt::Dead(_) => result.dead += 1,
            }
        }
        self.count_outbox().await;
        Ok(result)
    }

    /// Queues `n` for `channels` and tries each at once, as any notice is
    /// sent (claimed, retried or dead-lettered on failure): what `alerts
    /// test` checks. The outcome per channel, in order.
    pub async fn send_now(
        &self,
        n: &Notification,
        channels: &[String],
    ) -> Result<Vec<(String, Attempt)>, MonitorError> {
        let (store, outbox, now) = (self.store.clone(), fan_out(channels, n), (self.now)());
        blocking(move || store.queue(&outbox, now)).await?;
        let mut outcomes = Vec::new();
        for channel in channels {
            let (store, claimer, id, name, at) = (
                self.store.clone(),
                self.claimer.clone(),
                n.id.clone(),
                channel.clone(),
                (self.now)(),
            );
            let claimed =
                blocking(move || store.claim(&id, &name, &claimer, at, CLAIM_HOLD)).await?;
            if let Some(entry) = claimed {
                outcomes.push((channel.clone(), self.deliver(entry).await?));
            }
        }
        self.count_outbox().await;
        Ok(outcomes)
    }

    /// Sends one claimed entry and records what happened.
    async fn deliver(&self, entry: crate::store::OutboxEntry) -> Result<Attempt, MonitorError> {
        let id = entry.notification.id.clone();
        let outcome = match self.channels.get(&entry.channel) {
            None => Err(alert::ChannelError {
                class: ErrorClass::Permanent,
                reason: format!("alert channel `{}` is no longer configured", entry.channel),
                code: None,
                retry_after: None,
            }),
            Some(channel) => {
                // A follow-up threads under the message that told the firing.
                let thread = match &entry.notification.follows {
                    Some(first) => {
                        let (store, first, name) =
                            (self.store.clone(), first.clone(), entry.channel.clone());
                        blocking(move || store.delivered_ref(&first, &name))
                            .await
                            .unwrap_or(None)
                    }
                    None => None,
                };
                let sent = channel.send_in_thread(&entry.notification, thread.as_deref());
                match tokio::time::timeout(SEND_TIMEOUT, sent).await {
                    Ok(r) => r,
                    Err(_) => Err(alert::ChannelError {
                        class: ErrorClass::Transient,
                        reason: format!("no answer within {}s", SEND_TIMEOUT.as_secs()),
                        code: None,
                        retry_after: None,
                    }),
                }
            }
        };
        let store = self.store.clone();
        let channel = entry.channel.clone();
        let now = (self.now)();
        if let Some(m) = &self.metrics {
            m.alert_sent(&entry.channel, outcome.is_ok());
        }
        match outcome {
            Ok(reference) => {
                blocking(move || store.mark_delivered_as(&id, &channel, reference.as_deref(), now))
                    .await?;
                Ok(Attempt::Sent)
            }
            Err(e) => {
                let attempts = entry.attempts + 1;
                let retry_at = (e.class == ErrorClass::Transient && attempts < self.retry.attempts)
                    .then(|| {
                        retry_time(
                            now,
                            self.retry
                                .delay_after(attempts)
                                .max(e.retry_after.unwrap_or_default()),
                        )
                    });
                match retry_at {
                    Some(at) => {
                        warn!(channel = %entry.channel, attempts, error = %e.reason, retry_at = %at, "notification not delivered, will retry");
                    }
                    None => {
                        warn!(channel = %entry.channel, attempts, error = %e.reason, "notification dead-lettered");
                    }
                }
                let reason = e.reason.clone();
                blocking(move || store.mark_failed(&id, &channel, &reason, retry_at, now)).await?;
                Ok(match retry_at {
                    Some(at) => Attempt::Retrying {
                        reason: e.reason,
                        at,
                    },
                    None => Attempt::Dead(e.reason),
                })
            }
        }
    }

    /// Prunes raw runs older than `retention` and rollups older than
    /// `rollup_retention`, batch after batch (each a short transaction, with
    /// a pause between, so runs starting meanwhile barely wait), at most
    /// `max_batches` of them. What it removed.
    pub async fn prune(
        &self,
        retention: Duration,
        rollup_retention: Duration,
        max_batches: usize,
    ) -> Result<crate::store::Pruned, MonitorError> {
        let now = (self.now)();
        let before =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let (runs_before, rollups_before) = (before(retention), before(rollup_retention));
        let mut total = crate::store::Pruned::default();
        for _ in 0..max_batches {
            let store = self.store.clone();
            let pruned = blocking(move || store.prune(runs_before, rollups_before)).await?;
            if pruned.is_empty() {
                break;
            }
            total.runs += pruned.runs;
            total.rollups += pruned.rollups;
            total.notifications += pruned.notifications;
            // A batch short of full took the last of it: no pause for nothing.
            let batch = crate::store::PRUNE_BATCH as u64;
            if pruned.runs < batch && pruned.rollups < batch {
                break;
            }
            // Several times a batch's own time: the writes of runs that start
            // meanwhile go first, and a month of 100 probes still goes in a
            // few minutes.
            tokio::time::sleep(PRUNE_PAUSE).await;
        }
        if !total.is_empty() {
            info!(
                runs = total.runs,
                rollups = total.rollups,
                notifications = total.notifications,
                "pruned what retention no longer keeps"
            );
        }
        Ok(total)
    }

    /// Brings the outbox gauges up to date.
    async fn count_outbox(&self) {
        if let Some(m) = &self.metrics {
            let store = self.store.clone();
            if let Ok((pending, dead, by_hand)) = blocking(move || {
                Ok((
                    store.pending_notifications()?,
                    store.dead_letter_count()?,
                    store.outbox_actions()?,
                ))
            })
            .await
            {
                m.set_outbox_pending(pending);
                m.set_outbox_dead_letters(dead);
                m.set_outbox_actions(by_hand);
            }
        }
    }
}

/// What one delivery attempt of a notice to a channel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Not taken; tried again at `at`.
    Retrying {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Not taken, and not tried again: a dead letter.
    Dead(String),
}

/// The alert key of the canary's own check of its state store.
pub const STORE_KEY: &str = "canary:state-store";

impl Monitor {
    /// Sends a notice about the canary itself straight to its channels,
    /// bypassing the outbox: for when the store (and so the outbox) is what
    /// fails. Returns how many channels took it; the caller tries again
    /// later when none did.
    pub async fn tell_now(&self, transition: Transition, key: &str, reason: String) -> usize {
        let n =
            Notification::without_run(transition, key, reason, &self.instance, None, (self.now)());
        warn!(check = key, transition = ?transition, "{} (sent directly, not through the outbox)", n.headline());
        let mut took = 0;
        for name in &self.canary_channels {
            let Some(channel) = self.channels.get(name) else {
                continue;
            };
            match tokio::time::timeout(SEND_TIMEOUT, channel.send(&n)).await {
                Ok(Ok(())) => {
                    took += 1;
                    if let Some(m) = &self.metrics {
                        m.alert_sent(name, true);
                    }
                }
                outcome => {
                    if let Some(m) = &self.metrics {
                        m.alert_sent(name, false);
                    }
                    let why = match outcome {
                        Ok(Err(e)) => e.reason,
                        _ => format!("no answer within {}s", SEND_TIMEOUT.as_secs()),
                    };
                    warn!(channel = %name, check = key, "cannot send the canary's own alert: {why}");
                }
            }
        }
        took
    }
}

/// The alert policy of `probe`.
fn policy_of(probe: &Probe, silenced: bool) -> Policy {
    Policy {
        failure_threshold: probe.failure_threshold,
        success_threshold: probe.success_threshold,
        reminder: probe.reminder,
        fire_on_permanent: probe.alert_on_permanent,
        silenced,
    }
}

/// Why a firing alert is resolved without a run of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfired {
    /// Its probe's file is gone from the config.
    Removed,
    /// Its probe is `enabled = false`.
    Disabled,
    /// An operator ran `sms-canary alerts clear`.
    ClearedByHand,
}

impl Unfired {
    pub fn reason(self) -> &'static str {
        match self {
            Unfired::Removed => "resolved: the probe was removed from the config",
            Unfired::Disabled => "resolved: the probe was disabled",
            Unfired::ClearedByHand => "resolved by hand (`sms-canary alerts clear`)",
        }
    }
}

/// One alert state brought up to date by [`Monitor::reconcile`] or
/// [`Monitor::clear`], and what was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub probe: String,
    pub transition: Transition,
    /// Set when the alert was resolved without a run.
    pub unfired: Option<Unfired>,
}

impl Monitor {
    /// Brings every alert state in line with `config` and the silences in
    /// force now: an alert whose probe is gone or disabled is resolved (told
    /// where it was told, if it was), and what a silence that has ended held
    /// back is told. Run on every start and reload, by `unsilence`, and by
    /// the daemon when a silence expires.
    pub async fn reconcile(&self, config: &Config) -> Result<Vec<Reconciled>, MonitorError> {
        let store = self.store.clone();
        let states = blocking(move || store.alert_states_to_reconcile()).await?;
        let mut done = Vec::new();
        for (key, state) in states {
            if alert::is_canary_key(&key) {
                continue;
            }
            let changed = match config.probe(&key) {
                None => self.unfire(&key, &state, Unfired::Removed, &[]).await?,
                Some(p) if !p.enabled => {
                    self.unfire(&key, &state, Unfired::Disabled, &p.alerts)
                        .await?
                }
                Some(p) => self.settle(p, state).await?,
            };
            done.extend(changed);
        }
        Ok(done)
    }

    /// Resolves `probe`'s alert by hand (`sms-canary alerts clear`); `None`
    /// if it was not firing.
    pub async fn clear(
        &self,
        config: &Config,
        probe: &str,
    ) -> Result<Option<Reconciled>, MonitorError> {
        let store = self.store.clone();
        let key = probe.to_string();
        let state = blocking(move || store.alert_state(&key)).await?;
        if state.firing.is_none() {
            return Ok(None);
        }
        let channels = config
            .probe(probe)
            .map(|p| p.alerts.clone())
            .unwrap_or_default();
        self.unfire(probe, &state, Unfired::ClearedByHand, &channels)
            .await
    }

    /// Resolves a firing alert without a run, and forgets its counts.
    async fn unfire(
        &self,
        key: &str,
        state: &AlertState,
        why: Unfired,
        channels: &[String],
    ) -> Result<Option<Reconciled>, MonitorError> {
        let Some(firing) = state.firing.clone() else {
            return Ok(None);
        };
        let now = (self.now)();
        // Where it was told; states from before channels were kept, or a
        // probe gone with its file: where the probe says, else the canary's.
        let channels: Vec<String> = [&firing.channels[..], channels, &self.canary_channels[..]]
            .into_iter()
            .find(|c| !c.is_empty())
            .unwrap_or_default()
            .to_vec();
        let mut outbox = Vec::new();
        if firing.told {
            let n = Notification::without_run(
                Transition::Resolved,
                key,
                why.reason().into(),
                &self.instance,
                Some(&firing),
                now,
            );
            info!(probe = %key, channels = channels.len(), "alert {}", n.headline());
            outbox = fan_out(&channels, &n);
        }
        let (store, name) = (self.store.clone(), key.to_string());
        let told = !outbox.is_empty();
        blocking(move || store.record_alert(&name, &AlertState::default(), &outbox, now)).await?;
        Ok(told.then(|| Reconciled {
            probe: key.to_string(),
            transition: Transition::Resolved,
            unfired: Some(why),
        }))
    }

    /// Tells what a silence held back from `probe`, if the silence is over.
    async fn settle(
        &self,
        probe: &Probe,
        state: AlertState,
    ) -> Result<Option<Reconciled>, MonitorError> {
        if state.withheld.is_none() {
            return Ok(None);
        }
        let store = self.store.clone();
        let instance = self.instance.clone();
        let status = self.status_url.clone();
        let probe = probe.clone();
        let now = (self.now)();
        blocking(move || {
            let policy = policy_of(&probe, store.silenced(&probe.name, now)?.is_some());
            let (mut after, transition) = alert::settle(&state, &policy, now);
            let Some(t) = transition else {
                return Ok(None);
            };
            if let Some(firing) = &mut after.firing {
                firing.channels = probe.alerts.clone();
            }
            // Told with the facts of the probe's latest run.
            let last = store.recent_runs(Some(&probe.name), 1)?.into_iter().next();
            let n = match last {
                Some(run) => {
                    let mut run = run.into_result();
                    run.gateway = probe.gateway.clone();
                    run.receiver = probe.receiver.clone();
                    let facts = facts(&store, &probe, &run.correlation_id, status.as_ref())?;
                    Notification::new(t, &run, &instance, &state, &after, facts, now)
                }
                None => Notification::without_run(t, &probe.name, "a silence ended".into(), &instance, after.firing.as_ref(), now),
            };
            note_firing_notice(&mut after, t, &n);
            info!(probe = %probe.name, transition = ?t, channels = probe.alerts.len(), "silence over: alert {}", n.headline());
            let outbox = fan_out(&probe.alerts, &n);
            store.record_alert(&probe.name, &after, &outbox, now)?;
            Ok(Some(Reconciled { probe: probe.name.clone(), transition: t, unfired: None }))
        })
        .await
    }
}

/// What a notice about `probe` tells beyond its run: the runs before it,
/// the masked destination, its links (with its status page when the
/// operators' address of it is known), its last good run.
fn facts(
    store: &Store,
    probe: &Probe,
    correlation_id: &str,
    status: Option<&url::Url>,
) -> Result<alert::Facts, StoreError> {
    let status_page = status.map(|base| ("Status page", probe_page(base, &probe.name)));
    Ok(alert::Facts {
        recent_ids: store.recent_correlation_ids(&probe.name, RECENT_IDS)?,
        destination: Some(probe.to.masked()),
        links: probe
            .links(correlation_id)
            .into_iter()
            .chain(status_page)
            .map(|(label, url)| alert::Link {
                label: label.to_string(),
                url,
            })
            .collect(),
        last_ok: store
            .last_ok_run(&probe.name)?
            .map(|(at, correlation_id)| alert::LastOk { at, correlation_id }),
    })
}

/// The probe's page under the status page at `base` (a path prefix kept).
fn probe_page(base: &url::Url, probe: &str) -> String {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["probes", probe]);
    }
    url.to_string()
}

/// Remembers which notice told a firing, so its reminders and resolve can
/// follow it up (a mail thread, a Slack thread).
fn note_firing_notice(state: &mut AlertState, transition: Transition, n: &Notification) {
    if transition == Transition::Firing
        && let Some(firing) = &mut state.firing
    {
        firing.notice = Some(n.id.clone());
    }
}

/// One notice queued once per channel.
fn fan_out(channels: &[String], n: &Notification) -> Vec<OutboxItem> {
    channels
        .iter()
        .map(|c| OutboxItem {
            channel: c.clone(),
            notification: n.clone(),
        })
        .collect()
}

fn retry_time(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(24))
}
