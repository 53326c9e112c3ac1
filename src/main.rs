//! The `sms-canary` binary: parse arguments, set up logging, call the library,
//! map the result to an exit code. Nothing else lives here.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sms_canary::check::{CheckOptions, check};
use sms_canary::cli::{
    self, CheckArgs, Cli, Command, DaemonArgs, DrillArgs, LogFormat, TriggerArgs,
};
use sms_canary::config::Config;
use sms_canary::metrics::Metrics;
use sms_canary::operate;
use sms_canary::probe::Status;
use sms_canary::report::{self, Format, Output, progress::Spinner};
use sms_canary::store::Store;
use tracing_subscriber::EnvFilter;

/// Nagios UNKNOWN: bad config, bad arguments, internal error.
const UNKNOWN: u8 = Status::Unknown as u8;

fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(UNKNOWN),
            };
        }
    };
    init_tracing(&cli);
    let code = match run_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sms-canary: {}", describe(&e));
            UNKNOWN
        }
    };
    ExitCode::from(code)
}

/// An error with its causes, each said once: our messages often quote
/// their cause already, and `{:#}` would print it again ("… (os error 2):
/// No such file or directory (os error 2)"). A permission problem says what
/// to do about it.
fn describe(e: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    if denied {
        said.push_str(
            " (permission denied: run sms-canary as the user that owns the state dir and \
             config, or give that user access to them)",
        );
    }
    said
}

