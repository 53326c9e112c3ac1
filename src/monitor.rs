//! What happens after a run, the same from cron and from the daemon: store
//! the run, feed the alert state machine, queue its notifications in the
//! persistent outbox (all in one transaction), and deliver what is due.
//!
//! Delivery is at least once: a notification leaves the outbox only when its
//! channel accepted it; transient failures are retried with backoff; after the
//! retry budget it becomes a dead letter that `history` reports. None is
//! dropped silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;
use tracing::{info, warn};

use crate::alert::{self, Channel, Notification, Observation, Policy, Transition};
use crate::config::{Config, Probe};
use crate::gateway::ErrorClass;
use crate::metrics::Metrics;
use crate::probe::{Correlation, RunResult};
use crate::store::{OutboxItem, StartedRun, Store, StoreError};

/// How long one delivery attempt may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Correlation ids carried by a notification: this run and the ones before it.
const RECENT_IDS: usize = 5;

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
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Messages the cost guard (`cap` a rolling 24 hours) still allows now.
    /// If the store cannot say, the whole cap: a broken count must not stop monitoring.
    pub async fn messages_left(&self, cap: u32, now: DateTime<Utc>) -> u64 {
        let store = self.store.clone();
        let since = now - chrono::Duration::hours(24);
        let cap = u64::from(cap);
        match blocking(move || store.messages_since(since)).await {
            Ok(sent) => cap.saturating_sub(sent),
            Err(e) => {
                warn!("cost guard: cannot count today's messages: {e}");
                cap
            }
        }
    }

    /// Takes `probe`'s lease for one run (its timeout plus a minute), so that
    /// overlapping runs — cron's or the daemon's — cannot both send.
    pub async fn lease(
        &self,
        probe: &Probe,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, MonitorError> {
        let (store, name, holder) = (self.store.clone(), probe.name.clone(), holder.to_string());
        let ttl = probe.timeout + Duration::from_secs(60);
        blocking(move || store.acquire_lease(&name, &holder, ttl, now)).await
    }

    pub async fn release(&self, probe: &str, holder: &str) {
        let (store, name, holder) = (self.store.clone(), probe.to_string(), holder.to_string());
        if let Err(e) = blocking(move || store.release_lease(&name, &holder)).await {
            warn!(%probe, "cannot release the lease: {e}");
        }
    }

    /// Writes a run ahead, before its message is sent (see [`StartedRun`]).
    pub async fn start_run(
        &self,
        probe: &Probe,
        correlation: &Correlation,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(), MonitorError> {
        let store = self.store.clone();
        let started = StartedRun {
            probe: probe.name.clone(),
            correlation_id: correlation.id.clone(),
            instance: self.instance.clone(),
            holder: holder.to_string(),
            started_at: now,
            threshold: probe.threshold,
            timeout: probe.timeout,
        };
        blocking(move || store.start_run(&started)).await
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
        let probe = probe.clone();
        let run = run.clone();
        let now = (self.now)();
        blocking(move || {
            let before = store.alert_state(&probe.name)?;
            let silenced = store.silenced(&probe.name, now)?.is_some();
            let policy = Policy {
                failure_threshold: probe.failure_threshold,
                success_threshold: probe.success_threshold,
                reminder: probe.reminder,
                fire_on_permanent: probe.alert_on_permanent,
                silenced,
            };
            // An interrupted run says nothing about the pipeline: store it, count nothing.
            let (after, transition) = if interrupted {
                (before.clone(), None)
            } else {
                alert::evaluate(&before, &Observation { outcome: run.outcome, at: now }, &policy)
            };
            let mut outbox = Vec::new();
            if let Some(t) = transition {
                let mut ids = vec![run.correlation_id.clone()];
                ids.extend(store.recent_correlation_ids(&probe.name, RECENT_IDS - 1)?);
                let n = Notification::new(t, &run, &instance, &before, &after, ids, now);
                outbox = probe.alerts.iter().map(|c| OutboxItem { channel: c.clone(), notification: n.clone() }).collect();
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
        let store = self.store.clone();
        let at = (self.now)();
        let due = blocking(move || store.due_notifications(at, 200)).await?;
        let mut result = Delivered::default();
        for entry in due {
            let id = entry.notification.id.clone();
            let outcome = match self.channels.get(&entry.channel) {
                None => Err(alert::ChannelError {
                    class: ErrorClass::Permanent,
                    reason: format!("alert channel `{}` is no longer configured", entry.channel),
                    retry_after: None,
                }),
                Some(channel) => {
                    match tokio::time::timeout(SEND_TIMEOUT, channel.send(&entry.notification))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(alert::ChannelError {
                            class: ErrorClass::Transient,
                            reason: format!("no answer within {}s", SEND_TIMEOUT.as_secs()),
                            retry_after: None,
                        }),
                    }
                }
            };
            let store = self.store.clone();
            let channel = entry.channel.clone();
            let now = (self.now)();
            match outcome {
                Ok(()) => {
                    if let Some(m) = &self.metrics {
                        m.alert_sent(&entry.channel, true);
                    }
                    blocking(move || store.mark_delivered(&id, &channel, now)).await?;
                    result.sent += 1;
                }
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.alert_sent(&entry.channel, false);
                    }
                    let attempts = entry.attempts + 1;
                    let retry_at = (e.class == ErrorClass::Transient
                        && attempts < self.retry.attempts)
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
                            result.retrying += 1;
                        }
                        None => {
                            warn!(channel = %entry.channel, attempts, error = %e.reason, "notification dead-lettered");
                            result.dead += 1;
                        }
                    }
                    let reason = e.reason.clone();
                    blocking(move || store.mark_failed(&id, &channel, &reason, retry_at, now))
                        .await?;
                }
            }
        }
        if let Some(m) = &self.metrics {
            let store = self.store.clone();
            if let Ok((pending, dead)) =
                blocking(move || Ok((store.pending_notifications()?, store.dead_letter_count()?)))
                    .await
            {
                m.set_outbox_pending(pending);
                m.set_outbox_dead_letters(dead);
            }
        }
        Ok(result)
    }
}

fn retry_time(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(24))
}
