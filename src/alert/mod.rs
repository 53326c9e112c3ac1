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

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use channel::{Channel, ChannelError, build as build_channel};
pub use state::{AlertState, Firing, Observation, Policy, Severity, Transition, evaluate, settle};

use crate::probe::{Finding, Outcome, RunResult};

/// The version of the notification's JSON (the outbox's rows and the
/// `webhook` channel's body): bumped only when a field changes meaning or
/// disappears; fields may be added within a version.
pub const NOTIFICATION_SCHEMA_VERSION: u32 = 1;

fn schema_version() -> u32 {
    NOTIFICATION_SCHEMA_VERSION
}

/// One thing to tell people, for every channel of the probe. Serialized into
/// the outbox as it is, so its fields are a stable contract (documented by
/// `docs/notification.schema.json`). Fields added after the first release
/// default when an older outbox row is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
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
    /// The probe's gateway and receiver (config names).
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    /// The provider's id of the message (its SID or message-id): what a
    /// carrier support ticket asks for.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The number the probe texts, masked to its last three digits.
    #[serde(default)]
    pub destination: Option<String>,
    /// The phases the run reached, in milliseconds from the submit request.
    #[serde(default)]
    pub phases_ms: BTreeMap<String, f64>,
    /// The run in words: "accepted 812ms, sent 1s 104ms, no delivery
    /// receipt, nothing arrived within 2m".
    #[serde(default)]
    pub progress: Option<String>,
    /// When the current run of failures began, and how many runs failed.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub failed_runs: u32,
    /// The probe's last good run, if the store has one.
    #[serde(default)]
    pub last_ok: Option<LastOk>,
    /// Fake DLR, duplicates, retried errors.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Where to act: the probe's runbook and dashboard.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The firing notice a reminder or resolve follows up (its `id`), so
    /// mail and chat can thread them.
    #[serde(default)]
    pub follows: Option<String>,
}

/// A probe's last good run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastOk {
    pub at: DateTime<Utc>,
    pub correlation_id: String,
}

/// A link a notice offers (a button in Slack, a line in mail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// "Runbook", "Dashboard".
    pub label: String,
    pub url: String,
}

/// What the monitor knows beyond the run and the alert state, for a notice.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Correlation ids of the runs before this one, newest first.
    pub recent_ids: Vec<String>,
    pub destination: Option<String>,
    pub links: Vec<Link>,
    pub last_ok: Option<LastOk>,
}

impl Notification {
    /// Builds the notice for `transition`, caused by `run`.
    pub fn new(
        transition: Transition,
        run: &RunResult,
        instance: &str,
        before: &AlertState,
        after: &AlertState,
        facts: Facts,
        at: DateTime<Utc>,
    ) -> Notification {
        let firing = after.firing.as_ref().or(before.firing.as_ref());
        // A resolve ends a run of failures: its facts are those before it.
        let failing = if after.consecutive_failures > 0 {
            after
        } else {
            before
        };
        let mut ids = vec![run.correlation_id.clone()];
        ids.extend(
            facts
                .recent_ids
                .into_iter()
                .filter(|id| *id != run.correlation_id),
        );
        Notification {
            schema_version: NOTIFICATION_SCHEMA_VERSION,
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
            correlation_ids: ids,
            firing_since: firing.map(|f| f.since),
            at,
            gateway: (!run.gateway.is_empty()).then(|| run.gateway.clone()),
            receiver: (!run.receiver.is_empty()).then(|| run.receiver.clone()),
            message_id: run.message_id.clone(),
            destination: facts.destination,
            phases_ms: run
                .phases
                .named()
                .into_iter()
                .filter_map(|(name, d)| d.map(|d| (name.to_string(), ms(d))))
                .collect(),
            progress: Some(progress(run)),
            failing_since: failing.failing_since,
            failed_runs: failing.consecutive_failures,
            // A resolve's own run is the good one.
            last_ok: facts.last_ok.filter(|_| transition != Transition::Resolved),
            findings: run.findings.clone(),
            links: facts.links,
            follows: match transition {
                Transition::Firing => None,
                _ => firing.and_then(|f| f.notice.clone()),
            },
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
            schema_version: NOTIFICATION_SCHEMA_VERSION,
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
            gateway: None,
            receiver: None,
            message_id: None,
            destination: None,
            phases_ms: BTreeMap::new(),
            progress: None,
            failing_since: None,
            failed_runs: 0,
            last_ok: None,
            findings: Vec::new(),
            links: Vec::new(),
            follows: match transition {
                Transition::Firing => None,
                _ => firing.and_then(|f| f.notice.clone()),
            },
        }
    }

    /// Whether this notice is about the canary itself rather than a probe.
    pub fn is_about_canary(&self) -> bool {
        is_canary_key(&self.probe)
    }

    /// A one-line summary for chat titles, subjects and logs, made to sort
    /// and filter: "CRITICAL sandbox-roundtrip: lost", "WARNING p: slow
    /// (still firing)", "RESOLVED p: ok".
    pub fn headline(&self) -> String {
        if self.probe == TEST_KEY {
            return format!(
                "TEST sms-canary ({}): a test notification, nothing is wrong",
                self.instance
            );
        }
        let what = if self.is_about_canary()
            || (self.transition == Transition::Resolved && self.outcome != Outcome::Ok)
        {
            // No run of the pipeline behind it: the reason says what.
            self.reason
                .clone()
                .unwrap_or_else(|| "the canary is not running".to_string())
        } else {
            self.outcome.to_string()
        };
        match self.transition {
            Transition::Resolved => format!("RESOLVED {}: {what}", self.probe),
            Transition::Firing => format!(
                "{} {}: {what}",
                self.severity.as_str().to_uppercase(),
                self.probe
            ),
            Transition::Reminder => format!(
                "{} {}: {what} (still firing)",
                self.severity.as_str().to_uppercase(),
                self.probe
            ),
        }
    }

