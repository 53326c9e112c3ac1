//! The man page: clap's sections (name, synopsis, options, commands) from the
//! same definitions as `--help`, then what `--help` has no room for: the
//! configuration reference, exit status, environment, files, signals and
//! examples.

use std::fmt::Write as _;

use crate::cli::Cli;
use crate::config::reference;

/// Exit status by command.
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "check",
        "0 OK: every message arrived within its threshold. 1 WARNING: one arrived, but slower than its threshold. 2 CRITICAL: one was lost, undelivered, rejected, or its errors outlasted the retries. 3 UNKNOWN: bad config or arguments, or the check could not run. With several probes the worst wins (Nagios plugin convention).",
    ),
    (
        "drill",
        "0 when every scenario behaves, 2 when one does not, 3 when the drill cannot run.",
    ),
    (
        "doctor",
        "0 when every preflight check passes, 2 when one fails, 3 for bad config.",
    ),
    (
        "daemon",
        "0 after a graceful stop, 3 for bad config, 2 when it cannot start (a failed preflight, a listener that cannot bind), 70 when its watchdog finds the scheduler stuck, so that a supervisor restarts it.",
    ),
    ("others", "0 on success, 3 for bad config or bad arguments."),
];

/// Variables read besides those that options name (clap lists those).
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "RUST_LOG",
        "Log filter on stderr, in tracing's syntax (e.g. sms_canary=debug); overrides -v.",
    ),
    (
        "NO_COLOR",
        "When set to a non-empty value, no colour even on a terminal.",
    ),
    (
        "${VAR} in the config",
        "Every variable a config string names is read when the config loads; one that is unset and has no default is an error.",
    ),
];

/// Signals the daemon acts on.
const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGHUP",
        "daemon: reload the config. It is validated first; on an error the running config stays and the error is logged.",
    ),
    (
        "SIGTERM, SIGINT",
        "daemon: stop scheduling and give runs in flight --grace (30s) to finish; the rest are recorded as interrupted.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "sms-canary check",
        "One round trip per enabled probe, from config.toml or the shipped example.",
    ),
    (
        "*/5 * * * * sms-canary --config /etc/sms-canary/config.toml check --all",
        "A crontab line: state persists across runs, overlapping runs are locked out.",
    ),
    (
        "sms-canary check --format json --no-state --junit junit.xml > result.json",
        "In CI against the mock carrier: JSON, a JUnit report and the exit code.",
    ),
    (
        "sms-canary validate",
        "Check the config and print the plan: schedules, messages a day, webhook URLs.",
    ),
    ("sms-canary daemon", "Run every probe on its schedule."),
    (
        "sms-canary silence checkout-us --for 2h --reason \"carrier maintenance\"",
        "Hold a probe's notifications back for a while.",
    ),
    (
        "sms-canary config-schema > sms-canary.schema.json",
        "The JSON Schema, for an editor's completion and checks.",
    ),
    ("sms-canary man | man -l -", "Read this page."),
];

fn escape(text: &str) -> String {
    reference::roff_escape(text)
}

fn tagged(out: &mut String, items: &[(&str, &str)]) {
    for (tag, text) in items {
        let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", escape(tag), escape(text));
    }
}

/// The variables the command line reads (`env = ...` on an option).
fn option_variables() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut todo = vec![Cli::definition()];
    while let Some(cmd) = todo.pop() {
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let text = format!(
                    "{} (`{}`{}).",
                    help.trim_end_matches('.'),
                    match arg.get_long() {
                        Some(long) => format!("--{long}"),
                        None => arg.get_id().to_string(),
                    },
                    if cmd.get_name() == "sms-canary" {
                        String::new()
                    } else {
                        format!(" of {}", cmd.get_name())
                    }
                );
                let var = var.to_string_lossy().into_owned();
                if !found.iter().any(|(v, _)| *v == var) {
                    found.push((var, text));
                }
            }
        }
        todo.extend(cmd.get_subcommands().cloned());
    }
    found
}

/// The sections after clap's.
fn extra_sections() -> String {
    let mut out = reference::roff();
    out.push_str(".SH \"EXIT STATUS\"\n");
    tagged(&mut out, EXIT_STATUS);
    out.push_str(".SH ENVIRONMENT\n");
    let variables = option_variables();
    let variables: Vec<(&str, &str)> = variables
        .iter()
        .map(|(v, t)| (v.as_str(), t.as_str()))
        .collect();
    tagged(&mut out, &variables);
    tagged(&mut out, ENVIRONMENT);
    out.push_str(".SH FILES\n");
    let state = format!(
        "The state store, in [canary] state_dir (default {}, relative to the config file): SQLite, shared by cron runs and the daemon, with its -wal and -shm files.",
        crate::config::Canary::default().state_dir.display()
    );
    let holders = "One lock file per process using the store, locked for its lifetime: how a crashed process is told from a live one.";
    tagged(
        &mut out,
        &[
            (
                "config.toml, config.example.toml",
                "Without --config or SMS_CANARY_CONFIG, config.toml in the working directory, else config.example.toml there.",
            ),
            (
                "probes/*.toml",
                "One probe a file, found by the globs of [canary] probes, relative to the config file.",
            ),
            (&format!("STATE_DIR/{}", crate::store::DB_FILE), &state),
            (
                &format!("STATE_DIR/{}/", crate::store::HOLDERS_DIR),
                holders,
            ),
        ],
    );
    out.push_str(".SH SIGNALS\n");
    tagged(&mut out, SIGNALS);
    out.push_str(".SH EXAMPLES\n");
    tagged(&mut out, EXAMPLES);
    out
}

/// The whole man page, in roff: the extra sections go before VERSION.
pub fn render() -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::definition()).render(&mut page)?;
    let page = String::from_utf8_lossy(&page).into_owned();
    let at = page.find("\n.SH VERSION\n").map_or(page.len(), |i| i + 1);
    let (head, tail) = page.split_at(at);
    Ok(format!("{head}{}{tail}", extra_sections()).into_bytes())
}
