//! The JUnit XML format, for CI systems that show test results (`check --junit PATH`).
//!
//! One `<testsuite name="sms-canary">` with one `<testcase>` per probe:
//! `classname` is `sms-canary.<instance>`, `name` the probe, `time` its
//! end-to-end latency (or how long it ran, when nothing arrived).
//!
//! - `ok` passes.
//! - `slow` is a `<failure type="slow">` whose message starts with `WARNING`.
//!   The exit code calls it a warning, but JUnit has no such level: a CI smoke
//!   test that ran slower than its threshold did not pass, and `<skipped>`
//!   would hide it from the failure counts people look at.
//! - `lost`, `undelivered`, `rejected` and `error` are `<failure type="<outcome>">`
//!   with the reason and the provider's code as the message and the evidence
//!   (correlation id, phases, message id, gateway) as the body.
//! - A probe the check did not run (its lease was held, the cost guard) is an
//!   `<error type="unknown">`: nothing was measured, as with exit code 3.
//!
//! Every case's `<system-out>` carries the correlation id, to find the run in
//! logs and alerts. The XML is written by `quick-junit`, which escapes markup
//! and drops the control characters XML cannot hold; the file is replaced
//! atomically so a CI job never reads half a report.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use thiserror::Error;

use super::short_duration;
use crate::check::{CheckReport, Skipped};
use crate::probe::{Finding, Outcome, RunResult};

/// The suite's name, and the prefix of every case's `classname`.
const SUITE: &str = "sms-canary";

/// The report could not be produced or written.
#[derive(Debug, Error)]
pub enum JunitError {
    #[error("cannot write the JUnit report to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the JUnit report: {0}")]
    Render(String),
}

/// Renders the report as a JUnit XML document.
pub fn render(report: &CheckReport) -> Result<String, JunitError> {
    let mut suite = TestSuite::new(SUITE);
    let classname = format!("{SUITE}.{}", clean(&report.instance));
    let mut total = Duration::ZERO;
    for run in &report.runs {
        let case = run_case(run, &classname);
        total += elapsed(run);
        suite.add_test_case(case);
    }
    for skipped in &report.skipped {
        suite.add_test_case(skipped_case(skipped, &classname));
    }
    suite.set_time(total);
    let mut doc = Report::new(SUITE);
    doc.set_time(total).add_test_suite(suite);
    let mut xml = doc
        .to_string()
        .map_err(|e| JunitError::Render(e.to_string()))?;
    if !xml.ends_with('\n') {
        xml.push('\n');
    }
    Ok(xml)
}

/// A check that could not run at all (bad config, a port in use): one
/// `<error type="unknown">` case saying why, so the CI view shows the
/// failure instead of a missing file.
pub fn render_not_run(errors: &[String]) -> Result<String, JunitError> {
    let mut suite = TestSuite::new(SUITE);
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status
        .set_type("unknown")
        .set_message(clean(&format!(
            "UNKNOWN: the check could not run: {}",
            errors.first().map_or("", String::as_str)
        )))
        .set_description(clean(&errors.join("\n")));
    let mut case = TestCase::new("check", status);
    case.set_classname(SUITE).set_time(Duration::ZERO);
    suite.add_test_case(case);
    let mut doc = Report::new(SUITE);
    doc.add_test_suite(suite);
    let mut xml = doc
        .to_string()
        .map_err(|e| JunitError::Render(e.to_string()))?;
    if !xml.ends_with('\n') {
        xml.push('\n');
    }
    Ok(xml)
}

/// Writes the report to `path` atomically (see [`write_xml`]).
pub fn write(report: &CheckReport, path: &Path) -> Result<(), JunitError> {
    write_xml(&render(report)?, path)
}

/// Writes `xml` to `path` atomically: to `PATH.tmp` in the same directory
/// first, then renamed over `path`, so readers see the old file or the
/// whole new one.
pub fn write_xml(xml: &str, path: &Path) -> Result<(), JunitError> {
    let failed = |source| JunitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(xml.as_bytes())?;
        // On disk before the rename, or a crash could leave an empty report.
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(e));
    }
    Ok(())
}

fn run_case(run: &RunResult, classname: &str) -> TestCase {
    let status = match run.outcome {
        Outcome::Ok => TestCaseStatus::success(),
        outcome => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_type(outcome.as_str())
                .set_message(clean(&message(run)))
                .set_description(clean(&evidence(run)));
            status
        }
    };
    let mut case = TestCase::new(clean(&run.probe), status);
    case.set_classname(classname)
        .set_time(elapsed(run))
        .set_timestamp(run.started_at)
        .set_system_out(clean(&format!("correlation id: {}\n", run.correlation_id)));
    case
}

fn skipped_case(skipped: &Skipped, classname: &str) -> TestCase {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status
        .set_type("unknown")
        .set_message(clean(&format!("UNKNOWN: not run: {}", skipped.reason)));
    let mut case = TestCase::new(clean(&skipped.probe), status);
    case.set_classname(classname)
        .set_time(Duration::ZERO)
        .set_system_out("correlation id: none (the probe was not run)\n");
    case
}

/// The failure message: the reason in words, the provider's code, and for a
/// slow run that the exit code counts it as a warning.
fn message(run: &RunResult) -> String {
    let mut text = match &run.reason {
        Some(reason) => reason.clone(),
        None => run.outcome.as_str().to_string(),
    };
    if let Some(code) = &run.code {
        let _ = write!(text, " (code {code})");
    }
    if run.outcome == Outcome::Slow {
        text = format!("WARNING: {text}");
    }
    text
}

