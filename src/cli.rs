//! Command-line definitions (clap). Parsing only: `main.rs` acts on them.
//!
//! Also the build's identity ([`REVISION`], shown by `--version` and meant for
//! the `build_info` metric) and the one rule for when output may be coloured
//! ([`color_allowed`]), so that every coloured stream decides the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::mock_carrier::StandaloneArgs;
use crate::report::Format;

/// The git commit the binary was built from (12 hex digits), or `unknown` when
/// built outside a git checkout (a crates.io tarball): set by `build.rs`.
pub const REVISION: &str = env!("SMS_CANARY_REVISION");

/// What `--version` prints after the program name: `0.1.0 (a1b2c3d4e5f6)`.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SMS_CANARY_REVISION"),
    ")"
);

/// Whether a stream may carry ANSI colours: only a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>; an empty
/// value counts as unset there, so it does here).
pub fn color_allowed(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// End-to-end synthetic monitor for SMS pipelines: sends a real SMS through your
/// gateway, waits for it to arrive, measures each phase and judges the result.
#[derive(Debug, Parser)]
#[command(name = "sms-canary", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Config file [default: config.toml, else config.example.toml]
    #[arg(long, short, env = "SMS_CANARY_CONFIG", value_name = "PATH")]
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

/// The commands that read no config, so `--config` is not offered on them.
const WITHOUT_CONFIG: &[&str] = &["completions", "man", "config-schema", "mock-carrier"];

impl Cli {
    /// The command line as parsed, offered in help, completions and the man
    /// page: [`Cli`]'s definitions, with `--config` (and `SMS_CANARY_CONFIG`)
    /// on every command that reads a config, before or after its name, and
    /// on no other.
    pub fn definition() -> clap::Command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let names: Vec<String> = command
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| !WITHOUT_CONFIG.contains(&n.as_str()))
            .collect();
        for name in names {
            command = command.mut_subcommand(name, |sub| {
                sub.arg(
                    clap::Arg::new("config")
                        .long("config")
                        .short('c')
                        .env("SMS_CANARY_CONFIG")
                        .value_name("PATH")
                        .value_parser(clap::value_parser!(PathBuf))
                        .help("Config file [default: config.toml, else config.example.toml]")
                        // Its own subcommands (`alerts clear`) take it too.
                        .global(true),
                )
            });
        }
        command
    }

    /// Parses the process's arguments against [`Cli::definition`].
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Cli::parse_from_args(std::env::args_os())
    }

    /// Parses `args` (the program's name first) against [`Cli::definition`].
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Cli::definition().try_get_matches_from(args)?;
        // `--config` after the command's name wins over one before it.
        let after = matches
            .subcommand()
            .and_then(|(_, sub)| sub.try_get_one::<PathBuf>("config").ok().flatten())
            .cloned();
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut matches)?;
        cli.config = after.or(cli.config);
        Ok(cli)
    }
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
    /// Play fault scenarios against the probes' alerting on an accelerated clock,
    /// through the mock carrier; exit 0 if every scenario behaves, 2 if not, 3 if it cannot run.
    Drill(DrillArgs),
    /// Check the config and print the plan; exit 0 if valid, 3 if not.
    Validate,
    /// Print the JSON Schema of the config file, for editors (taplo, Even Better TOML).
    ConfigSchema(ConfigSchemaArgs),
    /// Preflight without sending an SMS: credentials, listener, poll endpoints.
    /// Exit 0 if all pass, 2 if one fails, 3 for bad config.
    Doctor(DoctorArgs),
    /// Run probes on their schedules: scheduler, webhooks on `listen`; /metrics,
    /// /healthz, /readyz and the run API on `admin_listen`.
    Daemon(DaemonArgs),
    /// Ask the running daemon's /healthz; exit 0 if healthy, 1 if not (for a
    /// container's HEALTHCHECK: the image has no shell or curl).
    Healthcheck(HealthcheckArgs),
    /// Ask the running daemon to run a probe now (through its run API, with
    /// the config's `admin_listen` and `api_token`). With --wait, exit like
    /// `check`; without, 0 once the run started.
    Trigger(TriggerArgs),
    /// Recent runs, outcome counts, latency percentiles, alerts and notifications.
    History(HistoryArgs),
    /// Availability, latency percentiles and incidents per probe over a
    /// window (an SLA table); with --html, the status page as one file.
    Report(ReportArgs),
    /// Silence a probe's alerts for a while (maintenance): runs still count.
    Silence(SilenceArgs),
    /// Lift a probe's silence; an alert it held back is told at once.
    Unsilence(UnsilenceArgs),
    /// List firing alerts; `alerts clear PROBE` resolves one by hand (its
    /// resolve is sent); `alerts test` checks that every channel takes a notice.
    Alerts(AlertsArgs),
    /// List pending and dead-lettered notifications; `outbox retry` re-queues
    /// dead letters, `outbox purge` drops them.
    Outbox(OutboxArgs),
    /// Run the standalone mock carrier (every provider API it emulates).
    MockCarrier(StandaloneArgs),
    /// Print a shell completion script, e.g. `sms-canary completions bash > /etc/bash_completion.d/sms-canary`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `sms-canary man | man -l -`.
    Man,
}

