//! The drill's fault matrix: what each scenario does to the carrier run by
//! run, what a well-tuned probe should do about it, and the verdict.
//!
//! Expectations follow the promise: transient trouble (one lost message, a
//! 5xx burst the retries absorb, a rate limit) never notifies anyone; a
//! sustained failure fires within `failure_threshold × interval + timeout`
//! of its start; a permanent refusal (no credit, unsubscribed) fires on its
//! first run; a recovery sends a resolved notice within
//! `success_threshold × interval + timeout`. The canary's own failure modes
//! are drilled too: a spent message budget alerts at the first run it stops,
//! and an alert that fired under a silence is told when the silence ends.

use std::time::Duration;

use crate::alert::{Notification, Severity, Transition};
use crate::config::Probe;
use crate::mock_carrier::{CodeFault, ErrorBurst, Faults, Outage, RateLimit};
use crate::probe::Outcome;

/// Every scenario, in the order the report lists them.
pub const ALL: &[&str] = &[
    "dropped-message",
    "5xx-burst",
    "rate-limited",
    "slow-carrier",
    "fake-dlr",
    "sustained-outage",
    "recovery",
    "no-credit",
    "unsubscribed",
    "receiver-down",
    "cost-guard",
    "silence-ends-while-firing",
];

/// The carrier's behaviour during one run of a scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub faults: Faults,
    /// Deliveries take longer than the probe's `threshold`.
    pub slow: bool,
    /// Inbound messages are posted to a port nobody listens on.
    pub receiver_down: bool,
    /// The probe is silenced during this run (lifted before the next
    /// unsilenced one).
    pub silenced: bool,
}

impl Step {
    fn healthy() -> Step {
        Step::default()
    }

    fn faults(faults: Faults) -> Step {
        Step {
            faults,
            ..Step::default()
        }
    }

    /// Whether this run is meant to fail (so a fault starts or ends here).
    pub fn is_faulty(&self) -> bool {
        self.slow || self.receiver_down || self.faults != Faults::default()
    }

    fn silenced(mut self) -> Step {
        self.silenced = true;
        self
    }
}

/// What should happen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// Nobody is notified.
    Quiet,
    /// An alert of this severity fires within `within` of the fault's start.
    Alert {
        severity: Severity,
        within: Duration,
    },
    /// An alert fires within `within`, then resolves within `resolve_within`
    /// of the recovery.
    Recovery {
        within: Duration,
        resolve_within: Duration,
    },
    /// Nothing is told while the silence lasts; a critical alert is told
    /// within `within` of its end.
    ToldWhenSilenceEnds { within: Duration },
}

/// One scenario as played for one probe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: &'static str,
    pub steps: Vec<Step>,
    pub expect: Expect,
    /// The day's message budget of the world it plays in (the cost guard);
    /// `None` keeps the config's.
    pub budget: Option<u32>,
}

