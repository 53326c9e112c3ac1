//! The scheduler: starts each enabled probe at its due time.
//!
//! It sleeps until the earliest due run (never longer than a second, so the
//! watchdog sees it tick), starts every run that is due, and handles control
//! messages in between. Due times are kept ordered, so a wake costs only the
//! runs it starts, whatever the number of probes. A run still going when its next slot comes is not
//! started twice: the slot is skipped and logged. Scheduled and actual start
//! times are both recorded, since the lag is what a schedule promises.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{Control, DaemonOptions, Shared, apply_reload, heartbeat_after, prepare_reload};
use crate::config::{Config, Probe};
use crate::monitor::Refusal;
use crate::probe::{self, Correlation, RunResult, Wiring};

/// The longest the scheduler sleeps without ticking.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub(crate) async fn schedule(
    shared: Arc<Shared>,
    mut control: mpsc::Receiver<Control>,
    options: &DaemonOptions,
) {
    let mut next = due_times(&shared, None);
    // Probes whose alert is firing run at once: a restart must not delay the
    // resolution (or the reminder) of an alert that is already out.
    if let Ok(states) = shared.store.alert_states() {
        let now = shared.clock.now();
        for (probe, state) in states {
            if state.firing.is_some() && next.by_probe.contains_key(&probe) {
                next.set(&probe, now);
            }
        }
    }
    let mut permits = Arc::new(Semaphore::new(shared.config().canary.concurrency.max(1)));
    let mut tasks: JoinSet<()> = JoinSet::new();
    shared
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut enabled = EnabledProbes::new(shared.config());
    // A reload loads off this task; one asked for meanwhile runs after it.
    let mut reloading: Option<tokio::task::JoinHandle<Result<super::Reloaded, String>>> = None;
    let mut reload_again = false;
    loop {
        shared.heartbeat.tick();
        let now = shared.clock.now();
        let config = shared.config();
        if !Arc::ptr_eq(&config, &enabled.config) {
            enabled = EnabledProbes::new(config);
        }
        while let Some((name, at)) = next.pop_due(now) {
            // A probe removed or disabled by a reload is no longer scheduled.
            let Some(probe) = enabled.get(&name) else {
                continue;
            };
            if let Some(n) = probe.schedule.next_after(now, &probe.name) {
                next.set(&probe.name, n);
            }
            if shared.in_flight().contains_key(&probe.name) {
                warn!(probe = %probe.name, "previous run still going: this slot is skipped");
                shared.metrics.probe_skipped(&probe.name, "still_running");
                continue;
            }
            spawn_run(&mut tasks, &shared, &permits, probe.clone(), Some(at), None);
        }
        let wake = next.earliest().map_or(now, |t| {
            t.min(now + chrono::Duration::from_std(MAX_SLEEP).unwrap_or_default())
        });
        let wake = shared
            .clock
            .instant_at(wake)
            .max(Instant::now() + Duration::from_millis(1))
            .min(Instant::now() + MAX_SLEEP);
        tokio::select! {
            _ = sleep_until(wake) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    error!("a run panicked: {e}");
                }
            }
            Some(done) = async { Some(reloading.as_mut()?.await) }, if reloading.is_some() => {
                reloading = None;
                match done {
                    Ok(Ok(reloaded)) => {
                        apply_reload(&shared, reloaded);
                        shared.metrics.config_loaded(true, shared.clock.now());
                        next = due_times(&shared, Some(&next));
                        permits = Arc::new(Semaphore::new(shared.config().canary.concurrency.max(1)));
                        info!(probes = next.len(), "config reloaded");
                    }
                    Ok(Err(e)) => {
                        shared.metrics.config_loaded(false, shared.clock.now());
                        error!("config reload failed, keeping the running config:\n{e}");
                    }
                    Err(e) => {
                        shared.metrics.config_loaded(false, shared.clock.now());
                        error!("config reload failed, keeping the running config: {e}");
                    }
                }
                if std::mem::take(&mut reload_again) {
                    reloading = Some(tokio::spawn(prepare_reload(Arc::clone(&shared))));
                }
            }
            msg = control.recv() => match msg {
                None | Some(Control::Shutdown) => break,
                Some(Control::Reload) if reloading.is_some() => reload_again = true,
                Some(Control::Reload) => {
                    reloading = Some(tokio::spawn(prepare_reload(Arc::clone(&shared))));
                }
                Some(Control::Run { probe, correlation, reply }) => {
                    let config = shared.config();
                    match config.probe(&probe) {
                        None => { let _ = reply.send(Err(format!("no probe named `{probe}`"))); }
                        Some(_) if shared.in_flight().contains_key(&probe) => {
                            let _ = reply.send(Err(format!("probe `{probe}` is running already")));
                        }
                        Some(p) => spawn_run(&mut tasks, &shared, &permits, p.clone(), None, Some((correlation, reply))),
                    }
                }
            },
        }
    }
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    shutdown(&shared, tasks, options.grace).await;
}

