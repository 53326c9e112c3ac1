//! The JSON format: a stable document for CI and scripts.
//!
//! `schema_version` changes only when a field changes meaning or disappears;
//! new fields may be added in the same version. Durations are milliseconds.

use serde::Serialize;

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
}

/// Renders the report as one pretty-printed JSON document.
pub fn render(report: &CheckReport) -> String {
    let status = report.status();
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        status,
        exit_code: status.code(),
        instance: &report.instance,
        strangers: report.strangers,
        late_arrivals: report.late,
        runs: &report.runs,
        skipped: &report.skipped,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    let mut s = serde_json::to_string_pretty(&doc).expect("report serializes");
    s.push('\n');
    s
}