fn init_tracing(cli: &Cli) {
    let default = match (cli.verbose, &cli.command) {
        (0, Command::MockCarrier(_) | Command::Daemon(_)) => "info",
        // A drill's runs fail on purpose: their warnings are the table's rows.
        (0, Command::Drill(_)) => "error",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sms_canary::report::progress::LogWriter::default)
        .with_ansi(cli::color_allowed(std::io::stderr().is_terminal()));
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run_main(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::MockCarrier(args) => {
            runtime
                .block_on(sms_canary::mock_carrier::run_standalone(args))
                .context("mock carrier")?;
            Ok(0)
        }
        Command::Validate => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            print!("{}", report::plan::render(&config));
            Ok(0)
        }
        Command::ConfigSchema(args) => print_config_schema(&args),
        Command::Doctor(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            let items = runtime.block_on(sms_canary::doctor::doctor(&config, args.listen));
            print!("{}", sms_canary::doctor::render(&items));
            Ok(sms_canary::doctor::exit_code(&items))
        }
        Command::Drill(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            runtime.block_on(run_drill(&config, args))
        }
        Command::Daemon(args) => runtime.block_on(run_daemon(cli.config.as_deref(), args)),
        Command::Healthcheck(args) => {
            runtime.block_on(run_healthcheck(cli.config.as_deref(), args))
        }
        Command::Trigger(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            runtime.block_on(run_trigger(&config, args))
        }
        Command::History(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            if let Some(probe) = &args.probe
                && let Err(e) = sms_canary::check::select(&config, std::slice::from_ref(probe))
            {
                eprintln!("sms-canary: {e}");
                return Ok(UNKNOWN);
            }
            let store = Store::open(&config.canary.state_dir).context("opening the state store")?;
            let history = report::history::load(
                &store,
                &config,
                args.probe.as_deref(),
                args.since,
                args.limit,
            )
            .context("reading the state store")?;
            let text = match args.format {
                report::TableFormat::Human => report::history::render(&history),
                report::TableFormat::Json => report::history::render_json(&history),
                report::TableFormat::Csv => report::history::render_csv(&history),
            };
            print_stdout(text.as_bytes()).context("writing the history")?;
            Ok(0)
        }
        Command::Report(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            let store = Store::open(&config.canary.state_dir).context("opening the state store")?;
            let now = chrono::Utc::now();
            let all = report::stats::report(&store, &config, args.since, now)
                .context("reading the state store")?;
            let text = match args.format {
                report::TableFormat::Human => report::stats::render_human(&all, now),
                report::TableFormat::Csv => report::stats::render_csv(&all, now),
                report::TableFormat::Json => {
                    let mut s = serde_json::to_string_pretty(&serde_json::json!({
                        "schema_version": 1,
                        "window_s": args.since.as_secs_f64(),
                        "at": now,
                        "probes": all,
                    }))
                    .context("rendering the report")?;
                    s.push('\n');
                    s
                }
            };
            if let Some(path) = &args.html {
                let page = report::html::one_file(&config, &store, args.since, now)
                    .context("reading the state store")?;
                std::fs::write(path, page)
                    .with_context(|| format!("writing the status page to {}", path.display()))?;
            }
            print_stdout(text.as_bytes()).context("writing the report")?;
            Ok(0)
        }
        Command::Silence(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            match operate::silence(&config, &args.probe, args.duration, args.reason.as_deref()) {
                Ok(until) => {
                    println!(
                        "{} silenced until {} (runs still count; no notifications)",
                        args.probe,
                        until.to_rfc3339()
                    );
                    Ok(0)
                }
                Err(e) => operate_failed(e),
            }
        }
        Command::Unsilence(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            match runtime.block_on(operate::unsilence(&config, &args.probe)) {
                Ok(done) => {
                    if done.was_silenced {
                        println!("{} is no longer silenced", args.probe);
                    } else {
                        println!("{} was not silenced", args.probe);
                    }
                    for told in &done.told {
                        println!(
                            "held back by the silence, sent now: {:?} ({} delivered)",
                            told.transition, done.delivered.sent
                        );
                    }
                    Ok(0)
                }
                Err(e) => operate_failed(e),
            }
        }
        Command::Alerts(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            match args.action {
                None => match operate::firing(&config) {
                    Ok(alerts) => {
                        print!("{}", report::alerts::render(&alerts));
                        Ok(0)
                    }
                    Err(e) => operate_failed(e),
                },
                Some(cli::AlertsAction::Clear { probe }) => {
                    match runtime.block_on(operate::clear(&config, &probe)) {
                        Ok((Some(_), delivered)) => {
                            println!(
                                "{probe}: alert resolved by hand; resolve sent to {} channel(s)",
                                delivered.sent
                            );
                            if delivered.retrying + delivered.dead > 0 {
                                println!(
                                    "{} notification(s) not delivered yet: see `sms-canary history`",
                                    delivered.retrying + delivered.dead
                                );
                            }
                            Ok(0)
                        }
                        Ok((None, _)) => {
                            println!("{probe}: no alert is firing");
                            Ok(0)
                        }
                        Err(e) => operate_failed(e),
                    }
                }
                Some(cli::AlertsAction::Test { channels }) => {
                    match runtime.block_on(operate::test_channels(&config, &channels)) {
                        Ok(outcomes) => {
                            let mut all_took = true;
                            for (channel, attempt) in &outcomes {
                                match attempt {
                                    sms_canary::monitor::Attempt::Sent => {
                                        println!("ok    {channel}: took the test notification")
                                    }
                                    sms_canary::monitor::Attempt::Retrying { reason, at } => {
                                        all_took = false;
                                        println!(
                                            "FAIL  {channel}: {reason} (the outbox tries again at {})",
                                            sms_canary::alert::time(*at)
                                        );
                                    }
                                    sms_canary::monitor::Attempt::Dead(reason) => {
                                        all_took = false;
                                        println!("FAIL  {channel}: {reason} (dead-lettered)");
                                    }
                                }
                            }
                            Ok(if all_took { 0 } else { 2 })
                        }
                        Err(e) => operate_failed(e),
                    }
                }
            }
        }
        Command::Outbox(args) => {
            let Some(config) = load(cli.config.as_deref()) else {
                return Ok(UNKNOWN);
            };
            match args.action {
                None => match operate::outbox(&config, args.limit) {
                    Ok(entries) => {
                        print!("{}", report::outbox::render(&entries));
                        Ok(0)
                    }
                    Err(e) => operate_failed(e),
                },
                Some(cli::OutboxAction::Retry { id, .. }) => {
                    match runtime.block_on(operate::retry_dead(&config, id.as_deref())) {
                        Ok((requeued, delivered)) => {
                            println!(
                                "{requeued} dead letter(s) re-queued: {} delivered, {} to retry, {} dead again",
                                delivered.sent, delivered.retrying, delivered.dead
                            );
                            Ok(0)
                        }
                        Err(e) => operate_failed(e),
                    }
                }
                Some(cli::OutboxAction::Purge {
                    id,
                    older_than,
                    yes,
                }) => {
                    if id.is_none() && !yes {
                        eprintln!(
                            "sms-canary: purging more than one notification needs --yes \
                             (dead letters are the record of alerts nobody received)"
                        );
                        return Ok(UNKNOWN);
                    }
                    match operate::purge_dead(&config, id.as_deref(), older_than) {
                        Ok(purged) => {
                            println!("{purged} dead letter(s) purged");
                            Ok(0)
                        }
                        Err(e) => operate_failed(e),
                    }
                }
            }
        }
        Command::Check(args) => match load_quietly(cli.config.as_deref()) {
            Ok(config) => runtime.block_on(run_check(&config, args)),
            Err(failed) => not_run(&args, &failed.errors, &failed.said()),
        },
        Command::Completions(args) => print_completions(args.shell),
        Command::Man => print_man(),
    }
}