/// Builds scenario `name` for `probe`, whose runs are `interval` apart.
/// `None` for an unknown name.
pub fn plan(name: &str, probe: &Probe, interval: Duration) -> Option<Plan> {
    let failures = probe.failure_threshold.max(1) as usize;
    let successes = probe.success_threshold.max(1) as usize;
    let sustained = interval * failures as u32 + probe.timeout;
    let critical = Expect::Alert {
        severity: Severity::Critical,
        within: sustained,
    };
    let every = |step: Step, n: usize| vec![step; n];
    let outage = || {
        Step::faults(Faults {
            outage: Some(Outage {
                duration: Duration::from_secs(24 * 3600),
            }),
            ..Faults::default()
        })
    };
    let refusal = |code: u32| {
        Step::faults(Faults {
            error_code: Some(CodeFault { code, count: 0 }),
            ..Faults::default()
        })
    };
    let (name, steps, expect) = match name {
        // One lost message, then the carrier is fine: as many good runs as
        // it takes to fire, so a threshold of 1 shows.
        "dropped-message" => {
            let mut steps = vec![Step::faults(Faults {
                drop_rate: 1.0,
                ..Faults::default()
            })];
            steps.extend(every(Step::healthy(), failures));
            ("dropped-message", steps, Expect::Quiet)
        }
        // Every run meets a burst one shorter than the retry budget.
        "5xx-burst" => {
            let count = probe.retry.attempts.saturating_sub(1).max(1);
            let step = Step::faults(Faults {
                errors: Some(ErrorBurst { status: 503, count }),
                ..Faults::default()
            });
            ("5xx-burst", every(step, failures), Expect::Quiet)
        }
        "rate-limited" => {
            let step = Step::faults(Faults {
                rate_limit: Some(RateLimit {
                    count: 1,
                    retry_after: Duration::from_secs(1),
                }),
                ..Faults::default()
            });
            ("rate-limited", every(step, failures), Expect::Quiet)
        }
        "slow-carrier" => {
            let step = Step {
                slow: true,
                ..Step::default()
            };
            let expect = Expect::Alert {
                severity: Severity::Warning,
                within: sustained,
            };
            ("slow-carrier", every(step, failures), expect)
        }
        "fake-dlr" => {
            let step = Step::faults(Faults {
                fake_dlr_rate: 1.0,
                ..Faults::default()
            });
            ("fake-dlr", every(step, failures), critical)
        }
        "sustained-outage" => ("sustained-outage", every(outage(), failures), critical),
        "recovery" => {
            let mut steps = every(outage(), failures);
            steps.extend(every(Step::healthy(), successes));
            let expect = Expect::Recovery {
                within: sustained,
                resolve_within: interval * successes as u32 + probe.timeout,
            };
            ("recovery", steps, expect)
        }
        // An account suspended for want of funds: 30002 in the mock's
        // codes (each API it speaks translates it to its own). Permanent
        // refusals fire on the first run; a probe that waits for
        // failure_threshold gets its chance to show it.
        "no-credit" => {
            let expect = Expect::Alert {
                severity: Severity::Critical,
                within: probe.timeout,
            };
            ("no-credit", every(refusal(30002), failures), expect)
        }
        "unsubscribed" => {
            let expect = Expect::Alert {
                severity: Severity::Critical,
                within: probe.timeout,
            };
            ("unsubscribed", every(refusal(21610), failures), expect)
        }
        "receiver-down" => {
            let step = Step {
                receiver_down: true,
                ..Step::default()
            };
            ("receiver-down", every(step, failures), critical)
        }
        // The budget allows `failures` messages; the run after them is
        // refused, and that must be an alert at once, not a quiet stop.
        "cost-guard" => {
            let expect = Expect::Alert {
                severity: Severity::Critical,
                within: probe.timeout,
            };
            let steps = every(Step::healthy(), failures + 1);
            return Some(Plan {
                name: "cost-guard",
                steps,
                expect,
                budget: Some(failures as u32),
            });
        }
        // The outage fires the alert while the probe is silenced; the
        // silence is lifted with the outage still on: told at once.
        "silence-ends-while-firing" => {
            let mut steps = every(outage().silenced(), failures);
            steps.push(outage());
            let expect = Expect::ToldWhenSilenceEnds {
                within: probe.timeout,
            };
            ("silence-ends-while-firing", steps, expect)
        }
        _ => return None,
    };
    Some(Plan {
        name,
        steps,
        expect,
        budget: None,
    })
}

/// What a scenario did, in the probe's own time.
#[derive(Debug, Clone)]
pub struct Played {
    pub outcomes: Vec<Outcome>,
    /// Delivered notifications, with their time since the scenario began.
    pub notifications: Vec<(Duration, Notification)>,
    /// When the fault began and, if it did, when it ended.
    pub fault_start: Duration,
    pub fault_end: Option<Duration>,
    /// When a silence was lifted, if one was.
    pub silence_end: Option<Duration>,
}

/// The verdict on one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    pub observed: String,
    pub time_to_alert: Option<Duration>,
    pub time_to_resolve: Option<Duration>,
    /// On a failure: what in the config makes it so.
    pub hint: Option<String>,
}

