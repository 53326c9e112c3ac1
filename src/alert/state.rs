//! The alert state machine: a pure function of (state, run, policy, now).
//!
//! No I/O and no clock of its own, so every rule is table-tested:
//! consecutive failures fire an alert at `failure_threshold` (a permanent
//! gateway refusal may fire at once), consecutive successes resolve it at
//! `success_threshold`, reminders repeat every `reminder` while it fires, a
//! silenced probe keeps its state but notifies nobody. `slow` is a warning;
//! every other failure is critical, and a warning turning critical re-fires.
//!
//! A silence holds notifications back, never the state, and never for
//! good: what it withheld is owed. When the silence ends (the next run
//! after it, or [`settle`] when it is lifted or expires) an alert still
//! firing is told at once, and a resolve is told if its firing had been;
//! an alert that fired and resolved within the silence is told nothing.

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
    /// The last notice a silence held back, owed when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<Transition>,
    /// When the current run of failures began (its first failed run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub since: DateTime<Utc>,
    pub severity: Severity,
    /// When the last firing notice or reminder went out (or would have, if silenced).
    pub last_notified: DateTime<Utc>,
    /// Whether people were told it fires (not while a silence held it back):
    /// a resolve is only told for a firing that was.
    #[serde(default = "told_by_default")]
    pub told: bool,
    /// The channels it was told on, so that it can still be resolved there
    /// when its probe is gone from the config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The id of the firing notice that told it: reminders and the resolve
    /// follow it up (an email thread, a Slack thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// States stored before `told` existed were told unless silenced, and a
/// missing resolve is worse than a repeated one.
fn told_by_default() -> bool {
    true
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
/// one transition to notify about (nothing while silenced: it is kept as
/// owed instead, see [`settle`]).
pub fn evaluate(
    state: &AlertState,
    run: &Observation,
    policy: &Policy,
) -> (AlertState, Option<Transition>) {
    let mut next = state.clone();
    let transition = match Severity::of(run.outcome) {
        None => {
            next.consecutive_successes = next.consecutive_successes.saturating_add(1);
            next.consecutive_failures = 0;
            next.failing_since = None;
            match &next.firing {
                Some(firing) if next.consecutive_successes >= policy.success_threshold.max(1) => {
                    let told = firing.told;
                    next.firing = None;
                    // A firing nobody was told of resolves quietly.
                    if told {
                        Some(Transition::Resolved)
                    } else {
                        next.withheld = None;
                        None
                    }
                }
                _ => None,
            }
        }
        Some(severity) => {
            if next.consecutive_failures == 0 {
                next.failing_since = Some(run.at);
            }
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
                        told: false,
                        channels: Vec::new(),
                        notice: None,
                    });
                    Some(Transition::Firing)
                }
                None => None,
                Some(firing) if severity > firing.severity => {
                    firing.severity = severity;
                    firing.last_notified = run.at;
                    Some(Transition::Firing)
                }
                Some(firing) => {
                    let due = !policy.reminder.is_zero()
                        && (run.at - firing.last_notified)
                            .to_std()
                            .is_ok_and(|since| since >= policy.reminder);
                    if due {
                        firing.last_notified = run.at;
                        Some(Transition::Reminder)
                    } else {
                        None
                    }
                }
            }
        }
    };
    match transition {
        Some(t) => notify(next, t, policy, run.at),
        // Nothing new to say: say what a silence held back, if it is over.
        None => settle(&next, policy, run.at),
    }
}

/// Tells `transition`, or keeps it as owed while silenced.
fn notify(
    mut next: AlertState,
    transition: Transition,
    policy: &Policy,
    at: DateTime<Utc>,
) -> (AlertState, Option<Transition>) {
    if policy.silenced {
        next.withheld = Some(transition);
        return (next, None);
    }
    next.withheld = None;
    if let Some(firing) = &mut next.firing {
        firing.told = true;
        firing.last_notified = at;
    }
    (next, Some(transition))
}

