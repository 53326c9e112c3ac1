//! When probes run: `every 5m` intervals or cron expressions.
//!
//! Intervals are aligned to the epoch plus a per-probe offset derived from the
//! probe's name, so a thousand probes on `every 5m` spread over the five
//! minutes instead of all firing at :00, and a restart keeps each probe's slot.
//! Cron expressions take 5 fields (minute first, as in crontab), 6 (seconds
//! first) or 7 (with year), and run exactly when they say, in UTC.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed `schedule` setting.
#[derive(Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({self})")
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron(c) => write!(f, "{}", c.pattern),
        }
    }
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        if let Some(period) = s.strip_prefix("every ") {
            let period = humantime::parse_duration(period.trim())
                .map_err(|e| format!("invalid schedule \"{s}\": {e} (write e.g. \"every 5m\")"))?;
            if period < Duration::from_secs(1) {
                return Err(format!(
                    "invalid schedule \"{s}\": the interval must be at least 1s"
                ));
            }
            return Ok(Schedule::Every(period));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            .build();
        parser.parse(s).map(|c| Schedule::Cron(Box::new(c))).map_err(|e| {
            format!(
                "invalid schedule \"{s}\": {e} (write \"every 5m\", a crontab line such as \"*/5 * * * *\", \
                 or 6 fields with seconds first)"
            )
        })
    }

    /// The first run time strictly after `after`, for the probe named `probe`.
    pub fn next_after(&self, after: DateTime<Utc>, probe: &str) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(period) => {
                let period_ms = period.as_millis().max(1) as i64;
                let offset_ms = (spread(probe) % period_ms as u64) as i64;
                let t = after.timestamp_millis() - offset_ms;
                let next = (t.div_euclid(period_ms) + 1) * period_ms + offset_ms;
                Utc.timestamp_millis_opt(next).single()
            }
            Schedule::Cron(cron) => cron.find_next_occurrence(&after, false).ok(),
        }
    }

    /// Average runs per day, for the plan `validate` prints and the cost guard.
    pub fn runs_per_day(&self) -> f64 {
        match self {
            Schedule::Every(period) => 86_400.0 / period.as_secs_f64(),
            Schedule::Cron(_) => {
                // Count a week of occurrences: weekday-only schedules average out.
                let start = Utc
                    .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
                    .single()
                    .unwrap_or_else(Utc::now);
                let end = start + chrono::Duration::days(7);
                // Start just before, so an occurrence at `start` itself counts.
                let mut t = start - chrono::Duration::milliseconds(1);
                let mut n = 0u32;
                while let Some(next) = self.next_after(t, "") {
                    if next >= end || n > 7 * 86_400 {
                        break;
                    }
                    n += 1;
                    t = next;
                }
                f64::from(n) / 7.0
            }
        }
    }
}

/// A stable per-probe number (FNV-1a: the same on every platform and release,
/// unlike the std hasher), so a probe keeps its slot across restarts.
fn spread(probe: &str) -> u64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    probe.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_are_spread_per_probe_and_stable() {
        let s = Schedule::parse("every 5m").unwrap();
        let t = at("2026-11-27T10:00:00Z");
        let a = s.next_after(t, "probe-a").unwrap();
        let b = s.next_after(t, "probe-b").unwrap();
        assert_ne!(a, b, "different probes get different slots");
        for next in [a, b] {
            assert!(next > t && next <= t + chrono::Duration::minutes(5));
        }
        // The following run is exactly one period later.
        assert_eq!(
            s.next_after(a, "probe-a").unwrap(),
            a + chrono::Duration::minutes(5)
        );
        assert_eq!(s.runs_per_day(), 288.0);
    }

    #[test]
    fn crontab_lines_six_fields_and_aliases() {
        let t = at("2026-11-27T10:02:30Z");
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(five.next_after(t, "x").unwrap(), at("2026-11-27T10:05:00Z"));
        let six = Schedule::parse("30 */5 * * * *").unwrap();
        assert_eq!(six.next_after(t, "x").unwrap(), at("2026-11-27T10:05:30Z"));
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(t, "x").unwrap(),
            at("2026-11-27T11:00:00Z")
        );
        assert_eq!(five.runs_per_day(), 288.0);
        let weekdays = Schedule::parse("0 9 * * 1-5").unwrap();
        assert!((weekdays.runs_per_day() - 5.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn bad_schedules_say_how_to_write_them() {
        for bad in ["every", "every 0s", "every soon", "* * *", "61 * * * *", ""] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("schedule"), "{bad}: {err}");
        }
    }
}