impl Expect {
    /// The expected behaviour in words.
    pub fn describe(&self) -> String {
        match self {
            Expect::Quiet => "no alert".to_string(),
            Expect::Alert { severity, within } => {
                format!("{} alert ≤ {}", severity.as_str(), human(*within))
            }
            Expect::Recovery {
                within,
                resolve_within,
            } => format!(
                "alert ≤ {}, resolved ≤ {}",
                human(*within),
                human(*resolve_within)
            ),
            Expect::ToldWhenSilenceEnds { within } => {
                format!("quiet while silenced, alert ≤ {} after", human(*within))
            }
        }
    }
}

/// Judges what was played against what was expected.
pub fn judge(plan: &Plan, probe: &Probe, played: &Played) -> Verdict {
    let since_fault = |at: Duration| at.saturating_sub(played.fault_start);
    let first = |t: Transition| played.notifications.iter().find(|(_, n)| n.transition == t);
    let fired = first(Transition::Firing);
    let resolved = first(Transition::Resolved);
    let time_to_alert = fired.map(|(at, _)| since_fault(*at));
    let time_to_resolve = match (resolved, played.fault_end) {
        (Some((at, _)), Some(end)) => Some(at.saturating_sub(end)),
        _ => None,
    };
    let runs = outcomes_text(&played.outcomes);
    let fired_text = |(at, n): &(Duration, Notification)| {
        format!(
            "{} alert after {}",
            n.severity.as_str(),
            human(since_fault(*at))
        )
    };
    let mut verdict = Verdict {
        passed: false,
        observed: String::new(),
        time_to_alert,
        time_to_resolve,
        hint: None,
    };
    match plan.expect {
        Expect::Quiet => {
            verdict.passed = played.notifications.is_empty();
            verdict.observed = match fired {
                None if played.notifications.is_empty() => format!("no alert ({runs})"),
                None => format!("notified without firing ({runs})"),
                Some(f) => format!("{} ({runs})", fired_text(f)),
            };
            if !verdict.passed {
                verdict.hint = Some(quiet_hint(plan.name, probe));
            }
        }
        Expect::Alert { severity, within } => {
            verdict.observed = match fired {
                None => format!("no alert ({runs})"),
                Some(f) => format!("{} ({runs})", fired_text(f)),
            };
            match fired {
                None => verdict.hint = Some(alert_hint(plan.name, probe)),
                Some((_, n)) if n.severity != severity => {
                    verdict.hint = Some(format!(
                        "expected a {} alert, got {}",
                        severity.as_str(),
                        n.severity.as_str()
                    ));
                }
                Some((at, _)) if since_fault(*at) > within => {
                    verdict.hint = Some(alert_hint(plan.name, probe));
                }
                Some((_, n)) if n.reason.as_deref().is_none_or(str::is_empty) => {
                    verdict.hint = Some("the alert carries no reason".to_string());
                }
                Some(_) => verdict.passed = true,
            }
        }
        Expect::ToldWhenSilenceEnds { within } => {
            let end = played.silence_end.unwrap_or(Duration::MAX);
            let early = played.notifications.iter().find(|(at, _)| *at < end);
            verdict.time_to_alert = fired.map(|(at, _)| at.saturating_sub(end));
            verdict.observed = match (early, fired) {
                (Some(f), _) => format!("told while silenced: {} ({runs})", fired_text(f)),
                (None, None) => format!("never told ({runs})"),
                (None, Some((at, n))) => format!(
                    "{} alert {} after the silence ended ({runs})",
                    n.severity.as_str(),
                    human(at.saturating_sub(end))
                ),
            };
            verdict.passed = early.is_none()
                && fired.is_some_and(|(at, n)| {
                    n.severity == Severity::Critical && at.saturating_sub(end) <= within
                });
            if !verdict.passed {
                verdict.hint = Some(
                    "an alert held back by a silence must be told when the silence ends".into(),
                );
            }
        }
        Expect::Recovery {
            within,
            resolve_within,
        } => {
            verdict.observed = match (fired, time_to_resolve) {
                (None, _) => format!("no alert ({runs})"),
                (Some(f), None) => format!("{}, never resolved ({runs})", fired_text(f)),
                (Some(f), Some(r)) => {
                    format!("{}, resolved after {} ({runs})", fired_text(f), human(r))
                }
            };
            let fired_in_time = time_to_alert.is_some_and(|t| t <= within);
            let resolved_in_time = time_to_resolve.is_some_and(|t| t <= resolve_within);
            verdict.passed = fired_in_time && resolved_in_time;
            if !fired_in_time {
                verdict.hint = Some(alert_hint(plan.name, probe));
            } else if !resolved_in_time {
                verdict.hint = Some(format!(
                    "success_threshold = {} good runs should resolve it; check the alert channels",
                    probe.success_threshold
                ));
            }
        }
    }
    verdict
}