    /// The facts as labelled lines, in the order a person reads them: what
    /// every channel shows (Slack's fields, the mail's table, plain text).
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = Vec::new();
        if self.is_about_canary() {
            if let Some(since) = self.firing_since {
                facts.push(("Firing since", time(since)));
            }
            facts.push(("Instance", self.instance.clone()));
            facts.push(("Time", time(self.at)));
            return facts;
        }
        if let Some(reason) = &self.reason {
            facts.push(("Reason", reason.clone()));
        }
        if let Some(code) = &self.code {
            facts.push(("Provider code", code.clone()));
        }
        if let Some(progress) = &self.progress {
            facts.push(("Run", progress.clone()));
        }
        let latency = self
            .latency_ms
            .map_or_else(|| "none (nothing arrived)".to_string(), human_ms);
        facts.push((
            "Latency",
            format!("{latency} (threshold {})", human_ms(self.threshold_ms)),
        ));
        let route = match (&self.gateway, &self.receiver) {
            (Some(g), Some(r)) => Some(format!("gateway {g} → receiver {r}")),
            (Some(g), None) => Some(format!("gateway {g}")),
            _ => None,
        };
        if let Some(route) = route {
            let to = self
                .destination
                .as_ref()
                .map(|d| format!(", to {d}"))
                .unwrap_or_default();
            facts.push(("Route", format!("{route}{to}")));
        }
        if let Some(id) = &self.message_id {
            facts.push(("Provider message id", id.clone()));
        }
        if let Some(since) = self.failing_since.filter(|_| self.failed_runs > 0) {
            facts.push((
                "Failing since",
                format!(
                    "{} ({} failed run{})",
                    time(since),
                    self.failed_runs,
                    plural(self.failed_runs)
                ),
            ));
        }
        if let Some(since) = self.firing_since {
            facts.push(("Firing since", time(since)));
        }
        match &self.last_ok {
            Some(ok) => facts.push((
                "Last good run",
                format!("{} ({})", time(ok.at), ok.correlation_id),
            )),
            None if self.transition != Transition::Resolved => {
                facts.push(("Last good run", "none recorded".to_string()))
            }
            None => {}
        }
        for finding in &self.findings {
            facts.push(("Finding", finding_text(finding)));
        }
        facts.push(("Correlation ids", self.correlation_ids.join(", ")));
        for link in &self.links {
            facts.push(if link.label == "Dashboard" {
                ("Dashboard", link.url.clone())
            } else {
                ("Runbook", link.url.clone())
            });
        }
        facts.push(("Instance", self.instance.clone()));
        facts.push(("Time", time(self.at)));
        facts
    }

    /// The body as plain text: what every channel can show.
    pub fn text(&self) -> String {
        let mut lines = vec![self.headline()];
        lines.extend(
            self.facts()
                .into_iter()
                .map(|(label, value)| format!("{label}: {value}")),
        );
        lines.join("\n")
    }
}

/// A time in text: RFC 3339 to the second, in UTC (JSON keeps full precision).
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A duration in text, as humantime writes it ("812ms", "4s 210ms", "2m").
pub fn human(d: Duration) -> String {
    humantime::format_duration(crate::probe::round_ms(d)).to_string()
}

fn human_ms(ms: f64) -> String {
    human(Duration::from_secs_f64((ms / 1e3).max(0.0)))
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn finding_text(finding: &Finding) -> String {
    match finding {
        Finding::FakeDlr => {
            "the delivery receipt said delivered, the message never arrived (fake DLR)".into()
        }
        Finding::Duplicates { count } => format!("{count} duplicate arrival(s) ignored"),
        Finding::Retried { errors } => format!(
            "{} transient error(s) retried: {}",
            errors.len(),
            errors.join("; ")
        ),
    }
}

/// What a run got to, in words: "accepted 812ms, sent 1s 104ms, no
/// delivery receipt, nothing arrived within 2m".
pub fn progress(run: &RunResult) -> String {
    let p = &run.phases;
    let mut parts = Vec::new();
    match p.submit {
        Some(d) => parts.push(format!("accepted {}", human(d))),
        None => {
            parts.push(match run.outcome {
                Outcome::Rejected => "refused at submit".to_string(),
                _ => "never accepted".to_string(),
            });
            return parts.join(", ");
        }
    }
    if let Some(d) = p.sent {
        parts.push(format!("sent {}", human(d)));
    }
    match p.delivered {
        Some(d) => parts.push(format!("delivered {}", human(d))),
        None if run.outcome == Outcome::Undelivered => parts.push("failure receipt".into()),
        None => parts.push("no delivery receipt".into()),
    }
    match p.received {
        Some(d) => parts.push(format!("arrived {}", human(d))),
        None => parts.push(format!("nothing arrived within {}", human(run.timeout))),
    }
    parts.join(", ")
}

/// The prefix of the alert keys of the canary's own checks: probe names
/// cannot hold a `:`, so they never meet a probe's.
pub const CANARY_KEY_PREFIX: &str = "canary:";

/// The key of the notices `sms-canary alerts test` sends.
pub const TEST_KEY: &str = "canary:test";

/// Whether an alert key is one of the canary's own checks.
pub fn is_canary_key(key: &str) -> bool {
    key.starts_with(CANARY_KEY_PREFIX)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
