//! The alert state machine: a pure function of (state, run, policy, now).
//!
//! No I/O and no clock of its own, so every rule is table-tested:
//! consecutive failures fire an alert at `failure_threshold` (a permanent
//! gateway refusal may fire at once), consecutive successes resolve it at
//! `success_threshold`, reminders repeat every `reminder` while it fires, a
//! silenced probe keeps its state but notifies nobody. `slow` is a warning;
//! every other failure is critical, and a warning turning critical re-fires.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::probe::Outcome;

/// How bad a firing alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn of(outcome: Outcome) -> Option<Severity> {
        match outcome {
            Outcome::Ok => None,
            Outcome::Slow => Some(Severity::Warning),
            _ => Some(Severity::Critical),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One probe's alerting memory; persisted between runs (and restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Set while an alert fires.
    pub firing: Option<Firing>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub since: DateTime<Utc>,
    pub severity: Severity,
    /// When the last firing notice or reminder went out (or would have, if silenced).
    pub last_notified: DateTime<Utc>,
}

/// The per-probe settings the machine follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Zero: never remind.
    pub reminder: Duration,
    /// A `rejected` run (permanent gateway error) fires without waiting for
    /// `failure_threshold`: retrying later will not fix a missing credit.
    pub fire_on_permanent: bool,
    /// Silenced: record and count, but notify nobody.
    pub silenced: bool,
}

/// What one run contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub outcome: Outcome,
    pub at: DateTime<Utc>,
}

/// What the machine decided to tell people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// The alert starts firing (or escalates from warning to critical).
    Firing,
    /// Still firing; `reminder` has passed since the last notice.
    Reminder,
    /// Good again after `success_threshold` good runs.
    Resolved,
}

