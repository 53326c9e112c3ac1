//! Output of a check: one formatter per file.
//!
//! `human` is for terminals and cron mail, `json` is the stable machine format
//! (with a `schema_version`), `junit` is JUnit XML for CI test views,
//! `progress` is the spinner shown while waiting.

pub mod alerts;
pub mod drill;
pub mod history;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod outbox;
pub mod plan;
pub mod progress;
pub mod stats;

use std::time::Duration;

/// A file or endpoint `check` wrote its results to besides stdout (the
/// JUnit report, a metrics textfile, a Pushgateway). Whether that worked is
/// reported (stderr, the JSON's `outputs`) and never folded into the exit
/// code: that is the probes' verdict alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Output {
    /// `junit`, `textfile` or `pushgateway`.
    pub kind: &'static str,
    /// The path or URL (credentials and query values redacted).
    pub target: String,
    /// Why it failed; `None` when it was written.
    pub error: Option<String>,
}

/// How `check` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// How `history` and `report` print: for a person, or for scripts and
/// spreadsheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TableFormat {
    #[default]
    Human,
    Json,
    Csv,
}

/// The phases a run reached, e.g. "submit 3.1ms · received 812ms"; `None` if none.
pub fn phases_text(phases: &crate::probe::Phases, separator: &str) -> Option<String> {
    let parts: Vec<String> = phases
        .named()
        .into_iter()
        .filter_map(|(name, d)| d.map(|d| format!("{name} {}", short_duration(d))))
        .collect();
    (!parts.is_empty()).then(|| parts.join(separator))
}

/// A duration the way a person reads it: "812ms", "4.2s", "2m 5s".
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        let s = ms / 1e3;
        if d.subsec_nanos() == 0 {
            return format!("{}s", d.as_secs());
        }
        if s < 10.0 {
            format!("{s:.2}s")
        } else {
            format!("{s:.1}s")
        }
    } else {
        let secs = d.as_secs();
        format!("{}m {}s", secs / 60, secs % 60)
    }
}

/// A window the way a person writes it: "24h", "7d", "90m", else humantime.
pub fn window_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => humantime::format_duration(d).to_string(),
        s if s.is_multiple_of(86_400) && s > 86_400 => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => humantime::format_duration(d).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(short_duration(Duration::from_micros(2500)), "2.5ms");
        assert_eq!(short_duration(Duration::from_millis(812)), "812ms");
        assert_eq!(short_duration(Duration::from_millis(4210)), "4.21s");
        assert_eq!(short_duration(Duration::from_millis(30_000)), "30s");
        assert_eq!(short_duration(Duration::from_millis(30_100)), "30.1s");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m 5s");
    }
}
