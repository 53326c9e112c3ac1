//! The human format, which is also a Nagios/Icinga plugin's: the first
//! line is the overall status with performance data after `|` (a latency
//! and an up series per probe, with the configured thresholds), then a line
//! per probe.
//!
//! ```text
//! CRITICAL - 2 probes: 1 ok, 1 lost | 'sandbox-roundtrip_latency'=0.812s;5;;0 'sandbox-roundtrip_up'=1;;;0;1 'sandbox-lost_latency'=U;5;;0 'sandbox-lost_up'=0;;;0;1
//! OK        sandbox-roundtrip  ok     812ms / 5s   submit 3.1ms · sent 4.0ms · delivered 811ms · received 812ms  01JDX…
//! CRITICAL  sandbox-lost       lost   - / 5s       submit 2.9ms · sent 3.5ms  01JDY…
//!           ↳ sent by the carrier, but nothing arrived within 2s
//! ```

use std::fmt::Write as _;

use super::short_duration;
use crate::check::CheckReport;
use crate::probe::{Finding, RunResult, Status};

/// Renders the report; `color` adds ANSI colours to the status column.
pub fn render(report: &CheckReport, color: bool) -> String {
    let names = report
        .runs
        .iter()
        .map(|r| r.probe.len())
        .chain(report.skipped.iter().map(|s| s.probe.len()));
    let name_w = names.max().unwrap_or(0);
    let mut out = String::new();
    summary(&mut out, report, color);
    for run in &report.runs {
        line(&mut out, run, name_w, color);
    }
    for skipped in &report.skipped {
        let status = paint(
            &format!("{:<8}", Status::Unknown.as_str()),
            Status::Unknown,
            color,
        );
        let _ = writeln!(out, "{status}  {:<name_w$}  skipped", skipped.probe);
        let _ = writeln!(out, "{:8}  ↳ {}", "", skipped.reason);
    }
    out
}

/// Nagios performance data: per probe, its latency in seconds against its
/// threshold (`U` when nothing arrived) and whether it was up (`U` when it
/// did not run).
fn perfdata(report: &CheckReport) -> String {
    let mut series = Vec::new();
    for run in &report.runs {
        let latency = run
            .latency
            .map_or_else(|| "U".to_string(), |d| format!("{}s", secs(d)));
        let up = u8::from(run.outcome == crate::probe::Outcome::Ok);
        series.push(format!(
            "{}={latency};{};;0",
            label(&run.probe, "latency"),
            secs(run.threshold)
        ));
        series.push(format!("{}={up};;;0;1", label(&run.probe, "up")));
    }
    for skipped in &report.skipped {
        series.push(format!("{}=U;;;0;1", label(&skipped.probe, "up")));
    }
    series.join(" ")
}

/// A perfdata label: quoted, since probe names may hold `-`; a quote in it
/// is doubled, as the plugin guidelines say.
fn label(probe: &str, series: &str) -> String {
    format!("'{}_{series}'", probe.replace('\'', "''"))
}

/// Seconds with at most millisecond precision, without trailing zeros.
fn secs(d: std::time::Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn paint(text: &str, status: Status, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match status {
        Status::Ok => "32",
        Status::Warning => "33",
        Status::Critical => "31",
        Status::Unknown => "35",
    };
    format!("\x1b[1;{code}m{text}\x1b[0m")
}

fn line(out: &mut String, run: &RunResult, name_w: usize, color: bool) {
    let status = run.status();
    let latency = run.latency.map_or_else(|| "-".to_string(), short_duration);
    let vs = format!("{latency} / {}", short_duration(run.threshold));
    let status_col = paint(&format!("{:<8}", status.as_str()), status, color);
    let _ = write!(
        out,
        "{status_col}  {:<name_w$}  {:<11}  {:<17}  {}",
        run.probe,
        run.outcome.as_str(),
        vs,
        phases(run),
    );
    let _ = writeln!(out, "  id {}", run.correlation_id);
    if let Some(reason) = &run.reason {
        let _ = writeln!(out, "{:8}  ↳ {reason}", "");
    }
    for finding in &run.findings {
        let note = match finding {
            Finding::FakeDlr => {
                "finding: the delivery receipt said delivered, the message never came (fake DLR)"
                    .to_string()
            }
            Finding::Duplicates { count } => {
                format!("finding: {count} duplicate arrival(s) ignored")
            }
            Finding::Retried { errors } => {
                format!(
                    "retried {} transient error(s): {}",
                    errors.len(),
                    errors.join("; ")
                )
            }
        };
        let _ = writeln!(out, "{:8}  ↳ {note}", "");
    }
}

fn phases(run: &RunResult) -> String {
    super::phases_text(&run.phases, " · ").unwrap_or_else(|| "no phase reached".to_string())
}

fn summary(out: &mut String, report: &CheckReport, color: bool) {
    let status = report.status();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for run in &report.runs {
        match counts.iter_mut().find(|(o, _)| *o == run.outcome.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((run.outcome.as_str(), 1)),
        }
    }
    let mut counts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    if !report.skipped.is_empty() {
        counts.push(format!("{} skipped", report.skipped.len()));
    }
    let n = report.runs.len() + report.skipped.len();
    let _ = write!(
        out,
        "{} - {n} probe{}: {}",
        paint(status.as_str(), status, color),
        if n == 1 { "" } else { "s" },
        counts.join(", ")
    );
    if let Some(n) = report
        .notifications
        .filter(|n| n.sent + n.retrying + n.dead > 0)
    {
        let _ = write!(
            out,
            "; notifications: {} sent, {} to retry, {} dead-lettered",
            n.sent, n.retrying, n.dead
        );
    }
    if report.late > 0 {
        let _ = write!(
            out,
            " ({} late or duplicate arrival(s) ignored)",
            report.late
        );
    }
    if report.strangers > 0 {
        let _ = write!(
            out,
            " ({} unrelated inbound message(s) ignored)",
            report.strangers
        );
    }
    let _ = writeln!(out, " | {}", perfdata(report));
}