/// An operator command's failure: said on stderr, UNKNOWN (a probe name
/// that does not exist is bad input like any other).
fn operate_failed(e: operate::OperateError) -> anyhow::Result<u8> {
    eprintln!("sms-canary: {e}");
    Ok(UNKNOWN)
}

/// The config files looked for, in order, when none is given.
const CONFIG_SEARCH: [&str; 2] = ["config.toml", "config.example.toml"];

/// The config path: as given (`--config` or `SMS_CANARY_CONFIG`), else the
/// first of [`CONFIG_SEARCH`] that exists; `Err` says what was looked for.
fn config_path(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(found) = CONFIG_SEARCH.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Ok(found);
    }
    let here = std::env::current_dir()
        .map(|d| format!(" in {}", d.display()))
        .unwrap_or_default();
    Err(format!(
        "sms-canary: no config file: looked for {}{here}; point at one with --config PATH or \
         SMS_CANARY_CONFIG=PATH (config.example.toml in the source tree is a working start)",
        CONFIG_SEARCH.join(" and then ")
    ))
}

/// Loads the config, printing every error on stderr; `None` means exit UNKNOWN.
fn load(given: Option<&Path>) -> Option<Config> {
    match load_quietly(given) {
        Ok(config) => Some(config),
        Err(failed) => {
            for line in failed.said() {
                eprintln!("{line}");
            }
            None
        }
    }
}

/// A config that did not load: each error, and a last line counting them.
struct NotLoaded {
    errors: Vec<String>,
    summary: Option<String>,
}

impl NotLoaded {
    /// What stderr says: the errors, then the count.
    fn said(&self) -> Vec<String> {
        self.errors.iter().chain(&self.summary).cloned().collect()
    }
}

