//! Wall-clock time that follows tokio's clock.
//!
//! Schedules are in wall time (cron expressions, "every 5m" aligned to the
//! epoch), but sleeping is done on tokio's monotonic clock so that tests can
//! pause and advance it. This clock is wall time at start plus tokio time
//! elapsed since, re-based whenever the real wall clock has drifted away
//! (NTP steps) by more than a second — never in paused tests.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Clock {
    base: Mutex<(DateTime<Utc>, Instant)>,
    /// Follow the real wall clock when it drifts (off in tests with a paused clock).
    rebase: bool,
}

impl Clock {
    /// A clock that starts at the real wall time.
    pub fn system() -> Clock {
        Clock {
            base: Mutex::new((Utc::now(), Instant::now())),
            rebase: true,
        }
    }

    /// A clock that starts at `start` and moves only with tokio's clock.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            base: Mutex::new((start, Instant::now())),
            rebase: false,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = chrono::Duration::from_std(base.1.elapsed()).unwrap_or_default();
        let now = base.0 + elapsed;
        if self.rebase {
            let wall = Utc::now();
            if (wall - now).num_milliseconds().abs() > 1000 {
                *base = (wall, Instant::now());
                return wall;
            }
        }
        now
    }

    /// The tokio instant at which wall time `at` comes.
    pub fn instant_at(&self, at: DateTime<Utc>) -> Instant {
        let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
        Instant::now() + wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_the_paused_tokio_clock() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::starting_at(t0);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(clock.now(), t0 + chrono::Duration::minutes(5));
        let due = t0 + chrono::Duration::minutes(7);
        let at = clock.instant_at(due);
        tokio::time::sleep_until(at).await;
        assert_eq!(
            clock.now(),
            due,
            "sleeping until a wall time wakes exactly then"
        );
        assert!(
            clock.instant_at(t0) <= Instant::now(),
            "past times are due now"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_schedule_slots_come_exactly_one_period_apart() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::starting_at(t0);
        let schedule = crate::schedule::Schedule::parse("every 1m").unwrap();
        let mut starts = Vec::new();
        let mut next = schedule.next_after(clock.now(), "p").unwrap();
        for _ in 0..5 {
            tokio::time::sleep_until(clock.instant_at(next)).await;
            starts.push(clock.now());
            next = schedule.next_after(clock.now(), "p").unwrap();
        }
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], chrono::Duration::minutes(1));
        }
    }
}