/// What is owed once no silence holds a probe's notices back: an alert
/// still firing is told at once (as a firing notice if it never was, else
/// as a reminder); a resolve is told if the firing it ends had been. With a
/// silence in force, or nothing owed, nothing changes.
pub fn settle(
    state: &AlertState,
    policy: &Policy,
    at: DateTime<Utc>,
) -> (AlertState, Option<Transition>) {
    let Some(withheld) = state.withheld.filter(|_| !policy.silenced) else {
        return (state.clone(), None);
    };
    let mut next = state.clone();
    next.withheld = None;
    let owed = match (&next.firing, withheld) {
        (Some(firing), w) if !firing.told || w == Transition::Firing => Transition::Firing,
        (Some(_), _) => Transition::Reminder,
        (None, Transition::Resolved) => Transition::Resolved,
        (None, _) => return (next, None),
    };
    notify(next, owed, policy, at)
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
        assert_eq!(state.withheld, Some(R));
        // Unsilenced later, with the alert still firing: the first run
        // after the silence tells it at once, the resolve follows.
        let t = DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (state, r1) = evaluate(&state, &Observation { outcome: Ok, at: t }, &policy());
        let (_, r2) = evaluate(&state, &Observation { outcome: Ok, at: t }, &policy());
        assert_eq!((r1, r2), (Some(F), Some(Res)));
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minute)
    }

    fn step(
        state: &AlertState,
        minute: i64,
        outcome: Outcome,
        silenced: bool,
    ) -> (AlertState, Option<Transition>) {
        let p = Policy {
            silenced,
            ..policy()
        };
        evaluate(
            state,
            &Observation {
                outcome,
                at: at(minute),
            },
            &p,
        )
    }

    #[test]
    fn a_silence_that_ends_while_firing_is_told_at_once() {
        // Fires while silenced: nothing sent.
        let (s, t1) = step(&AlertState::default(), 0, Lost, true);
        let (s, t2) = step(&s, 5, Lost, true);
        assert_eq!((t1, t2), (None, None));
        // The silence is lifted between runs: settling tells it now.
        let (s, owed) = settle(&s, &policy(), at(7));
        assert_eq!(owed, Some(F));
        assert!(s.firing.as_ref().unwrap().told);
        assert_eq!(s.firing.as_ref().unwrap().last_notified, at(7));
        // Said once: the next failing run adds nothing before the reminder.
        let (s, t3) = step(&s, 10, Lost, false);
        assert_eq!(t3, None);
        assert_eq!(settle(&s, &policy(), at(11)).1, None);
    }

    #[test]
    fn a_silence_that_outlived_the_alert_owes_nothing_unless_it_had_been_told() {
        // Fired and resolved within the silence: nobody hears of either.
        let (s, _) = step(&AlertState::default(), 0, Lost, true);
        let (s, _) = step(&s, 5, Lost, true);
        let (s, _) = step(&s, 10, Ok, true);
        let (s, t) = step(&s, 15, Ok, true);
        assert_eq!(t, None);
        assert_eq!(settle(&s, &policy(), at(20)).1, None);
        // Told before the silence, resolved within it: the resolve is owed.
        let (s, _) = step(&AlertState::default(), 0, Lost, false);
        let (s, fired) = step(&s, 5, Lost, false);
        assert_eq!(fired, Some(F));
        let (s, _) = step(&s, 10, Ok, true);
        let (s, t) = step(&s, 15, Ok, true);
        assert_eq!((t, s.withheld), (None, Some(Res)));
        assert_eq!(settle(&s, &policy(), at(20)).1, Some(Res));
        // Still silenced: nothing yet.
        let silenced = Policy {
            silenced: true,
            ..policy()
        };
        assert_eq!(settle(&s, &silenced, at(20)).1, None);
    }

    #[test]
    fn states_stored_before_told_existed_read_as_told() {
        let old = r#"{"consecutive_failures":2,"consecutive_successes":0,
            "firing":{"since":"2026-11-27T00:00:00Z","severity":"critical",
            "last_notified":"2026-11-27T00:00:00Z"}}"#;
        let state: AlertState = serde_json::from_str(old).unwrap();
        assert!(state.firing.as_ref().unwrap().told);
        assert_eq!(state.withheld, None);
        let (_, t) = step(&state, 1, Ok, false);
        let (_, t2) = step(&step(&state, 1, Ok, false).0, 2, Ok, false);
        assert_eq!((t, t2), (None, Some(Res)));
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