/// Feeds one run into a probe's state. Returns the new state and, at most,
/// one transition to notify about (nothing while silenced).
pub fn evaluate(
    state: &AlertState,
    run: &Observation,
    policy: &Policy,
) -> (AlertState, Option<Transition>) {
    let mut next = state.clone();
    let severity = Severity::of(run.outcome);
    let notify = |t: Transition| (!policy.silenced).then_some(t);
    match severity {
        None => {
            next.consecutive_successes = next.consecutive_successes.saturating_add(1);
            next.consecutive_failures = 0;
            if next.firing.is_some()
                && next.consecutive_successes >= policy.success_threshold.max(1)
            {
                next.firing = None;
                return (next, notify(Transition::Resolved));
            }
            (next, None)
        }
        Some(severity) => {
            next.consecutive_failures = next.consecutive_failures.saturating_add(1);
            next.consecutive_successes = 0;
            let fires_now = next.consecutive_failures >= policy.failure_threshold.max(1)
                || (policy.fire_on_permanent && run.outcome == Outcome::Rejected);
            match &mut next.firing {
                None if fires_now => {
                    next.firing = Some(Firing {
                        since: run.at,
                        severity,
                        last_notified: run.at,
                    });
                    (next, notify(Transition::Firing))
                }
                None => (next, None),
                Some(firing) if severity > firing.severity => {
                    firing.severity = severity;
                    firing.last_notified = run.at;
                    (next, notify(Transition::Firing))
                }
                Some(firing) => {
                    let due = !policy.reminder.is_zero()
                        && (run.at - firing.last_notified)
                            .to_std()
                            .is_ok_and(|since| since >= policy.reminder);
                    if due {
                        firing.last_notified = run.at;
                        (next, notify(Transition::Reminder))
                    } else {
                        (next, None)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    fn policy() -> Policy {
        Policy {
            failure_threshold: 2,
            success_threshold: 2,
            reminder: Duration::from_secs(3600),
            fire_on_permanent: true,
            silenced: false,
        }
    }

    /// Runs a sequence of (minutes since start, outcome), returning each step's transition.
    fn feed(policy: &Policy, runs: &[(i64, Outcome)]) -> (AlertState, Vec<Option<Transition>>) {
        let t0 = DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut state = AlertState::default();
        let mut out = Vec::new();
        for (minute, outcome) in runs {
            let obs = Observation {
                outcome: *outcome,
                at: t0 + chrono::Duration::minutes(*minute),
            };
            let (next, t) = evaluate(&state, &obs, policy);
            state = next;
            out.push(t);
        }
        (state, out)
    }

    use Transition::{Firing as F, Reminder as R, Resolved as Res};

    #[test]
    fn the_state_machine_table() {
        let p = policy();
        type Case<'a> = (
            &'a str,
            &'a Policy,
            &'a [(i64, Outcome)],
            &'a [Option<Transition>],
        );
        let cases: &[Case] = &[
            (
                "one loss heals silently",
                &p,
                &[(0, Lost), (5, Ok)],
                &[None, None],
            ),
            (
                "two losses fire",
                &p,
                &[(0, Lost), (5, Lost)],
                &[None, Some(F)],
            ),
            (
                "an error between successes never fires",
                &p,
                &[(0, Error), (5, Ok), (10, Error), (15, Ok)],
                &[None; 4],
            ),
            (
                "permanent refusal fires at once",
                &p,
                &[(0, Rejected)],
                &[Some(F)],
            ),
            (
                "resolves after two good runs",
                &p,
                &[(0, Lost), (5, Lost), (10, Ok), (15, Ok)],
                &[None, Some(F), None, Some(Res)],
            ),
            (
                "a bad run resets the success count",
                &p,
                &[
                    (0, Lost),
                    (5, Lost),
                    (10, Ok),
                    (15, Lost),
                    (20, Ok),
                    (25, Ok),
                ],
                &[None, Some(F), None, None, None, Some(Res)],
            ),
            (
                "no reminder before the hour",
                &p,
                &[(0, Lost), (5, Lost), (30, Lost), (64, Lost)],
                &[None, Some(F), None, None],
            ),
            (
                "a reminder after the hour, then another",
                &p,
                &[(0, Lost), (5, Lost), (65, Lost), (70, Lost), (125, Lost)],
                &[None, Some(F), Some(R), None, Some(R)],
            ),
            (
                "slow then lost escalates",
                &p,
                &[(0, Slow), (5, Slow), (10, Lost), (15, Lost)],
                &[None, Some(F), Some(F), None],
            ),
            (
                "mixed failures count together",
                &p,
                &[(0, Slow), (5, Undelivered)],
                &[None, Some(F)],
            ),
        ];
        for (name, policy, runs, expected) in cases {
            let (_, got) = feed(policy, runs);
            assert_eq!(&got[..], *expected, "{name}");
        }
    }

    #[test]
    fn severity_follows_the_outcome() {
        let (state, _) = feed(&policy(), &[(0, Slow), (5, Slow)]);
        assert_eq!(state.firing.unwrap().severity, Severity::Warning);
        let (state, _) = feed(&policy(), &[(0, Lost), (5, Undelivered)]);
        assert_eq!(state.firing.unwrap().severity, Severity::Critical);
    }

    #[test]
    fn permanent_firing_at_once_can_be_turned_off() {
        let p = Policy {
            fire_on_permanent: false,
            ..policy()
        };
        let (_, got) = feed(&p, &[(0, Rejected), (5, Rejected)]);
        assert_eq!(got, [None, Some(F)]);
    }

    #[test]
    fn silenced_probes_keep_state_but_notify_nobody() {
        let p = Policy {
            silenced: true,
            ..policy()
        };
        let (state, got) = feed(&p, &[(0, Lost), (5, Lost), (70, Lost)]);
        assert_eq!(got, [None, None, None]);
        assert!(state.firing.is_some(), "the alert is firing, just not told");
        assert_eq!(state.consecutive_failures, 3);
        // Unsilenced later, resolution is told.
        let t = DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (state, r1) = evaluate(&state, &Observation { outcome: Ok, at: t }, &policy());
        let (_, r2) = evaluate(&state, &Observation { outcome: Ok, at: t }, &policy());
        assert_eq!((r1, r2), (None, Some(Res)));
    }

    #[test]
    fn zero_reminder_means_never_and_zero_thresholds_act_as_one() {
        let p = Policy {
            reminder: Duration::ZERO,
            failure_threshold: 0,
            success_threshold: 0,
            ..policy()
        };
        let (_, got) = feed(&p, &[(0, Lost), (600, Lost), (1200, Ok)]);
        assert_eq!(got, [Some(F), None, Some(Res)]);
    }
}
