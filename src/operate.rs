//! Operator commands on alert state and the outbox: `silence`, `unsilence`,
//! `alerts`, `alerts clear`, `alerts test`, `outbox` and its `retry` and
//! `purge`. They share the daemon's store, and what they send goes through
//! the same outbox, so a silence lifted by hand tells an alert still firing
//! at once, a cleared alert sends its resolve, and a test notification that
//! does not get through is retried and dead-lettered like a real one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::alert::Severity;
use crate::check::CheckError;
use crate::config::Config;
use crate::monitor::{Attempt, Delivered, Monitor, MonitorError, Reconciled};
use crate::store::OutboxEntry;
use crate::store::{Silence, Store, StoreError};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OperateError {
    #[error(transparent)]
    UnknownProbe(#[from] CheckError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error("{0}")]
    Other(String),
}

/// A firing alert, as `alerts` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FiringAlert {
    /// The probe, or one of the canary's own checks (`canary:cost-guard`).
    pub probe: String,
    pub severity: Severity,
    pub since: DateTime<Utc>,
    pub consecutive_failures: u32,
    /// Whether anyone was told (a silence may have held it back).
    pub told: bool,
    pub silenced_until: Option<DateTime<Utc>>,
}

/// What lifting a silence did.
#[derive(Debug, Clone)]
pub struct Unsilenced {
    /// The probe had a silence (in force or expired).
    pub was_silenced: bool,
    /// Notices the silence had held back, told now.
    pub told: Vec<Reconciled>,
    pub delivered: Delivered,
}

/// Fails with the known probes' names unless `probe` is one of them.
fn known(config: &Config, probe: &str) -> Result<(), OperateError> {
    crate::check::select(config, &[probe.to_string()])?;
    Ok(())
}

fn open(config: &Config) -> Result<Store, OperateError> {
    Ok(Store::open(&config.canary.state_dir)?)
}

/// Silences `probe` for `duration` from now; returns when it ends.
pub fn silence(
    config: &Config,
    probe: &str,
    duration: Duration,
    reason: Option<&str>,
) -> Result<DateTime<Utc>, OperateError> {
    known(config, probe)?;
    let now = Utc::now();
    let until = now
        + chrono::Duration::from_std(duration)
            .map_err(|e| OperateError::Other(format!("silence duration: {e}")))?;
    open(config)?.silence(probe, until, reason, now)?;
    Ok(until)
}

/// Lifts `probe`'s silence and tells at once what it held back.
pub async fn unsilence(config: &Config, probe: &str) -> Result<Unsilenced, OperateError> {
    known(config, probe)?;
    let store = open(config)?;
    let was_silenced = store.unsilence(probe)?;
    let monitor = Monitor::new(config, store, None)?;
    let told: Vec<Reconciled> = monitor
        .reconcile(config)
        .await?
        .into_iter()
        .filter(|r| r.probe == probe)
        .collect();
    let delivered = monitor.deliver_due().await?;
    Ok(Unsilenced {
        was_silenced,
        told,
        delivered,
    })
}

/// Every alert firing now, probes and the canary's own checks.
pub fn firing(config: &Config) -> Result<Vec<FiringAlert>, OperateError> {
    let store = open(config)?;
    let now = Utc::now();
    let mut alerts = Vec::new();
    for (probe, state) in store.alert_states()? {
        let Some(firing) = state.firing else {
            continue;
        };
        let silenced_until = store.silenced(&probe, now)?.map(|s: Silence| s.until);
        alerts.push(FiringAlert {
            probe,
            severity: firing.severity,
            since: firing.since,
            consecutive_failures: state.consecutive_failures,
            told: firing.told,
            silenced_until,
        });
    }
    Ok(alerts)
}