/// Next due time per enabled probe, keeping the known ones across a reload.
fn due_times(shared: &Shared, previous: Option<&DueQueue>) -> DueQueue {
    let now = shared.clock.now();
    let mut queue = DueQueue::default();
    for p in shared.config().probes.iter().filter(|p| p.enabled) {
        let kept = previous
            .and_then(|prev| prev.by_probe.get(&p.name))
            .copied();
        if let Some(at) = kept.or_else(|| p.schedule.next_after(now, &p.name)) {
            queue.set(&p.name, at);
        }
    }
    queue
}

/// The enabled probes of one config by name (`Config::probe` is a scan).
struct EnabledProbes {
    config: Arc<Config>,
    by_name: HashMap<String, usize>,
}

impl EnabledProbes {
    fn new(config: Arc<Config>) -> EnabledProbes {
        let by_name = config
            .probes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.enabled)
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        EnabledProbes { config, by_name }
    }

    fn get(&self, name: &str) -> Option<&Probe> {
        self.by_name.get(name).map(|&i| &self.config.probes[i])
    }
}

/// The next due time of each enabled probe, ordered by time: a wake pops only
/// the runs that are due and peeks at the earliest next one, instead of
/// scanning every probe (which, at 10,000 probes, cost more than the runs).
#[derive(Debug, Default)]
struct DueQueue {
    by_time: BTreeSet<(DateTime<Utc>, String)>,
    by_probe: HashMap<String, DateTime<Utc>>,
}

impl DueQueue {
    /// Sets (or moves) `probe`'s next due time.
    fn set(&mut self, probe: &str, at: DateTime<Utc>) {
        if let Some(old) = self.by_probe.insert(probe.to_string(), at) {
            self.by_time.remove(&(old, probe.to_string()));
        }
        self.by_time.insert((at, probe.to_string()));
    }

    /// The earliest due probe if it is due at `now`, removed from the queue.
    fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        if self.by_time.first()?.0 > now {
            return None;
        }
        let (at, probe) = self.by_time.pop_first()?;
        self.by_probe.remove(&probe);
        Some((probe, at))
    }

    /// When the earliest probe is due.
    fn earliest(&self) -> Option<DateTime<Utc>> {
        self.by_time.first().map(|(at, _)| *at)
    }

    fn len(&self) -> usize {
        self.by_probe.len()
    }
}

fn spawn_run(
    tasks: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    probe: Probe,
    scheduled: Option<DateTime<Utc>>,
    manual: Option<(
        Correlation,
        tokio::sync::oneshot::Sender<Result<RunResult, String>>,
    )>,
) {
    let (correlation, reply) = match manual {
        Some((correlation, reply)) => (Some(correlation), Some(reply)),
        None => (None, None),
    };
    shared.in_flight().insert(probe.name.clone(), None);
    let shared = Arc::clone(shared);
    let permits = Arc::clone(permits);
    tasks.spawn(async move {
        let outcome = match permits.acquire_owned().await {
            Ok(_permit) => run_one(&shared, &probe, scheduled, correlation).await,
            Err(_) => Err("the scheduler is shutting down".to_string()),
        };
        shared.in_flight().remove(&probe.name);
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    });
}

