//! What a run ends with: one outcome, its phases, and the evidence for it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a run ended (see DESIGN: "A probe run, step by step").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Arrived within the threshold.
    Ok,
    /// Arrived, but slower than the threshold.
    Slow,
    /// Accepted but not seen before the timeout.
    Lost,
    /// A receipt reported a terminal delivery failure.
    Undelivered,
    /// The gateway refused the message with a permanent error.
    Rejected,
    /// Transient errors outlasted the retries, or a receiver failed.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Slow,
        Outcome::Lost,
        Outcome::Undelivered,
        Outcome::Rejected,
        Outcome::Error,
    ];

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Slow => "slow",
            Outcome::Lost => "lost",
            Outcome::Undelivered => "undelivered",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        }
    }

    /// `slow` is a warning; every other failure is critical.
    pub fn status(self) -> Status {
        match self {
            Outcome::Ok => Status::Ok,
            Outcome::Slow => Status::Warning,
            _ => Status::Critical,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Nagios plugin status: also the `check` exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Status {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// With several probes the worst wins: UNKNOWN > CRITICAL > WARNING > OK.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Ok)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time from the start of the submit request to each milestone, on a monotonic clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Until the gateway accepted the message (the last, successful attempt included).
    #[serde(serialize_with = "ms_opt")]
    pub submit: Option<Duration>,
    /// Until a receipt said the carrier sent it.
    #[serde(serialize_with = "ms_opt")]
    pub sent: Option<Duration>,
    /// Until a receipt said the handset got it.
    #[serde(serialize_with = "ms_opt")]
    pub delivered: Option<Duration>,
    /// Until the receiver saw it: the end-to-end latency.
    #[serde(serialize_with = "ms_opt")]
    pub received: Option<Duration>,
}

impl Phases {
    /// Each phase by name, in the order a message goes through them.
    pub fn named(&self) -> [(&'static str, Option<Duration>); 4] {
        [
            ("submit", self.submit),
            ("sent", self.sent),
            ("delivered", self.delivered),
            ("received", self.received),
        ]
    }
}

/// Something worth telling about a run beyond its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A receipt said "delivered" but the message never arrived.
    FakeDlr,
    /// The message arrived more than once; extra copies were ignored.
    Duplicates { count: u32 },
    /// Transient submit errors that the retries absorbed (not a failure).
    Retried { errors: Vec<String> },
}

/// Everything known about one run of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub probe: String,
    pub gateway: String,
    pub receiver: String,
    pub correlation_id: String,
    /// Wall-clock start, for humans and storage; phases use a monotonic clock.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub outcome: Outcome,
    /// Why it failed, in words a person can act on.
    pub reason: Option<String>,
    /// The provider's error code, when there is one.
    pub code: Option<String>,
    #[serde(serialize_with = "ms_opt", rename = "latency_ms")]
    pub latency: Option<Duration>,
    #[serde(serialize_with = "ms", rename = "threshold_ms")]
    pub threshold: Duration,
    #[serde(serialize_with = "ms", rename = "timeout_ms")]
    pub timeout: Duration,
    #[serde(rename = "phases_ms")]
    pub phases: Phases,
    /// The provider's message id, once accepted.
    pub message_id: Option<String>,
    /// Submit attempts made.
    pub attempts: u32,
    pub findings: Vec<Finding>,
    /// Every submit error, retried or not, for the gateway error metrics.
    #[serde(skip)]
    pub gateway_errors: Vec<(crate::net::ErrorClass, Option<String>)>,
}

impl RunResult {
    pub fn status(&self) -> Status {
        self.outcome.status()
    }
}

/// Milliseconds with microsecond precision: enough for latency, readable in JSON.
fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn ms_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}
