//! sms-canary: an end-to-end synthetic monitor for SMS pipelines.
//!
//! A *probe* sends a real SMS through a *gateway*, waits until a *receiver*
//! sees it, measures each *phase* of the round trip and judges the *outcome*.
//!
//! Layout, one module per domain, and one folder per provider:
//! - [`config`]: TOML loading, `${VAR}` expansion, defaults, validation with file:line.
//! - [`providers`]: one folder per provider (settings, gateway, webhooks, code
//!   tables, poller, mock emulation) and the registry of their kinds.
//! - [`probe`]: the run engine: correlation ids, phases, outcomes, retries.
//! - [`gateway`]: the [`gateway::Gateway`] trait every provider implements.
//! - [`receiver`]: where arrivals and receipts come in: the token index, the
//!   webhook server the providers' routes share, the poll loop.
//! - [`mock_carrier`]: the mock carrier's engine (latency, faults, delivery,
//!   admin API) around the providers' emulations, for tests, CI, chaos drills
//!   and first runs.
//! - [`net`]: HTTP plumbing shared by every outgoing call and its one error shape.
//! - [`values`], [`settings`]: the configuration's value types, and the
//!   vocabulary its reference is written in.
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
//! - [`signing`]: the generic HMAC-SHA256 body signature; [`redact`]: secrets and masked numbers.
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
pub mod monitor;
pub mod net;
pub mod operate;
pub mod probe;
pub mod providers;
pub mod receiver;
pub mod redact;
pub mod report;
pub mod schedule;
pub mod server;
pub mod settings;
pub mod signing;
pub mod store;
pub mod template;
mod trust;
pub mod values;
mod wiring;