/// One run of one probe: begin (cost guard, lease, write-ahead), run,
/// finish (record, release), notify.
async fn run_one(
    shared: &Shared,
    probe: &Probe,
    scheduled: Option<DateTime<Utc>>,
    correlation: Option<Correlation>,
) -> Result<RunResult, String> {
    let now = shared.clock.now();
    if let Some(at) = scheduled {
        let lag = (now - at).num_microseconds().unwrap_or(0) as f64 / 1e3;
        debug!(probe = %probe.name, lag_ms = lag, "scheduled run starting");
    }
    let monitor = shared.monitor();
    let ticket = {
        let _slot = shared.store_starts.acquire().await;
        let correlation = correlation.unwrap_or_default();
        monitor
            .begin_as(probe, shared.holder.name(), now, correlation)
            .await
    };
    let ticket = ticket.map_err(|refusal| {
        // The cost guard's refusal may have queued the canary's own alert.
        if matches!(refusal, Refusal::CostGuard { .. }) {
            shared.outbox_kick.notify_one();
        }
        refusal.reason()
    })?;
    shared
        .in_flight()
        .insert(probe.name.clone(), Some(ticket.correlation().id.clone()));
    let span = probe::span(probe, ticket.correlation());
    let setup = shared.setup();
    let wiring = Wiring {
        gateway: setup.gateway(&probe.gateway),
        inbox: &shared.inbox,
        callback_base: Some(&shared.public_url),
        poller: setup.poller(&probe.receiver),
    };
    let result = probe::run_as(probe, wiring, ticket.correlation().clone()).await;
    shared.metrics.observe_run(&result);
    async {
        let _slot = shared.store_ends.acquire().await;
        if let Err(e) = ticket.finish(&monitor, probe, &result).await {
            error!("cannot record the run: {e}");
        }
    }
    .instrument(span.clone())
    .await;
    shared.outbox_kick.notify_one();
    heartbeat_after(shared, &result).instrument(span).await;
    Ok(result)
}

/// Why runs cut off by a shutdown ended.
const SHUTDOWN_REASON: &str = "interrupted: the daemon shut down before the run ended";

