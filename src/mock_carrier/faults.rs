//! Injected failures: what chaos drills and reliability tests turn on.
//!
//! Two kinds of fault live here. *Submit faults* (an error burst, a rate
//! limit, an outage window, a provider error code) refuse a create request
//! before a message exists, the way an unhealthy provider would; they are
//! counted down as submits consume them. *Message faults* (drop, duplicate,
//! fake receipt) are rates decided once per accepted message, in submit
//! order, from their own seeded generator: the same seed and the same order
//! of submits give the same decisions, whatever the latency models draw.
//!
//! The same [`Faults`] value comes from a `[gateways.NAME.faults]` TOML table,
//! from the admin API's JSON, or from [`super::MockHandle::set_faults`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::latency::Rng;

/// Mixed into the mock's seed when the faults carry none, so fault decisions
/// do not mirror the latency draws made from the same seed.
const FAULT_SEED_SALT: u64 = 0x6661_756c_7473_0001;

/// The faults in force; every field off by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of accepted messages that are never delivered (no receipt, no arrival).
    pub drop_rate: f64,
    /// Share of delivered messages that reach an owned number twice.
    pub duplicate_rate: f64,
    /// Share of messages whose receipt says delivered while nothing arrives.
    pub fake_dlr_rate: f64,
    /// The next `count` submits fail with an HTTP error status.
    pub errors: Option<ErrorBurst>,
    /// The next `count` submits are throttled (429 with Retry-After).
    pub rate_limit: Option<RateLimit>,
    /// Every submit fails with 503 for a while, counted from when it was set.
    pub outage: Option<Outage>,
    /// Submits fail with this provider error code.
    pub error_code: Option<CodeFault>,
    /// Seed for the rates; without one the mock's own seed is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBurst {
    /// The HTTP status, e.g. 500 or 503.
    pub status: u16,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub count: u32,
    /// Sent as `Retry-After` in whole seconds, rounded up.
    #[serde(with = "human_duration")]
    pub retry_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// How long the outage lasts (`for` in config and JSON).
    #[serde(rename = "for", with = "human_duration")]
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodeFault {
    /// A provider error code (e.g. 21610, or a status such as 9); each API
    /// translates the other's codes to its nearest own one.
    pub code: u32,
    /// How many submits fail; 0 means every submit until the faults are reset.
    #[serde(default)]
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("faults: {field} must be a number from 0 to 1, got {value}")]
    Rate { field: &'static str, value: f64 },
    #[error("faults: errors.status must be an HTTP error status from 400 to 599, got {0}")]
    Status(u16),
    #[error("faults: error_code.code must not be 0")]
    ZeroCode,
}

impl Faults {
    pub fn validate(&self) -> Result<(), FaultError> {
        for (field, value) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("fake_dlr_rate", self.fake_dlr_rate),
        ] {
            // NaN fails the range check too.
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultError::Rate { field, value });
            }
        }
        if let Some(burst) = &self.errors
            && !(400..=599).contains(&burst.status)
        {
            return Err(FaultError::Status(burst.status));
        }
        if self.error_code.as_ref().is_some_and(|c| c.code == 0) {
            return Err(FaultError::ZeroCode);
        }
        Ok(())
    }
}

/// A submit refused by a fault; each API renders it in its own shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SubmitFault {
    Outage,
    Error { status: u16 },
    RateLimited { retry_after_secs: u64 },
}

/// Which faults a message drew at submit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MessageFaults {
    pub(crate) drop: bool,
    pub(crate) duplicate: bool,
    pub(crate) fake_dlr: bool,
}

/// The faults plus what has been consumed of them.
pub(crate) struct FaultState {
    faults: Faults,
    outage_until: Option<Instant>,
    rng: Rng,
    default_seed: u64,
}

impl FaultState {
    pub(crate) fn new(faults: Faults, default_seed: u64) -> Self {
        let mut state = FaultState {
            faults: Faults::default(),
            outage_until: None,
            rng: Rng::new(0),
            default_seed,
        };
        state.set(faults);
        state
    }

    /// Replaces the faults; counts and the outage window start afresh.
    pub(crate) fn set(&mut self, faults: Faults) {
        self.outage_until = faults.outage.as_ref().map(|o| Instant::now() + o.duration);
        self.rng = Rng::new(faults.seed.unwrap_or(self.default_seed ^ FAULT_SEED_SALT));
        self.faults = faults;
    }

    /// The faults as they stand now: counts show what is left, and spent
    /// bursts and past outages are gone.
    pub(crate) fn current(&mut self) -> Faults {
        self.expire_outage(Instant::now());
        self.faults.clone()
    }

    fn expire_outage(&mut self, now: Instant) {
        if self.outage_until.is_some_and(|until| now >= until) {
            self.outage_until = None;
            self.faults.outage = None;
        }
    }

