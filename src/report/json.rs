//! The JSON format: a stable document for CI and scripts.
//!
//! `schema_version` changes only when a field changes meaning or disappears;
//! new fields may be added in the same version. Durations are milliseconds.

use serde::Serialize;

use super::Output;
use crate::check::CheckReport;
use crate::probe::{RunResult, Status};

/// Bumped only on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    status: Status,
    exit_code: u8,
    instance: &'a str,
    strangers: u64,
    late_arrivals: u64,
    runs: &'a [RunResult],
    skipped: &'a [crate::check::Skipped],
    /// What else the check wrote (JUnit, textfile, Pushgateway), and whether
    /// it worked; it never changes `status` or `exit_code`.
    outputs: &'a [Output],
}

/// A check that could not run at all (bad config, a port in use): UNKNOWN,
/// with why, so a script reading JSON still gets a document.
#[derive(Serialize)]
struct NotRun<'a> {
    schema_version: u32,
    status: Status,
    exit_code: u8,
    errors: &'a [String],
    runs: [(); 0],
    skipped: [(); 0],
    outputs: &'a [Output],
}

/// Renders the report as one pretty-printed JSON document.
pub fn render(report: &CheckReport, outputs: &[Output]) -> String {
    let status = report.status();
    pretty(&Document {
        schema_version: SCHEMA_VERSION,
        status,
        exit_code: status.code(),
        instance: &report.instance,
        strangers: report.strangers,
        late_arrivals: report.late,
        runs: &report.runs,
        skipped: &report.skipped,
        outputs,
    })
}

/// The document of a check that could not run: status UNKNOWN and the errors.
pub fn render_not_run(errors: &[String], outputs: &[Output]) -> String {
    pretty(&NotRun {
        schema_version: SCHEMA_VERSION,
        status: Status::Unknown,
        exit_code: Status::Unknown.code(),
        errors,
        runs: [],
        skipped: [],
        outputs,
    })
}

fn pretty(doc: &impl Serialize) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    let mut s = serde_json::to_string_pretty(doc).expect("report serializes");
    s.push('\n');
    s
}
