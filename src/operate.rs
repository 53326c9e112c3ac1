//! Operator commands on alert state: `silence`, `unsilence`, `alerts` and
//! `alerts clear`. They share the daemon's store, and what they change is
//! told through the same outbox, so a silence lifted by hand tells an alert
//! still firing at once and a cleared alert sends its resolve.

use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::alert::Severity;
use crate::check::CheckError;
use crate::config::Config;
use crate::monitor::{Delivered, Monitor, MonitorError, Reconciled};
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