#[derive(Debug, Args)]
pub struct ConfigSchemaArgs {
    /// The schema of a probe file instead of the main file.
    #[arg(long)]
    pub probe: bool,
    /// The whole configuration reference as markdown instead.
    #[arg(long, conflicts_with = "probe")]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Serve webhooks here instead of `[canary] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve /metrics, health and the run API here instead of `[canary] admin_listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Start even if the preflight (`doctor`) fails.
    #[arg(long)]
    pub no_preflight: bool,
    /// How long runs in flight may take to finish on SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::config::parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Ask this URL [default: /healthz on `[canary] listen`, on loopback when
    /// that is 0.0.0.0 or [::]].
    #[arg(long, value_name = "URL")]
    pub url: Option<url::Url>,
    /// Give up after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::config::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The probe to run.
    #[arg(value_name = "PROBE")]
    pub probe: String,
    /// Wait for the run's result and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    #[arg(long)]
    pub wait: bool,
    /// Call the daemon here instead of `[canary] admin_listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Output format of the result on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
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
    /// human, json (the figures, alerts and runs) or csv (the runs, a row each).
    #[arg(long, value_enum, default_value_t = crate::report::TableFormat::Human)]
    pub format: crate::report::TableFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = crate::config::parse_duration)]
    pub since: std::time::Duration,
    /// human, json or csv: a row per probe with runs, availability, p50/p95/p99 and incidents.
    #[arg(long, value_enum, default_value_t = crate::report::TableFormat::Human)]
    pub format: crate::report::TableFormat,
    /// Also write the status page (overview and a section per probe) to this
    /// file: self-contained, for a CI artifact or a cron user with no daemon.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// The probe to silence.
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
    /// The probe whose silence to lift.
    #[arg(value_name = "PROBE")]
    pub probe: String,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertsAction>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Resolve a probe's firing alert by hand; the resolve is sent to its channels.
    Clear {
        /// The probe whose alert to resolve.
        #[arg(value_name = "PROBE")]
        probe: String,
    },
    /// Send a clearly marked test notification through each channel (through
    /// the outbox); exit 0 only if every channel took it, 2 if not.
    Test {
        /// Channels to test (names of `[alerts.NAME]`) [default: every channel].
        #[arg(value_name = "CHANNEL")]
        channels: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub action: Option<OutboxAction>,
    /// Entries to list at most.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Put dead letters back in the queue and try them now.
    Retry {
        /// The notification to retry (its id, from `sms-canary outbox`).
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        id: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Drop dead letters (pending notifications are never dropped).
    Purge {
        /// The notification to drop (its id, from `sms-canary outbox`).
        #[arg(value_name = "ID", conflicts_with = "older_than")]
        id: Option<String>,
        /// Every dead letter created longer ago than this, e.g. 30d.
        #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Confirms a purge of more than one notification.
        #[arg(long)]
        yes: bool,
    },
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
    #[arg(long, value_name = "URL", value_parser = UrlArg)]
    pub push_gateway: Option<url::Url>,

    /// Write the run's metrics as a node_exporter textfile (atomically).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,

    /// Also write a JUnit XML report here (written even when probes fail).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Probes to drill [default: every enabled probe].
    #[arg(value_name = "PROBE")]
    pub probes: Vec<String>,

    /// Only these scenarios (repeatable) [default: all of them].
    #[arg(long = "scenario", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(crate::drill::scenario::ALL))]
    pub scenarios: Vec<String>,

    /// How much faster than real time runs play, from 1 to 120 [default: so a
    /// run times out after about 4 real seconds].
    #[arg(long, value_name = "FACTOR")]
    pub speed: Option<f64>,

    /// Also send the drill's alerts to the probes' own channels (their instance
    /// reads "<instance> (drill)"); by default they go only to a capturing sink.
    #[arg(long)]
    pub notify: bool,

    /// Scenarios played at once.
    #[arg(long, default_value_t = 16)]
    pub jobs: usize,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check this listen address instead of `[canary] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses a URL argument. clap's own error would quote the value whole; a
/// URL may carry a password or a token, so the error quotes it without them.
#[derive(Debug, Clone, Copy)]
pub struct UrlArg;

impl clap::builder::TypedValueParser for UrlArg {
    type Value = url::Url;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<url::Url, clap::Error> {
        let text = value.to_string_lossy();
        url::Url::parse(&text).map_err(|e| {
            let arg = arg.map(ToString::to_string).unwrap_or_default();
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "invalid value \"{}\" for '{arg}': {e}\n",
                    crate::redact::redact_url(&text)
                ),
            )
            .with_cmd(cmd)
        })
    }
}