/// Resolves `probe`'s firing alert by hand and sends the resolve; `None` if
/// it was not firing.
pub async fn clear(
    config: &Config,
    probe: &str,
) -> Result<(Option<Reconciled>, Delivered), OperateError> {
    let store = open(config)?;
    let firing = store.alert_state(probe)?.firing.is_some();
    // A probe gone from the config may still have an alert to clear.
    if !firing {
        known(config, probe)?;
    }
    let monitor = Monitor::new(config, store, None)?;
    let cleared = monitor.clear(config, probe).await?;
    let delivered = monitor.deliver_due().await?;
    Ok((cleared, delivered))
}

/// Sends a clearly marked test notification to each of `channels` (every
/// configured channel when empty) through the outbox, and says per channel
/// whether it took it.
pub async fn test_channels(
    config: &Config,
    channels: &[String],
) -> Result<Vec<(String, Attempt)>, OperateError> {
    let known: Vec<String> = config.alerts.keys().cloned().collect();
    if known.is_empty() {
        return Err(OperateError::Other(format!(
            "no alert channel is configured in {} (add an [alerts.NAME] table)",
            config.path.display()
        )));
    }
    let channels = if channels.is_empty() {
        known.clone()
    } else {
        channels.to_vec()
    };
    if let Some(unknown) = channels.iter().find(|c| !known.contains(c)) {
        return Err(OperateError::Other(format!(
            "no alert channel named `{unknown}` (known: {})",
            known.join(", ")
        )));
    }
    let monitor = Monitor::new(config, open(config)?, None)?;
    let n = crate::alert::Notification::without_run(
        crate::alert::Transition::Firing,
        crate::alert::TEST_KEY,
        "a test notification sent by `sms-canary alerts test`: nothing is wrong; \
         if you read this, alerts reach you here"
            .to_string(),
        &config.canary.instance,
        None,
        chrono::Utc::now(),
    );
    let n = crate::alert::Notification {
        severity: Severity::Warning,
        ..n
    };
    tracing::info!(channels = channels.len(), id = %n.id, "sending a test notification");
    Ok(monitor.send_now(&n, &channels).await?)
}

/// The notifications not delivered: pending ones and dead letters.
pub fn outbox(config: &Config, limit: usize) -> Result<Vec<OutboxEntry>, OperateError> {
    Ok(open(config)?.undelivered(limit)?)
}

/// Puts dead letters back in the queue (one notification's, or all) and
/// tries them at once; how many were re-queued, and what delivery did.
pub async fn retry_dead(
    config: &Config,
    id: Option<&str>,
) -> Result<(u64, Delivered), OperateError> {
    let store = open(config)?;
    let requeued = store.retry_dead(id, Utc::now())?;
    if requeued == 0
        && let Some(id) = id
    {
        return Err(OperateError::Other(format!(
            "no dead letter with id {id} (see `sms-canary outbox`)"
        )));
    }
    // Said above INFO: an operator's hand on what gets told is worth a line
    // in the log whatever its level.
    tracing::warn!(
        requeued,
        id = id.unwrap_or("all"),
        "dead letters re-queued by hand"
    );
    let monitor = Monitor::new(config, store, None)?;
    let delivered = monitor.deliver_due().await?;
    Ok((requeued, delivered))
}

/// Drops dead letters: one notification's, or those older than `older_than`
/// (all of them with neither). Pending notices are never dropped.
pub fn purge_dead(
    config: &Config,
    id: Option<&str>,
    older_than: Option<Duration>,
) -> Result<u64, OperateError> {
    let before = older_than
        .map(|d| {
            chrono::Duration::from_std(d)
                .map(|d| Utc::now() - d)
                .map_err(|e| OperateError::Other(format!("--older-than: {e}")))
        })
        .transpose()?;
    let purged = open(config)?.purge_dead(id, before)?;
    if purged == 0
        && let Some(id) = id
    {
        return Err(OperateError::Other(format!(
            "no dead letter with id {id} (see `sms-canary outbox`)"
        )));
    }
    tracing::warn!(
        purged,
        id = id.unwrap_or("all"),
        "dead letters purged by hand: their notices will not be sent"
    );
    Ok(purged)
}
