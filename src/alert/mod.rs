//! Alerting: the pure state machine ([`state`]) that decides when to tell
//! people, and the notifications it produces.
//!
//! 99% of failures should heal silently; the 1% that matter must be known at
//! once. So single failures only count, `failure_threshold` consecutive ones
//! fire, a permanent refusal (no credit, blocked number) fires immediately,
//! and every notice carries the reason, the provider's code and the recent
//! correlation ids, to trace the failure through every system.

pub mod alertmanager;
pub mod channel;
pub mod email;
pub mod slack;
pub mod state;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use channel::{Channel, ChannelError, build as build_channel};
pub use state::{AlertState, Firing, Observation, Policy, Severity, Transition, evaluate, settle};

use crate::probe::{Outcome, RunResult};

/// One thing to tell people, for every channel of the probe. Serialized into
/// the outbox as it is, so its fields are a stable contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification; with the channel name, the outbox key (and the
    /// receiver's deduplication key, since delivery is at least once).
    pub id: String,
    pub transition: Transition,
    pub probe: String,
    pub instance: String,
    /// The severity of the alert (on a resolved notice: the one it had).
    pub severity: Severity,
    /// The outcome of the run that caused this notice.
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// The provider's error code, when there is one.
    pub code: Option<String>,
    pub latency_ms: Option<f64>,
    pub threshold_ms: f64,
    /// Newest first: the run that caused this, then the ones before it.
    pub correlation_ids: Vec<String>,
    /// When the alert started firing.
    pub firing_since: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

impl Notification {
    /// Builds the notice for `transition`, caused by `run`.
    pub fn new(
        transition: Transition,
        run: &RunResult,
        instance: &str,
        before: &AlertState,
        after: &AlertState,
        recent_ids: Vec<String>,
        at: DateTime<Utc>,
    ) -> Notification {
        let firing = after.firing.as_ref().or(before.firing.as_ref());
        Notification {
            id: ulid::Ulid::generate().to_string(),
            transition,
            probe: run.probe.clone(),
            instance: instance.to_string(),
            severity: firing.map_or(Severity::Critical, |f| f.severity),
            outcome: run.outcome,
            reason: run.reason.clone(),
            code: run.code.clone(),
            latency_ms: run.latency.map(ms),
            threshold_ms: ms(run.threshold),
            correlation_ids: recent_ids,
            firing_since: firing.map(|f| f.since),
            at,
        }
    }

    /// A notice with no run behind it: about the canary itself (`key` is
    /// one of its own checks, e.g. the cost guard), or a probe's alert
    /// resolved because the probe is gone. `reason` says what is wrong, or,
    /// resolved, why it ended.
    pub fn without_run(
        transition: Transition,
        key: &str,
        reason: String,
        instance: &str,
        firing: Option<&Firing>,
        at: DateTime<Utc>,
    ) -> Notification {
        Notification {
            id: ulid::Ulid::generate().to_string(),
            transition,
            probe: key.to_string(),
            instance: instance.to_string(),
            severity: firing.map_or(Severity::Critical, |f| f.severity),
            outcome: Outcome::Error,
            reason: Some(reason),
            code: None,
            latency_ms: None,
            threshold_ms: 0.0,
            correlation_ids: Vec::new(),
            firing_since: firing.map(|f| f.since),
            at,
        }
    }

    /// Whether this notice is about the canary itself rather than a probe.
    pub fn is_about_canary(&self) -> bool {
        is_canary_key(&self.probe)
    }

    /// A one-line summary for chat titles, subjects and logs.
    pub fn headline(&self) -> String {
        if self.is_about_canary() {
            let what = self
                .reason
                .as_deref()
                .unwrap_or("the canary is not running");
            return match self.transition {
                Transition::Resolved => format!("RESOLVED {}: {what}", self.probe),
                Transition::Reminder => format!("STILL CRITICAL {}: {what}", self.probe),
                Transition::Firing => format!("CRITICAL {}: {what}", self.probe),
            };
        }
        match self.transition {
            // Resolved with no good run behind it: the reason says how.
            Transition::Resolved if self.outcome != Outcome::Ok && self.reason.is_some() => {
                format!(
                    "RESOLVED {}: {}",
                    self.probe,
                    self.reason.as_deref().unwrap_or("")
                )
            }
            Transition::Resolved => format!("RESOLVED {}: SMS round trip works again", self.probe),
            t => {
                let what = match self.outcome {
                    Outcome::Slow => "SMS slower than threshold",
                    Outcome::Lost => "SMS lost",
                    Outcome::Undelivered => "SMS undelivered",
                    Outcome::Rejected => "SMS rejected by the gateway",
                    Outcome::Error => "SMS gateway failing",
                    Outcome::Ok => "SMS round trip",
                };
                let tag = if t == Transition::Reminder {
                    "STILL "
                } else {
                    ""
                };
                format!(
                    "{tag}{} {}: {what}",
                    self.severity.as_str().to_uppercase(),
                    self.probe
                )
            }
        }
    }

    /// The body as plain text: what every channel can show.
    pub fn text(&self) -> String {
        let mut lines = vec![self.headline()];
        if self.is_about_canary() {
            if let Some(since) = self.firing_since {
                lines.push(format!("Firing since: {}", since.to_rfc3339()));
            }
            lines.push(format!(
                "Instance: {}  Time: {}",
                self.instance,
                self.at.to_rfc3339()
            ));
            return lines.join("\n");
        }
        if let Some(reason) = &self.reason {
            lines.push(format!("Reason: {reason}"));
        }
        if let Some(code) = &self.code {
            lines.push(format!("Provider code: {code}"));
        }
        let latency = self
            .latency_ms
            .map_or_else(|| "none (no arrival)".to_string(), |l| format!("{l:.0} ms"));
        lines.push(format!(
            "Latency: {latency} (threshold {:.0} ms)",
            self.threshold_ms
        ));
        lines.push(format!("Outcome: {}", self.outcome));
        if let Some(since) = self.firing_since {
            lines.push(format!("Firing since: {}", since.to_rfc3339()));
        }
        lines.push(format!(
            "Correlation ids: {}",
            self.correlation_ids.join(", ")
        ));
        lines.push(format!(
            "Instance: {}  Time: {}",
            self.instance,
            self.at.to_rfc3339()
        ));
        lines.join("\n")
    }
}

/// The prefix of the alert keys of the canary's own checks: probe names
/// cannot hold a `:`, so they never meet a probe's.
pub const CANARY_KEY_PREFIX: &str = "canary:";

/// Whether an alert key is one of the canary's own checks.
pub fn is_canary_key(key: &str) -> bool {
    key.starts_with(CANARY_KEY_PREFIX)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
