//! The conventions a command-line tool is expected to keep: shell completions,
//! a man page, `--version` with the build's commit, colour only on terminals
//! and never with `NO_COLOR`, and JSON logs that carry the correlation id but
//! no secret and no full phone number.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

/// A mock whose signing token comes from the environment, so a leak of the
/// expanded value is detectable.
const MAIN: &str = r#"[canary]
listen = "127.0.0.1:0"
instance = "ci"

[defaults]
timeout = "2s"
threshold = "1s"

[gateways.sandbox]
kind = "mock"
latency = "30ms"
auth_token = "${CONVENTIONS_MOCK_TOKEN}"

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

const TOKEN: &str = "conventions-secret-7f3a9c";
const TO: &str = "+15005550100";
const FROM: &str = "+15005550006";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), MAIN).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    let probe = format!(
        "name = \"fast\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"{FROM}\"\nto = \"{TO}\"\n"
    );
    std::fs::write(dir.path().join("probes/fast.toml"), probe).unwrap();
    dir
}

/// Runs the binary somewhere with no config at all: these commands need none.
fn bare(args: &[&str]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .args(args)
        .current_dir(empty.path())
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn completions_are_printed_for_each_shell_without_a_config() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = bare(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.len() > 100, "{shell}: {script}");
        assert!(script.contains("check"), "{shell} completes subcommands");
        assert!(script.contains("sms-canary"), "{shell}");
    }
    let out = bare(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unknown shell is a bad argument"
    );
    assert!(
        text(&out.stderr).contains("bash"),
        "lists the possible values"
    );
}

#[test]
fn man_prints_a_roff_page_listing_the_commands() {
    let out = bare(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    // clap_mangen opens with two roff string definitions, then the title line.
    assert!(page.starts_with('.'), "roff: {page}");
    assert!(
        page.lines().any(|l| l.starts_with(".TH sms-canary 1")),
        "{page}"
    );
    for command in ["check", "daemon", "completions"] {
        assert!(page.contains(command), "{command} missing: {page}");
    }
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let out = bare(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let line = text(&out.stdout);
    let line = line.trim_end();
    let prefix = format!("sms-canary {} (", env!("CARGO_PKG_VERSION"));
    let revision = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        revision == "unknown"
            || (revision.len() == 12 && revision.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line}"
    );
    assert_eq!(revision, sms_canary::cli::REVISION);
    // Subcommands print the same.
    let sub = text(&bare(&["check", "--version"]).stdout);
    assert!(sub.contains(&format!("({revision})")), "{sub}");
}

/// Whether `text` holds an SGR (colour) escape, `ESC [ digits/; m`. Other
/// escapes (the spinner's line clearing) are not colour.
fn has_colour(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(i, _)| {
        let rest = &text[i + 2..];
        let params = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b';')
            .count();
        rest.as_bytes().get(params) == Some(&b'm')
    })
}

/// Runs `check` under a pseudo-terminal through `script`, with `NO_COLOR` as
/// given.
fn check_on_a_terminal(script: &Path, dir: &Path, no_color: Option<&str>) -> String {
    // -v so that coloured log lines are on the terminal too.
    let command = format!("'{BIN}' check --no-state -v");
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("CONVENTIONS_MOCK_TOKEN", TOKEN)
        .env("TERM", "xterm")
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG");
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = cmd.output().expect("run script");
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}{}", text(&out.stderr));
    // Colour may split "OK 1 probe": match what follows the status word.
    assert!(screen.contains(" 1 probe: 1 ok"), "{screen}");
    screen
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = setup();
    // Piped: never.
    let out = Command::new(BIN)
        .args(["check", "--no-state", "-v"])
        .current_dir(dir.path())
        .env("CONVENTIONS_MOCK_TOKEN", TOKEN)
        .env_remove("NO_COLOR")
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains('\x1b') && !text(&out.stderr).contains('\x1b'));

    let Some(script) = crate::peers::require_peer("script") else {
        return;
    };
    let plain = check_on_a_terminal(&script, dir.path(), Some("1"));
    assert!(!has_colour(&plain), "NO_COLOR=1 on a terminal: {plain:?}");
    let coloured = check_on_a_terminal(&script, dir.path(), None);
    assert!(
        has_colour(&coloured),
        "a terminal gets colour: {coloured:?}"
    );
    // An empty NO_COLOR counts as unset (no-color.org).
    let empty = check_on_a_terminal(&script, dir.path(), Some(""));
    assert!(has_colour(&empty), "NO_COLOR='' on a terminal: {empty:?}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_correlation_id_and_no_secrets() {
    let dir = setup();
    for verbosity in ["-v", "-vv"] {
        let out = Command::new(BIN)
            .args(["check", "--no-state", "--format", "json", "--log-format"])
            .args(["json", verbosity])
            .current_dir(dir.path())
            .env("CONVENTIONS_MOCK_TOKEN", TOKEN)
            .env_remove("SMS_CANARY_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let id = report["runs"][0]["correlation_id"].as_str().unwrap();

        let mut run_lines = 0;
        for line in stderr.lines() {
            let entry: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{verbosity}: not one JSON object ({e}): {line}"));
            assert!(entry.is_object(), "{line}");
            if entry["target"] == "sms_canary::probe::run" {
                run_lines += 1;
                assert_eq!(entry["span"]["correlation_id"], id, "{line}");
            }
        }
        assert!(run_lines > 0, "{verbosity}: no run lines in {stderr}");
        for (name, stream) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !stream.contains(TOKEN),
                "{verbosity}: token in {name}: {stream}"
            );
            for number in [TO, FROM] {
                assert!(
                    !stream.contains(number),
                    "{verbosity}: full number in {name}: {stream}"
                );
            }
        }
        assert!(
            stderr.contains("+********100"),
            "numbers are masked, not dropped: {stderr}"
        );
    }
}

