//! sms-canary: an end-to-end synthetic monitor for SMS pipelines.
//!
//! A *probe* sends a real SMS through a *gateway*, waits until a *receiver*
//! sees it, measures each *phase* of the round trip and judges the *outcome*.
//!
//! Layout, one module per domain:
//! - [`config`]: TOML loading, `${VAR}` expansion, defaults, validation with file:line.
//! - [`probe`]: the run engine: correlation ids, phases, outcomes, retries.
//! - [`gateway`]: the [`gateway::Gateway`] trait and one file per provider.
//! - [`receiver`]: where arrivals and receipts come in: the token index and webhooks.
//! - [`mock_carrier`]: a Twilio- and Vonage-compatible carrier with fault injection,
//!   for tests, CI, chaos drills and first runs.
//! - [`alert`]: the alert state machine and the notifications it produces.
//! - [`store`]: SQLite state shared by cron runs and the daemon: runs, alerts, outbox, leases.
//! - [`check`]: the one-shot `check`, wiring the above together.
//! - [`doctor`]: preflight checks that send no SMS.
//! - [`drill`]: chaos drills: fault scenarios played against the alerting on an accelerated clock.
//! - [`metrics`]: Prometheus metrics for `/metrics`, the Pushgateway and textfiles.
//! - [`monitor`]: a run's lifecycle (begin, finish), alert state, the canary's own alerts, outbox delivery.
//! - [`operate`]: operator commands on alert state: silence, unsilence, alerts, clear.
//! - [`daemon`]: the scheduler, HTTP endpoints, reload, graceful shutdown, watchdog.
//! - [`report`]: human and JSON output, the `validate` plan, the spinner.
//! - [`server`]: HTTP serving with slowloris, slow-request and connection limits.
//! - [`signing`]: provider webhook signatures; [`redact`]: secrets and masked numbers.
//! - [`template`]: `{{name}}` templates, escaped for JSON, URLs or raw use.
//! - [`cli`]: the command-line definitions; [`manual`]: the man page.
//!
//! The binary (`src/main.rs`) only parses arguments, sets up tracing and maps
//! results to exit codes.

pub mod alert;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod drill;
pub mod gateway;
pub mod manual;
pub mod metrics;
pub mod mock_carrier;
pub mod net;
pub mod monitor;
pub mod operate;
pub mod probe;
pub mod receiver;
pub mod redact;
pub mod report;
pub mod schedule;
pub mod server;
pub mod signing;
pub mod store;
pub mod template;
mod trust;
