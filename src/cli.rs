//! Command-line definitions (clap). Parsing only: `main.rs` acts on them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::mock_carrier::StandaloneArgs;
use crate::report::Format;

/// End-to-end synthetic monitor for SMS pipelines: sends a real SMS through your
/// gateway, waits for it to arrive, measures each phase and judges the result.
#[derive(Debug, Parser)]
#[command(name = "sms-canary", version, propagate_version = true)]
pub struct Cli {
    /// Config file [default: config.toml, else config.example.toml]
    #[arg(
        long,
        short,
        global = true,
        env = "SMS_CANARY_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run probes once and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (worst wins).
    Check(CheckArgs),
    /// Check the config and print the plan; exit 0 if valid, 3 if not.
    Validate,
    /// Preflight without sending an SMS: credentials, listener, poll endpoints.
    /// Exit 0 if all pass, 2 if one fails, 3 for bad config.
    Doctor(DoctorArgs),
    /// Run probes on their schedules: scheduler, webhooks, /healthz, /readyz.
    Daemon(DaemonArgs),
    /// Recent runs, outcome counts, latency percentiles, alerts and notifications.
    History(HistoryArgs),
    /// Silence a probe's alerts for a while (maintenance): runs still count.
    Silence(SilenceArgs),
    /// Lift a probe's silence.
    Unsilence(UnsilenceArgs),
    /// Run the standalone Twilio- and Vonage-compatible mock carrier.
    MockCarrier(StandaloneArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Listen here instead of `[canary] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Start even if the preflight (`doctor`) fails.
    #[arg(long)]
    pub no_preflight: bool,
    /// How long runs in flight may take to finish on SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::config::parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this probe.
    #[arg(value_name = "PROBE")]
    pub probe: Option<String>,
    /// Runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Window of the counts and percentiles.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::config::parse_duration)]
    pub since: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct SilenceArgs {
    #[arg(value_name = "PROBE")]
    pub probe: String,
    /// How long, e.g. 2h.
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub duration: std::time::Duration,
    /// Why (shown by `history`).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnsilenceArgs {
    #[arg(value_name = "PROBE")]
    pub probe: String,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Probes to run [default: every enabled probe].
    #[arg(value_name = "PROBE")]
    pub probes: Vec<String>,

    /// Run every enabled probe (the default when no probe is named).
    #[arg(long, conflicts_with = "probes")]
    pub all: bool,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Listen here for webhooks instead of `[canary] listen` (`127.0.0.1:0`: any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Keep no state: no store, no leases, no alerts (a quick look, or CI).
    #[arg(long)]
    pub no_state: bool,

    /// Push the run's metrics to this Prometheus Pushgateway (job `sms-canary`).
    #[arg(long, value_name = "URL")]
    pub push_gateway: Option<url::Url>,

    /// Write the run's metrics as a node_exporter textfile (atomically).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check this listen address instead of `[canary] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}