/// The screen a terminal shows for `raw` output: `\r` returns to the start
/// of the line (the spinner redraws so), escape sequences draw nothing.
fn screen_lines(raw: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in raw.replace("\r\n", "\n").split('\n') {
        let last = line.rsplit('\r').next().unwrap_or("");
        let mut visible = String::new();
        let mut chars = last.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: ESC [ parameters, then one letter.
                if chars.next_if_eq(&'[').is_some() {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                continue;
            }
            visible.push(c);
        }
        lines.push(visible);
    }
    lines
}

/// Issue 20: log lines are printed above the spinner, never after its frame
/// on the same line.
#[test]
fn log_lines_do_not_overwrite_the_spinner() {
    let Some(script) = crate::peers::require_peer("script") else {
        return;
    };
    let dir = setup();
    // Slow enough for the spinner to draw while the run logs.
    let config = MAIN.replace("latency = \"30ms\"", "latency = \"700ms\"");
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let command = format!("'{BIN}' check --no-state -v");
    let out = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .env("CONVENTIONS_MOCK_TOKEN", TOKEN)
        .env("TERM", "xterm")
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let raw = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{raw}");
    let lines = screen_lines(&raw);
    assert!(
        lines.iter().any(|l| l.contains("INFO")),
        "no log line: {raw:?}"
    );
    assert!(raw.contains("checking"), "no spinner: {raw:?}");
    for line in &lines {
        assert!(
            !(line.contains("INFO") && line.contains("checking")),
            "a log line written over the spinner: {line:?}"
        );
    }
}

/// Issue 20: `--config` is offered only by commands that read a config, and
/// every positional argument says what it is.
#[test]
fn options_are_offered_where_they_mean_something_and_arguments_explain_themselves() {
    for command in ["completions", "man", "config-schema", "mock-carrier"] {
        let out = bare(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        assert!(help.contains("Usage:"), "{command}: {help}");
        assert!(
            !help.contains("--config"),
            "{command} offers --config:\n{help}"
        );
    }
    for command in ["check", "daemon", "validate", "history", "alerts"] {
        let help = text(&bare(&[command, "--help"]).stdout);
        assert!(
            help.contains("--config"),
            "{command} should offer --config:\n{help}"
        );
    }
    let completions = text(&bare(&["completions", "fish"]).stdout);
    let offers_config = |command: &str| {
        completions.lines().any(|l| {
            l.contains(&format!("__fish_sms_canary_using_subcommand {command}\""))
                && l.contains("-l config")
        })
    };
    assert!(offers_config("check"), "{completions}");
    assert!(!offers_config("completions"), "{completions}");
    assert!(!offers_config("man"), "{completions}");
    // Every positional argument of every command has help text.
    let mut todo = vec![sms_canary::cli::Cli::definition()];
    while let Some(mut command) = todo.pop() {
        command.build();
        for arg in command.get_positionals() {
            assert!(
                arg.get_help().is_some(),
                "`{}`'s argument {} has no help text",
                command.get_name(),
                arg.get_id()
            );
        }
        todo.extend(command.get_subcommands().cloned());
    }
}
