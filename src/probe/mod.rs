//! The run engine: one probe run from correlation id to outcome.
//!
//! A run gets a correlation id, renders the body with its token, submits with
//! retries inside the run's deadline, then waits for receipts and the arrival,
//! recording each phase on a monotonic clock (tokio's, so tests can pause it).

mod outcome;
mod run;

pub use outcome::{Finding, Outcome, Phases, RunResult, Status};
pub use run::{Correlation, Wiring, run, run_as, span};
pub(crate) use run::{round_ms, slow_reason};

/// Length of the token that ties an arriving message to its run.
pub const TOKEN_LEN: usize = 10;