fn load_quietly(given: Option<&Path>) -> Result<Config, NotLoaded> {
    let path = config_path(given).map_err(|e| NotLoaded {
        errors: vec![e],
        summary: None,
    })?;
    Config::load(&path).map_err(|errors| {
        let n = errors.0.len();
        NotLoaded {
            errors: errors.0.iter().map(|e| e.to_string()).collect(),
            summary: Some(format!(
                "sms-canary: {} has {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            )),
        }
    })
}

async fn run_drill(config: &Config, args: DrillArgs) -> anyhow::Result<u8> {
    let options = sms_canary::drill::DrillOptions {
        probes: args.probes,
        scenarios: args.scenarios,
        speed: args.speed,
        notify: args.notify,
        jobs: args.jobs,
    };
    let drilled = sms_canary::drill::drill(config, &options);
    let report = match behind_spinner("drilling: playing fault scenarios…".into(), drilled).await
    {
        Ok(report) => report,
        Err(code) => return Ok(code),
    };
    let text = match args.format {
        Format::Json => report::drill::render_json(&report),
        Format::Human => {
            report::drill::render(&report, cli::color_allowed(std::io::stdout().is_terminal()))
        }
    };
    print_stdout(text.as_bytes()).context("writing the report")?;
    Ok(if report.all_passed() {
        Status::Ok.code()
    } else {
        Status::Critical.code()
    })
}

/// Waits for `work` behind a spinner; an error is said on stderr and ends
/// the command with UNKNOWN.
async fn behind_spinner<T, E: std::fmt::Display>(
    message: String,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, u8> {
    let spinner = Spinner::start(message);
    let result = work.await;
    spinner.finish();
    result.map_err(|e| {
        eprintln!("sms-canary: {e}");
        UNKNOWN
    })
}

async fn run_check(config: &Config, args: CheckArgs) -> anyhow::Result<u8> {
    let options = CheckOptions {
        probes: args.probes.clone(),
        listen: args.listen,
        stateless: args.no_state,
        metrics: (args.push_gateway.is_some() || args.textfile.is_some())
            .then(|| std::sync::Arc::new(Metrics::new(&config.canary.instance))),
        ..CheckOptions::default()
    };
    let waiting = if options.probes.is_empty() {
        "enabled probes".to_string()
    } else {
        options.probes.join(", ")
    };
    let spinner = Spinner::start(format!("checking {waiting}…"));
    let checked = check(config, &options).await;
    spinner.finish();
    let report = match checked {
        Ok(report) => report,
        Err(e) => return not_run(&args, &[e.to_string()], &[format!("sms-canary: {e}")]),
    };
    // The exit code is the probes' verdict alone: what else the check
    // writes is reported beside it, never folded into it.
    let code = report.status().code();
    let mut outputs = Vec::new();
    if let Some(metrics) = &options.metrics {
        if let Some(url) = &args.push_gateway {
            let error = metrics.push(url, &config.canary.instance).await.err();
            outputs.push(Output {
                kind: "pushgateway",
                target: sms_canary::redact::redact_url(url.as_str()),
                error,
            });
        }
        if let Some(path) = &args.textfile {
            let error = metrics
                .write_textfile(path)
                .err()
                .map(|e| format!("cannot write the metrics textfile {}: {e}", path.display()));
            outputs.push(Output {
                kind: "textfile",
                target: path.display().to_string(),
                error,
            });
        }
    }
    // Written whatever the outcome: a failed check is when CI needs it most.
    if let Some(path) = &args.junit {
        outputs.push(Output {
            kind: "junit",
            target: path.display().to_string(),
            error: report::junit::write(&report, path)
                .err()
                .map(|e| e.to_string()),
        });
    }
    let text = match args.format {
        Format::Json => report::json::render(&report, &outputs),
        Format::Human => {
            report::human::render(&report, cli::color_allowed(std::io::stdout().is_terminal()))
        }
    };
    print_stdout(text.as_bytes()).context("writing the report")?;
    warn_outputs(&outputs);
    Ok(code)
}

/// `trigger`: the daemon runs the probe; with --wait its outcome is the exit code.
async fn run_trigger(config: &Config, args: TriggerArgs) -> anyhow::Result<u8> {
    use sms_canary::daemon::client::{self, Triggered};
    let asked = client::trigger(config, args.admin_listen, &args.probe, args.wait);
    let message = if args.wait {
        format!("waiting for the daemon to run {}…", args.probe)
    } else {
        format!("asking the daemon to run {}…", args.probe)
    };
    let (text, code) = match behind_spinner(message, asked).await {
        Err(code) => return Ok(code),
        Ok(Triggered::Started { correlation_id }) => match args.format {
            Format::Json => (
                format!(
                    "{}\n",
                    serde_json::json!({"probe": args.probe, "status": "running", "correlation_id": correlation_id})
                ),
                0,
            ),
            Format::Human => (
                format!(
                    "{}: started (correlation id {correlation_id}); its result: `sms-canary history {}`, or trigger with --wait\n",
                    args.probe, args.probe
                ),
                0,
            ),
        },
        Ok(Triggered::Ended(run)) => {
            let (line, code) = client::render_run(&run);
            match args.format {
                Format::Json => (format!("{run}\n"), code),
                Format::Human => (line, code),
            }
        }
    };
    print_stdout(text.as_bytes()).context("writing the result")?;
    Ok(code)
}

/// A check that could not run: UNKNOWN, said on stderr (`said`), and still
/// a JSON document (`--format json`) and a JUnit file (`--junit`) giving
/// the `errors`.
fn not_run(args: &CheckArgs, errors: &[String], said: &[String]) -> anyhow::Result<u8> {
    for line in said {
        eprintln!("{line}");
    }
    let mut outputs = Vec::new();
    if let Some(path) = &args.junit {
        let written = report::junit::render_not_run(errors)
            .and_then(|xml| report::junit::write_xml(&xml, path));
        outputs.push(Output {
            kind: "junit",
            target: path.display().to_string(),
            error: written.err().map(|e| e.to_string()),
        });
    }
    if args.format == Format::Json {
        print_stdout(report::json::render_not_run(errors, &outputs).as_bytes())
            .context("writing the report")?;
    }
    warn_outputs(&outputs);
    Ok(UNKNOWN)
}

/// Each output that failed, on stderr: a distinct line, since the exit code
/// does not say it.
fn warn_outputs(outputs: &[Output]) {
    for o in outputs {
        if let Some(e) = &o.error {
            eprintln!(
                "sms-canary: WARNING: the {} output was not written: {e}",
                o.kind
            );
        }
    }
}

/// Prints to stdout. A closed pipe (`| head`) is not an error worth a non-zero
/// exit of its own.
fn print_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// `completions SHELL`: generated into memory first, because the generator
/// panics on a write error and a closed pipe must not crash us.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::definition(), "sms-canary", &mut script);
    print_stdout(&script).context("writing the completions")?;
    Ok(0)
}

/// `man`: the man page in roff, built from the same definitions as `--help`
/// and the configuration reference.
fn print_man() -> anyhow::Result<u8> {
    let page = sms_canary::manual::render().context("rendering the man page")?;
    print_stdout(&page).context("writing the man page")?;
    Ok(0)
}

/// `config-schema`: the JSON Schema of a config or probe file, or the
/// reference as markdown.
fn print_config_schema(args: &cli::ConfigSchemaArgs) -> anyhow::Result<u8> {
    use sms_canary::config::reference;
    let text = if args.markdown {
        reference::markdown()
    } else {
        let schema = reference::schema(args.probe);
        serde_json::to_string_pretty(&schema).context("rendering the schema")? + "\n"
    };
    print_stdout(text.as_bytes()).context("writing the schema")?;
    Ok(0)
}

/// `healthcheck`: 0 when the daemon's /healthz answers 200, else 1 whatever
/// the reason (a bad config included), as a container engine reads it.
async fn run_healthcheck(config: Option<&Path>, args: cli::HealthcheckArgs) -> anyhow::Result<u8> {
    use sms_canary::daemon::healthcheck;
    let url = match args.url {
        Some(url) => url,
        None => match load(config) {
            Some(config) => healthcheck::url(&config.canary),
            None => return Ok(1),
        },
    };
    match healthcheck::check(&url, args.timeout).await {
        Ok(said) => {
            println!("healthy: {url} answered {said}");
            Ok(0)
        }
        Err(why) => {
            eprintln!("sms-canary: unhealthy: {why}");
            Ok(1)
        }
    }
}

/// Runs the daemon with signals wired to its control channel: SIGHUP reloads,
/// SIGTERM and Ctrl-C stop it gracefully.
async fn run_daemon(config: Option<&Path>, args: DaemonArgs) -> anyhow::Result<u8> {
    use sms_canary::daemon::{self, Clock, Control, DaemonOptions};
    use tokio::signal::unix::{SignalKind, signal};

    let path = match config_path(config) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("{e}");
            return Ok(UNKNOWN);
        }
    };
    let options = DaemonOptions {
        listen: args.listen,
        admin_listen: args.admin_listen,
        preflight: !args.no_preflight,
        grace: args.grace,
        ..DaemonOptions::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let signals = tx.clone();
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::spawn(async move {
        loop {
            let control = tokio::select! {
                _ = hangup.recv() => Control::Reload,
                _ = terminate.recv() => Control::Shutdown,
                _ = tokio::signal::ctrl_c() => Control::Shutdown,
            };
            if signals.send(control).await.is_err() {
                return;
            }
        }
    });
    match daemon::run(path, options, std::sync::Arc::new(Clock::system()), rx, tx).await {
        Ok(()) => Ok(0),
        Err(daemon::DaemonError::Config(errors)) => {
            eprintln!("{errors}");
            Ok(UNKNOWN)
        }
        Err(e) => {
            eprintln!("sms-canary: {e}");
            Ok(2)
        }
    }
}