/// Lets in-flight runs finish within `grace`; the rest are stored as interrupted.
async fn shutdown(shared: &Shared, mut tasks: JoinSet<()>, grace: Duration) {
    let in_flight = shared.in_flight().len();
    if in_flight > 0 {
        info!(
            in_flight,
            grace_s = grace.as_secs(),
            "waiting for runs in flight"
        );
    }
    let deadline = Instant::now() + grace;
    while !tasks.is_empty() {
        if timeout_at(deadline, tasks.join_next()).await.is_err() {
            break;
        }
    }
    // Recorded before the tasks are cut, so each keeps this reason rather
    // than the generic one of a ticket dropped unfinished.
    let cut: Vec<(String, Option<String>)> = shared.in_flight().drain().collect();
    for (name, id) in cut {
        // Still waiting for a permit: nothing was begun.
        let Some(id) = id else { continue };
        let store = shared.store.clone();
        let span = info_span!("run", probe = %name, correlation_id = %id);
        let interrupted =
            tokio::task::spawn_blocking(move || store.interrupt_run(&id, SHUTDOWN_REASON));
        match interrupted.instrument(span).await {
            Ok(Ok(_)) => warn!(probe = %name, "run interrupted by shutdown, recorded as such"),
            Ok(Err(e)) => error!(probe = %name, "cannot record the interrupted run: {e}"),
            Err(e) => error!(probe = %name, "cannot record the interrupted run: {e}"),
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Delivers the outbox whenever a run queued something, and retries on time.
pub(crate) async fn outbox_loop(shared: Arc<Shared>) {
    loop {
        match shared.monitor().deliver_due().await {
            Ok(d) if d.sent + d.retrying + d.dead > 0 => {
                debug!(
                    sent = d.sent,
                    retrying = d.retrying,
                    dead = d.dead,
                    "outbox pass"
                )
            }
            Ok(_) => {}
            Err(e) => error!("outbox delivery failed: {e}"),
        }
        let store = shared.store.clone();
        let next = tokio::task::spawn_blocking(move || store.next_notification_due()).await;
        let wait = match next {
            Ok(Ok(Some(at))) => shared.clock.instant_at(at),
            _ => Instant::now() + Duration::from_secs(60),
        };
        let wait = wait
            .min(Instant::now() + Duration::from_secs(60))
            .max(Instant::now() + Duration::from_millis(50));
        tokio::select! {
            _ = sleep_until(wait) => {}
            _ = shared.outbox_kick.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn due_queue_pops_only_due_runs_in_time_order() {
        let mut q = DueQueue::default();
        q.set("late", t("2026-11-27T10:00:30Z"));
        q.set("early", t("2026-11-27T10:00:10Z"));
        q.set("tie", t("2026-11-27T10:00:10Z"));
        assert_eq!(q.earliest(), Some(t("2026-11-27T10:00:10Z")));
        assert_eq!(q.pop_due(t("2026-11-27T10:00:09Z")), None);
        let now = t("2026-11-27T10:00:20Z");
        let mut popped = Vec::new();
        while let Some((p, at)) = q.pop_due(now) {
            popped.push((p, at));
        }
        assert_eq!(
            popped,
            [
                ("early".to_string(), t("2026-11-27T10:00:10Z")),
                ("tie".to_string(), t("2026-11-27T10:00:10Z"))
            ]
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.earliest(), Some(t("2026-11-27T10:00:30Z")));
    }

    #[test]
    fn setting_a_probe_again_moves_its_slot() {
        let mut q = DueQueue::default();
        q.set("p", t("2026-11-27T10:05:00Z"));
        q.set("p", t("2026-11-27T10:00:00Z"));
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.pop_due(t("2026-11-27T10:00:00Z")),
            Some(("p".to_string(), t("2026-11-27T10:00:00Z")))
        );
        assert_eq!(
            q.pop_due(t("2026-11-27T11:00:00Z")),
            None,
            "the old slot is gone"
        );
    }

    /// What the scheduler loop does with the queue, on 10,000 probes over
    /// two minutes of one-second wakes: every run comes out at a wake no
    /// earlier than its slot, exactly once per slot, and the next slot is
    /// exactly one period later.
    #[test]
    fn ten_thousand_probes_each_come_due_once_per_slot() {
        let every = Schedule::parse("every 1m").unwrap();
        let start = t("2026-11-27T10:00:00Z");
        let names: Vec<String> = (0..10_000).map(|i| format!("p{i:05}")).collect();
        let mut q = DueQueue::default();
        for n in &names {
            q.set(n, every.next_after(start, n).unwrap());
        }
        let mut starts: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        for second in 1..=120 {
            let now = start + chrono::Duration::seconds(second);
            while let Some((name, at)) = q.pop_due(now) {
                assert!(at <= now && now - at < chrono::Duration::seconds(1));
                q.set(&name, every.next_after(now, &name).unwrap());
                starts.entry(name).or_default().push(at);
            }
            assert!(q.earliest().unwrap() > now);
        }
        assert_eq!(starts.len(), names.len());
        for (name, slots) in &starts {
            assert_eq!(slots.len(), 2, "{name}: {slots:?}");
            assert_eq!(slots[1] - slots[0], chrono::Duration::minutes(1), "{name}");
        }
    }
}