    /// Whether a submit is refused before the provider even looks at it,
    /// consuming one count of the fault that refuses it: an outage first
    /// (nothing gets through), then error bursts, then throttling.
    pub(crate) fn on_request(&mut self) -> Option<SubmitFault> {
        self.expire_outage(Instant::now());
        if self.outage_until.is_some() {
            return Some(SubmitFault::Outage);
        }
        if let Some(burst) = &mut self.faults.errors {
            let status = burst.status;
            burst.count = burst.count.saturating_sub(1);
            if burst.count == 0 {
                self.faults.errors = None;
            }
            return Some(SubmitFault::Error { status });
        }
        if let Some(limit) = &mut self.faults.rate_limit {
            let retry_after_secs = ceil_secs(limit.retry_after);
            limit.count = limit.count.saturating_sub(1);
            if limit.count == 0 {
                self.faults.rate_limit = None;
            }
            return Some(SubmitFault::RateLimited { retry_after_secs });
        }
        None
    }

    /// Whether a submit that passed authentication and validation is refused
    /// with a provider error code, as the provider would refuse it.
    pub(crate) fn on_valid_submit(&mut self) -> Option<u32> {
        if let Some(fault) = &mut self.faults.error_code {
            let code = fault.code;
            // A count of 0 never runs out.
            if fault.count > 0 {
                fault.count -= 1;
                if fault.count == 0 {
                    self.faults.error_code = None;
                }
            }
            return Some(code);
        }
        None
    }

    /// The rate decisions for one accepted message. A rate of 0 draws
    /// nothing, so the decisions of a seed depend only on the rates set.
    pub(crate) fn on_message(&mut self) -> MessageFaults {
        let mut draw = |rate: f64| rate > 0.0 && self.rng.next_f64() < rate;
        let drop = draw(self.faults.drop_rate);
        let duplicate = draw(self.faults.duplicate_rate);
        let fake_dlr = draw(self.faults.fake_dlr_rate);
        MessageFaults {
            drop,
            duplicate,
            fake_dlr,
        }
    }
}

/// Retry-After is whole seconds; rounding down would invite a retry too early.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Durations as humantime strings ("2s", "300ms"), both ways.
mod human_duration {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: {e} (expected e.g. \"2s\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_toml_and_json_round_trip() {
        let f: Faults = toml::from_str(
            r#"
            drop_rate = 0.25
            errors = { status = 503, count = 2 }
            rate_limit = { count = 1, retry_after = "1500ms" }
            outage = { for = "2s" }
            error_code = { code = 21610 }
            seed = 7
            "#,
        )
        .unwrap();
        assert_eq!(f.drop_rate, 0.25);
        assert_eq!(
            f.errors,
            Some(ErrorBurst {
                status: 503,
                count: 2
            })
        );
        assert_eq!(f.outage.as_ref().unwrap().duration, Duration::from_secs(2));
        assert_eq!(f.error_code.as_ref().unwrap().count, 0);
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains(r#""for":"2s""#), "{json}");
        assert_eq!(serde_json::from_str::<Faults>(&json).unwrap(), f);
        let e = toml::from_str::<Faults>("drop = 1.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `drop`"), "{e}");
        let e = toml::from_str::<Faults>("outage = { for = \"soon\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration `soon`"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Faults {
            duplicate_rate: 1.5,
            ..Faults::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("duplicate_rate")
        );
        let nan = Faults {
            drop_rate: f64::NAN,
            ..Faults::default()
        };
        assert!(nan.validate().is_err());
        let status = Faults {
            errors: Some(ErrorBurst {
                status: 200,
                count: 1,
            }),
            ..Faults::default()
        };
        assert_eq!(status.validate(), Err(FaultError::Status(200)));
        assert!(Faults::default().validate().is_ok());
    }

    #[test]
    fn submit_faults_count_down_in_order() {
        let mut s = FaultState::new(
            Faults {
                errors: Some(ErrorBurst {
                    status: 500,
                    count: 2,
                }),
                rate_limit: Some(RateLimit {
                    count: 1,
                    retry_after: Duration::from_millis(1500),
                }),
                error_code: Some(CodeFault {
                    code: 21610,
                    count: 1,
                }),
                ..Faults::default()
            },
            0,
        );
        assert_eq!(s.on_request(), Some(SubmitFault::Error { status: 500 }));
        assert_eq!(s.current().errors.unwrap().count, 1);
        assert_eq!(s.on_request(), Some(SubmitFault::Error { status: 500 }));
        assert_eq!(
            s.on_request(),
            Some(SubmitFault::RateLimited {
                retry_after_secs: 2
            })
        );
        assert_eq!(s.on_request(), None);
        assert_eq!(s.on_valid_submit(), Some(21610));
        assert_eq!(s.on_valid_submit(), None);
        assert_eq!(s.current(), Faults::default());
    }

    #[test]
    fn outage_ends() {
        let mut s = FaultState::new(
            Faults {
                outage: Some(Outage {
                    duration: Duration::ZERO,
                }),
                ..Faults::default()
            },
            0,
        );
        assert_eq!(s.on_request(), None);
        assert_eq!(s.current().outage, None);
    }

    #[test]
    fn seeded_rates_replay() {
        let faults = Faults {
            drop_rate: 0.5,
            seed: Some(42),
            ..Faults::default()
        };
        let run = || {
            let mut s = FaultState::new(faults.clone(), 0);
            (0..64).map(|_| s.on_message().drop).collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.iter().any(|&d| d) && first.iter().any(|&d| !d));
    }
}
