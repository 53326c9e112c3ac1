//! Output of a drill: a table a person reads, or JSON for CI.
//!
//! ```text
//! RESULT  PROBE              SCENARIO          EXPECTED              ALERT   RESOLVED  OBSERVED
//! PASS    sandbox-roundtrip  dropped-message   no alert              -       -         no alert (lost ok ok)
//! PASS    sandbox-roundtrip  sustained-outage  critical alert ≤ 10m  5m      -         critical alert after 5m (error error)
//!         ↳ gateway kept failing (3 attempts): 503 Service Unavailable
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::alert::Transition;
use crate::drill::scenario::human;
use crate::drill::{DrillReport, ScenarioResult};

/// Renders the drill as a table, then a summary line.
pub fn render(report: &DrillReport, color: bool) -> String {
    let rows: Vec<[String; 7]> = report
        .results
        .iter()
        .map(|r| {
            [
                if r.verdict.passed { "PASS" } else { "FAIL" }.to_string(),
                r.probe.clone(),
                r.scenario.to_string(),
                r.expect.describe(),
                r.verdict.time_to_alert.map_or("-".into(), human),
                r.verdict.time_to_resolve.map_or("-".into(), human),
                r.verdict.observed.clone(),
            ]
        })
        .collect();
    let header = [
        "RESULT", "PROBE", "SCENARIO", "EXPECTED", "ALERT", "RESOLVED", "OBSERVED",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let speeds: Vec<String> = {
        let mut s: Vec<String> = report
            .results
            .iter()
            .map(|r| format!("{:.1}", r.speed))
            .collect();
        s.dedup();
        s
    };
    let _ = writeln!(
        out,
        "drill: {} scenario run{} at ×{} speed; times are the probes' own",
        report.results.len(),
        if report.results.len() == 1 { "" } else { "s" },
        speeds.join("/×")
    );
    let pad = |cell: &str, w: usize| format!("{cell}{}", " ".repeat(w - cell.chars().count()));
    let header_line: Vec<String> = header.iter().zip(widths).map(|(h, w)| pad(h, w)).collect();
    let _ = writeln!(out, "{}", header_line.join("  ").trim_end());
    for (row, result) in rows.iter().zip(&report.results) {
        let mut cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| pad(c, w)).collect();
        cells[0] = paint(&cells[0], result.verdict.passed, color);
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        for detail in details(result) {
            let _ = writeln!(out, "{:w$}  ↳ {detail}", "", w = widths[0]);
        }
    }
    let passed = report.passed();
    let total = report.results.len();
    if passed == total {
        let _ = writeln!(out, "{passed} of {total} scenarios behaved");
    } else {
        let _ = writeln!(
            out,
            "{} of {total} scenarios misbehaved: the config does not keep its promise (see ↳ above)",
            total - passed
        );
    }
    out
}

/// The alert's reason (what a person would act on) and, on a failure, why.
fn details(result: &ScenarioResult) -> Vec<String> {
    let mut lines = Vec::new();
    let fired = result
        .played
        .notifications
        .iter()
        .find(|(_, n)| n.transition == Transition::Firing);
    if let Some((_, n)) = fired
        && let Some(reason) = &n.reason
    {
        lines.push(reason.clone());
    }
    if let Some(hint) = &result.verdict.hint {
        lines.push(format!("why: {hint}"));
    }
    lines
}

fn paint(text: &str, passed: bool, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = if passed { "32" } else { "31" };
    format!("\x1b[1;{code}m{text}\x1b[0m")
}

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    passed: usize,
    failed: usize,
    instance: &'a str,
    scenarios: Vec<Scenario<'a>>,
}

#[derive(Serialize)]
struct Scenario<'a> {
    probe: &'a str,
    scenario: &'a str,
    passed: bool,
    expected: String,
    observed: &'a str,
    hint: Option<&'a str>,
    /// Probe-time seconds from the fault's start to the alert.
    time_to_alert_s: Option<f64>,
    /// Probe-time seconds from the recovery to the resolved notice.
    time_to_resolve_s: Option<f64>,
    interval_s: f64,
    speed: f64,
    outcomes: Vec<&'static str>,
    notifications: Vec<Notice<'a>>,
}

#[derive(Serialize)]
struct Notice<'a> {
    transition: Transition,
    severity: &'static str,
    /// Probe-time seconds since the scenario began.
    at_s: f64,
    reason: Option<&'a str>,
    code: Option<&'a str>,
    correlation_ids: &'a [String],
}

/// Renders the drill as one JSON document (same `schema_version` rules as `check`).
pub fn render_json(report: &DrillReport) -> String {
    let secs = |d: Duration| d.as_secs_f64();
    let doc = Document {
        schema_version: super::json::SCHEMA_VERSION,
        passed: report.passed(),
        failed: report.results.len() - report.passed(),
        instance: &report.instance,
        scenarios: report
            .results
            .iter()
            .map(|r| Scenario {
                probe: &r.probe,
                scenario: r.scenario,
                passed: r.verdict.passed,
                expected: r.expect.describe(),
                observed: &r.verdict.observed,
                hint: r.verdict.hint.as_deref(),
                time_to_alert_s: r.verdict.time_to_alert.map(secs),
                time_to_resolve_s: r.verdict.time_to_resolve.map(secs),
                interval_s: secs(r.interval),
                speed: r.speed,
                outcomes: r.played.outcomes.iter().map(|o| o.as_str()).collect(),
                notifications: r
                    .played
                    .notifications
                    .iter()
                    .map(|(at, n)| Notice {
                        transition: n.transition,
                        severity: n.severity.as_str(),
                        at_s: secs(*at),
                        reason: n.reason.as_deref(),
                        code: n.code.as_deref(),
                        correlation_ids: &n.correlation_ids,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("drill report serializes");
    s.push('\n');
    s
}