fn quiet_hint(scenario: &str, probe: &Probe) -> String {
    match scenario {
        "5xx-burst" | "rate-limited" => format!(
            "the retries (attempts = {}, initial = {}, factor = {}) did not absorb it within the \
             timeout ({}): raise retry.attempts or the timeout",
            probe.retry.attempts,
            human(probe.retry.initial),
            probe.retry.factor,
            human(probe.timeout)
        ),
        _ if probe.failure_threshold <= 1 => {
            "failure_threshold = 1 turns a single failed run into an alert: raise it to 2 or 3"
                .to_string()
        }
        _ => format!(
            "a transient fault notified someone (failure_threshold = {})",
            probe.failure_threshold
        ),
    }
}

fn alert_hint(scenario: &str, probe: &Probe) -> String {
    match scenario {
        "no-credit" | "unsubscribed" if !probe.alert_on_permanent => {
            "alert_on_permanent = false waits for failure_threshold runs: a permanent refusal \
             will not heal by itself"
                .to_string()
        }
        _ => format!(
            "not alerted in time: failure_threshold = {} runs every {} plus a {} timeout",
            probe.failure_threshold,
            probe.schedule,
            human(probe.timeout)
        ),
    }
}

/// "lost ok ok", the run outcomes in order.
fn outcomes_text(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A probe-time duration to the second ("5m 30s"), or to the millisecond under one.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn probe() -> Probe {
        let config = Config::load(std::path::Path::new("config.example.toml")).expect("example");
        config.probes[0].clone()
    }

    fn notice(transition: Transition, severity: Severity) -> Notification {
        Notification {
            severity,
            outcome: Outcome::Error,
            ..Notification::without_run(
                transition,
                "p",
                "gateway kept failing".into(),
                "i",
                None,
                chrono::Utc::now(),
            )
        }
    }

    fn played(notifications: Vec<(u64, Notification)>, end: Option<u64>) -> Played {
        Played {
            outcomes: vec![Outcome::Error, Outcome::Error],
            notifications: notifications
                .into_iter()
                .map(|(s, n)| (Duration::from_secs(s), n))
                .collect(),
            fault_start: Duration::ZERO,
            fault_end: end.map(Duration::from_secs),
            silence_end: None,
        }
    }

    #[test]
    fn a_silence_is_judged_by_what_was_told_after_it_ended() {
        let probe = probe();
        let plan = plan(
            "silence-ends-while-firing",
            &probe,
            Duration::from_secs(300),
        )
        .unwrap();
        let at_end = |told: Vec<(u64, Notification)>| Played {
            silence_end: Some(Duration::from_secs(600)),
            ..played(told, None)
        };
        let firing = || notice(Transition::Firing, Severity::Critical);
        assert!(judge(&plan, &probe, &at_end(vec![(600, firing())])).passed);
        let early = judge(
            &plan,
            &probe,
            &at_end(vec![(300, firing()), (600, firing())]),
        );
        assert!(
            !early.passed && early.observed.starts_with("told while silenced"),
            "{early:?}"
        );
        let never = judge(&plan, &probe, &at_end(vec![]));
        assert!(
            !never.passed && never.observed.starts_with("never told"),
            "{never:?}"
        );
        let late = judge(&plan, &probe, &at_end(vec![(3600, firing())]));
        assert!(!late.passed, "{late:?}");
    }

    #[test]
    fn every_scenario_has_a_plan_whose_faults_validate() {
        let probe = probe();
        for name in ALL {
            let plan = plan(name, &probe, Duration::from_secs(300)).expect(name);
            assert_eq!(plan.name, *name);
            // The cost guard's fault is the budget, not the carrier.
            let budget_spent = plan.budget.is_some_and(|b| (b as usize) < plan.steps.len());
            assert!(
                plan.steps.iter().any(Step::is_faulty) || budget_spent,
                "{name}"
            );
            for step in &plan.steps {
                step.faults.validate().expect(name);
            }
        }
        assert!(plan("no-such", &probe, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn the_bounds_follow_the_probe_policy() {
        let mut probe = probe();
        probe.failure_threshold = 3;
        probe.success_threshold = 2;
        probe.timeout = Duration::from_secs(30);
        let interval = Duration::from_secs(60);
        let outage = plan("sustained-outage", &probe, interval).unwrap();
        assert_eq!(outage.steps.len(), 3);
        assert_eq!(
            outage.expect,
            Expect::Alert {
                severity: Severity::Critical,
                within: Duration::from_secs(210)
            }
        );
        let recovery = plan("recovery", &probe, interval).unwrap();
        assert_eq!(recovery.steps.iter().filter(|s| s.is_faulty()).count(), 3);
        assert_eq!(recovery.steps.len(), 5);
        let Expect::Recovery { resolve_within, .. } = recovery.expect else {
            panic!("{:?}", recovery.expect)
        };
        assert_eq!(resolve_within, Duration::from_secs(150));
        let burst = plan("5xx-burst", &probe, interval).unwrap();
        assert_eq!(
            burst.steps[0].faults.errors.as_ref().unwrap().count,
            probe.retry.attempts - 1
        );
    }

    #[test]
    fn verdicts() {
        let probe = probe();
        let interval = Duration::from_secs(300);
        let outage = plan("sustained-outage", &probe, interval).unwrap();
        let Expect::Alert { within, .. } = outage.expect else {
            panic!()
        };
        let critical = notice(Transition::Firing, Severity::Critical);
        let on_time = judge(
            &outage,
            &probe,
            &played(vec![(300, critical.clone())], None),
        );
        assert!(on_time.passed, "{on_time:?}");
        assert_eq!(on_time.time_to_alert, Some(Duration::from_secs(300)));
        let late = played(vec![(within.as_secs() + 1, critical.clone())], None);
        assert!(!judge(&outage, &probe, &late).passed);
        let silent = judge(&outage, &probe, &played(vec![], None));
        assert!(!silent.passed);
        assert!(silent.observed.starts_with("no alert"), "{silent:?}");
        let warning = played(
            vec![(1, notice(Transition::Firing, Severity::Warning))],
            None,
        );
        assert!(!judge(&outage, &probe, &warning).passed);

        let dropped = plan("dropped-message", &probe, interval).unwrap();
        assert!(judge(&dropped, &probe, &played(vec![], None)).passed);
        let paged = judge(&dropped, &probe, &played(vec![(0, critical.clone())], None));
        assert!(!paged.passed);
        assert!(paged.hint.is_some());

        let recovery = plan("recovery", &probe, interval).unwrap();
        let healed = played(
            vec![
                (300, critical.clone()),
                (630, notice(Transition::Resolved, Severity::Critical)),
            ],
            Some(600),
        );
        let v = judge(&recovery, &probe, &healed);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.time_to_resolve, Some(Duration::from_secs(30)));
        assert!(!judge(&recovery, &probe, &played(vec![(300, critical)], Some(600))).passed);
    }

    #[test]
    fn a_threshold_of_one_is_named_in_the_hint() {
        let mut probe = probe();
        probe.failure_threshold = 1;
        let dropped = plan("dropped-message", &probe, Duration::from_secs(60)).unwrap();
        let fired = played(
            vec![(1, notice(Transition::Firing, Severity::Critical))],
            None,
        );
        let v = judge(&dropped, &probe, &fired);
        assert!(v.hint.unwrap().contains("failure_threshold = 1"));
    }
}