/// The failure body: what someone debugging the run needs first.
fn evidence(run: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "outcome: {} ({})", run.outcome, run.status());
    let _ = writeln!(out, "correlation id: {}", run.correlation_id);
    let latency = run.latency.map_or_else(|| "-".to_string(), short_duration);
    let _ = writeln!(
        out,
        "latency: {latency} (threshold {}, timeout {})",
        short_duration(run.threshold),
        short_duration(run.timeout)
    );
    let _ = writeln!(out, "phases: {}", phases(run));
    let _ = writeln!(
        out,
        "message id: {}",
        run.message_id.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "gateway: {}", run.gateway);
    let _ = writeln!(out, "receiver: {}", run.receiver);
    let _ = writeln!(out, "attempts: {}", run.attempts);
    for finding in &run.findings {
        let note = match finding {
            Finding::FakeDlr => {
                "fake DLR: the receipt said delivered, the message never came".to_string()
            }
            Finding::Duplicates { count } => format!("{count} duplicate arrival(s) ignored"),
            Finding::Retried { errors } => format!(
                "retried {} transient error(s): {}",
                errors.len(),
                errors.join("; ")
            ),
        };
        let _ = writeln!(out, "finding: {note}");
    }
    let _ = writeln!(out, "started at: {}", run.started_at.to_rfc3339());
    out
}

fn phases(run: &RunResult) -> String {
    super::phases_text(&run.phases, ", ").unwrap_or_else(|| "none reached".to_string())
}

/// How long the run took as far as is known: its latency when the message
/// arrived, the whole timeout when it was lost (it waited that long), else the
/// last phase reached (a rejection ends at submit).
fn elapsed(run: &RunResult) -> Duration {
    if let Some(latency) = run.latency {
        return latency;
    }
    if run.outcome == Outcome::Lost {
        return run.timeout;
    }
    let p = &run.phases;
    [p.submit, p.sent, p.delivered, p.received]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default()
}

/// Drops the two characters XML 1.0 cannot hold that `quick-junit` leaves in
/// (it already strips ANSI escapes and C0 controls other than tab and newlines).
fn clean(text: &str) -> String {
    text.replace(['\u{fffe}', '\u{ffff}'], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Phases;

    fn run(outcome: Outcome, reason: Option<&str>, code: Option<&str>) -> RunResult {
        RunResult {
            probe: "p".into(),
            gateway: "sandbox".into(),
            receiver: "inbox".into(),
            correlation_id: "01JDXCORRELATION0000000000".into(),
            started_at: chrono::Utc::now(),
            outcome,
            reason: reason.map(Into::into),
            code: code.map(Into::into),
            latency: None,
            threshold: Duration::from_millis(400),
            timeout: Duration::from_secs(1),
            phases: Phases {
                submit: Some(Duration::from_millis(3)),
                ..Phases::default()
            },
            message_id: Some("SM123".into()),
            attempts: 1,
            findings: vec![],
            gateway_errors: Vec::new(),
        }
    }

    fn report(runs: Vec<RunResult>, skipped: Vec<Skipped>) -> CheckReport {
        CheckReport {
            instance: "ci".into(),
            runs,
            skipped,
            strangers: 0,
            late: 0,
            notifications: None,
        }
    }

    #[test]
    fn markup_and_control_characters_cannot_break_the_document() {
        let nasty = "a <b> & \"c\" 'd' \u{1b}[31mred\u{1b}[0m \u{0}\u{7}\u{fffe} ]]> end";
        let mut r = run(Outcome::Rejected, Some(nasty), Some("<1&2>"));
        r.probe = "p<&>".into();
        let xml = render(&report(
            vec![r],
            vec![Skipped {
                probe: "s\"'".into(),
                reason: nasty.into(),
            }],
        ))
        .unwrap();
        assert!(xml.contains("&lt;b&gt; &amp; "), "{xml}");
        assert!(xml.contains("(code &lt;1&amp;2&gt;)"), "{xml}");
        assert!(!xml.contains("<b>") && !xml.contains("p<&>"), "{xml}");
        for bad in ['\u{0}', '\u{7}', '\u{1b}', '\u{fffe}'] {
            assert!(!xml.contains(bad), "{bad:?} left in {xml}");
        }
        // And it parses back.
        let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        let cases = &parsed.test_suites[0].test_cases;
        assert_eq!(cases[0].name.as_str(), "p<&>");
        assert_eq!(cases[1].name.as_str(), "s\"'");
    }

    #[test]
    fn elapsed_is_latency_else_the_timeout_when_lost_else_the_last_phase() {
        let mut ok = run(Outcome::Ok, None, None);
        ok.latency = Some(Duration::from_millis(812));
        assert_eq!(elapsed(&ok), Duration::from_millis(812));
        assert_eq!(
            elapsed(&run(Outcome::Lost, None, None)),
            Duration::from_secs(1)
        );
        assert_eq!(
            elapsed(&run(Outcome::Rejected, None, None)),
            Duration::from_millis(3)
        );
    }

    #[test]
    fn slow_is_a_failure_marked_as_a_warning() {
        let mut slow = run(Outcome::Slow, Some("arrived after 600ms"), None);
        slow.latency = Some(Duration::from_millis(600));
        let xml = render(&report(vec![slow], vec![])).unwrap();
        assert!(
            xml.contains(r#"<failure type="slow" message="WARNING: arrived after 600ms">"#)
                || xml.contains(r#"<failure message="WARNING: arrived after 600ms" type="slow">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"time="0.600""#), "{xml}");
    }
}
