//! Config loading: one case per rule, each asserting that its message names the
//! file, the line and the column, plus what a valid config resolves to.

use std::path::{Path, PathBuf};

use sms_canary::config::{Config, GatewayConfig};

const MAIN: &str = r#"[canary]
listen = "127.0.0.1:0"
instance = "test"

[gateways.sandbox]
kind = "mock"
latency = "50ms"

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

const PROBE: &str = r#"name = "p1"
gateway = "sandbox"
receiver = "inbox"
from = "+15005550006"
to = "+15005550100"
threshold = "2s"
timeout = "5s"
"#;

/// Writes a config dir: `config.toml` and `probes/*.toml`.
fn write(main: &str, probes: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for (name, text) in probes {
        std::fs::write(dir.path().join("probes").join(name), text).unwrap();
    }
    let path = dir.path().join("config.toml");
    (dir, path)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(path: &Path) -> Result<Config, String> {
    Config::load_with_env(path, &no_env).map_err(|e| e.to_string())
}

/// Loads and expects failure whose message contains `file:line:col` and `needle`.
fn expect_error(main: &str, probe: &str, file: &str, line_col: &str, needle: &str) {
    let (dir, path) = write(main, &[("p.toml", probe)]);
    let err = load(&path).expect_err("config should be rejected");
    let location = format!("{}:{line_col}:", dir.path().join(file).display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&location) && l.contains(needle)),
        "expected `{location} …{needle}…` in:\n{err}"
    );
}

#[test]
fn a_valid_config_resolves_defaults_and_probes() {
    let (dir, path) = write(MAIN, &[("p.toml", PROBE)]);
    let config = load(&path).unwrap();
    assert_eq!(config.canary.instance, "test");
    assert_eq!(config.canary.state_dir, dir.path().join(".sms-canary"));
    assert!(matches!(config.gateways["sandbox"], GatewayConfig::Mock(_)));
    let p = &config.probes[0];
    assert_eq!(p.name, "p1");
    assert_eq!(p.threshold.as_secs(), 2);
    assert_eq!(p.retry.attempts, 3);
    assert_eq!(p.retry.factor, 3.0);
    assert_eq!(p.body, "sms-canary {probe} {token}");
    assert!(p.enabled);
}

#[test]
fn the_shipped_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load_with_env(&path, &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config
            .probes
            .iter()
            .any(|p| p.name == "sandbox-roundtrip" && p.enabled)
    );
}

#[test]
fn unknown_key_in_main_file() {
    let main = MAIN.replace(
        "instance = \"test\"",
        "instance = \"test\"\nlisten_adress = \"x\"",
    );
    expect_error(
        &main,
        PROBE,
        "config.toml",
        "4:1",
        "unknown field `listen_adress`",
    );
}

#[test]
fn unknown_key_in_a_gateway() {
    let main = MAIN.replace("latency = \"50ms\"", "latency = \"50ms\"\nlatencyy = 1");
    expect_error(
        &main,
        PROBE,
        "config.toml",
        "8:1",
        "unknown field `latencyy`",
    );
}

#[test]
fn unknown_key_in_a_probe_file() {
    expect_error(
        MAIN,
        &format!("{PROBE}treshold = \"1s\"\n"),
        "probes/p.toml",
        "8:1",
        "unknown field `treshold`",
    );
}

#[test]
fn missing_variable_is_named() {
    let probe = PROBE.replace("to = \"+15005550100\"", "to = \"${CANARY_TO_NUMBER}\"");
    expect_error(
        MAIN,
        &probe,
        "probes/p.toml",
        "5:6",
        "environment variable `CANARY_TO_NUMBER` is not set",
    );
}

#[test]
fn variables_and_defaults_expand_and_comments_are_left_alone() {
    let probe = PROBE.replace(
        "to = \"+15005550100\"",
        "to = \"${TO}\" # ${NOT_EXPANDED}\nenabled = \"${FLAG:-false}\"",
    );
    let (_dir, path) = write(MAIN, &[("p.toml", &probe)]);
    let env = |name: &str| (name == "TO").then(|| "+15005550123".to_string());
    let config = Config::load_with_env(&path, &env).unwrap();
    assert_eq!(config.probes[0].to.as_str(), "+15005550123");
    assert!(!config.probes[0].enabled);
}

#[test]
fn bad_duration() {
    expect_error(
        MAIN,
        &PROBE.replace("\"2s\"", "\"2 parsecs\""),
        "probes/p.toml",
        "6:13",
        "invalid duration \"2 parsecs\"",
    );
}

#[test]
fn bad_phone_number() {
    expect_error(
        MAIN,
        &PROBE.replace("\"+15005550100\"", "\"5005550100\""),
        "probes/p.toml",
        "5:6",
        "must be E.164",
    );
}

#[test]
fn unknown_gateway_reference() {
    expect_error(
        MAIN,
        &PROBE.replace("gateway = \"sandbox\"", "gateway = \"sandbx\""),
        "probes/p.toml",
        "2:11",
        "no gateway named `sandbx` (known: sandbox)",
    );
}

#[test]
fn unknown_receiver_reference() {
    expect_error(
        MAIN,
        &PROBE.replace("receiver = \"inbox\"", "receiver = \"outbox\""),
        "probes/p.toml",
        "3:12",
        "no receiver named `outbox`",
    );
}

#[test]
fn unknown_gateway_kind() {
    expect_error(
        &MAIN.replace("kind = \"mock\"", "kind = \"carrier-pigeon\""),
        PROBE,
        "config.toml",
        "6:8",
        "unknown kind, expected one of: mock, twilio",
    );
}

#[test]
fn missing_gateway_kind() {
    expect_error(
        &MAIN.replace("kind = \"mock\"\n", ""),
        PROBE,
        "config.toml",
        "5:1",
        "missing `kind`",
    );
}

#[test]
fn a_broken_gateway_is_reported_once_not_at_every_reference() {
    let (_dir, path) = write(
        &MAIN.replace("latency = \"50ms\"", "latency = 12"),
        &[("p.toml", PROBE)],
    );
    let err = load(&path).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn threshold_over_timeout() {
    expect_error(
        MAIN,
        &PROBE.replace("threshold = \"2s\"", "threshold = \"9s\""),
        "probes/p.toml",
        "6:13",
        "threshold (9s) exceeds timeout (5s)",
    );
}

#[test]
fn body_without_token() {
    expect_error(
        MAIN,
        &format!("{PROBE}body = \"hello {{probe}}\"\n"),
        "probes/p.toml",
        "8:8",
        "lacks {token}",
    );
}

#[test]
fn zero_retry_attempts() {
    expect_error(
        MAIN,
        &format!("{PROBE}retry = {{ attempts = 0 }}\n"),
        "probes/p.toml",
        "8:9",
        "attempts must be at least 1",
    );
}

#[test]
fn bad_twilio_account_sid() {
    let main = format!(
        "{MAIN}\n[gateways.tw]\nkind = \"twilio\"\naccount_sid = \"XX123\"\nauth_token = \"t\"\n"
    );
    expect_error(&main, PROBE, "config.toml", "15:15", "invalid account_sid");
}

#[test]
fn duplicate_probe_names() {
    let (dir, path) = write(MAIN, &[("a.toml", PROBE), ("b.toml", PROBE)]);
    let err = load(&path).unwrap_err();
    let b = dir.path().join("probes/b.toml");
    assert!(
        err.contains(&format!(
            "{}:1:8: probe `p1` is already defined in",
            b.display()
        )),
        "{err}"
    );
}

#[test]
fn invalid_probe_name() {
    expect_error(
        MAIN,
        &PROBE.replace("\"p1\"", "\"Probe One\""),
        "probes/p.toml",
        "1:8",
        "probe name \"Probe One\"",
    );
}

#[test]
fn toml_syntax_error() {
    expect_error(
        MAIN,
        &PROBE.replace("timeout = \"5s\"", "timeout = \"5s"),
        "probes/p.toml",
        "7:14",
        "invalid basic string",
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let (_dir, path) = write(
        MAIN,
        &[
            (
                "a.toml",
                &PROBE.replace("\"p1\"", "\"a\"").replace("\"2s\"", "\"x\""),
            ),
            ("b.toml", &format!("{PROBE}oops = 1\n")),
        ],
    );
    let err = load(&path).unwrap_err();
    assert!(
        err.contains("a.toml:6:") && err.contains("b.toml:8:"),
        "{err}"
    );
}

#[test]
fn missing_file_is_named() {
    let err = load(Path::new("/nonexistent/sms-canary.toml")).unwrap_err();
    assert!(
        err.contains("/nonexistent/sms-canary.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let main = format!(
        "{MAIN}\n[gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{}\"\nauth_token = \"${{TOKEN}}\"\n",
        "0".repeat(32)
    );
    let (_dir, path) = write(&main, &[("p.toml", PROBE)]);
    let env = |name: &str| (name == "TOKEN").then(|| "tok-very-secret-123".to_string());
    let config = Config::load_with_env(&path, &env).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("tok-very-secret-123"));
    assert!(!debug.contains("mock-auth-token"));
    assert!(
        !debug.contains("+15005550100"),
        "numbers are masked in Debug"
    );
}

#[test]
fn every_gateway_and_receiver_kind_loads() {
    let main = format!(
        "{MAIN}\n[gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{z}\"\nauth_token = \"t\"\n\
         [gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nsignature_method = \"sha256\"\n\
         [gateways.api]\nkind = \"http\"\nurl = \"https://sms.example.com/v1/messages\"\n\
         body = '{{\"to\":\"{{{{to}}}}\"}}'\nmessage_id = \"$.id\"\n\
         permanent = [{{ status = 402 }}, {{ json = \"$.error.code\", equals = \"NO_CREDIT\", reason = \"no credit\" }}]\n\
         [receivers.poll]\nkind = \"twilio-poll\"\ngateway = \"tw\"\ninterval = \"3s\"\n\
         [receivers.own]\nkind = \"http-poll\"\nurl = \"https://sms.example.com/inbound?to={{{{to}}}}\"\nmessages = \"$.messages[*]\"\nbody = \"$.text\"\n",
        z = "0".repeat(32)
    );
    let (_dir, path) = write(&main, &[("p.toml", PROBE)]);
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = config.gateways.values().map(|g| g.kind()).collect();
    assert_eq!(kinds, ["http", "mock", "twilio", "vonage"]);
    let kinds: Vec<&str> = config.receivers.values().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["webhook", "http-poll", "twilio-poll"]);
}

#[test]
fn a_twilio_poll_receiver_needs_a_twilio_account() {
    let main = format!(
        "{MAIN}\n[gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\n\
         [receivers.poll]\nkind = \"twilio-poll\"\ngateway = \"vg\"\n"
    );
    expect_error(
        &main,
        PROBE,
        "config.toml",
        "19:11",
        "gateway `vg` is of kind vonage, which does not fit",
    );
}

#[test]
fn bad_jsonpath_and_empty_rules_are_refused() {
    let http = "\n[gateways.api]\nkind = \"http\"\nurl = \"https://x.example.com\"\n";
    expect_error(
        &format!("{MAIN}{http}message_id = \"$..[\"\n"),
        PROBE,
        "config.toml",
        "16:14",
        "invalid JSONPath",
    );
    expect_error(
        &format!("{MAIN}{http}permanent = [{{ reason = \"x\" }}]\n"),
        PROBE,
        "config.toml",
        "16:13",
        "a rule needs",
    );
}

#[test]
fn bad_schedule_and_unknown_alert_channel() {
    expect_error(
        MAIN,
        &format!("{PROBE}schedule = \"every now and then\"\n"),
        "probes/p.toml",
        "8:12",
        "invalid schedule",
    );
    expect_error(
        MAIN,
        &format!("{PROBE}schedule = \"61 * * * *\"\n"),
        "probes/p.toml",
        "8:12",
        "invalid schedule",
    );
    expect_error(
        MAIN,
        &format!("{PROBE}alerts = [\"pager\"]\n"),
        "probes/p.toml",
        "8:11",
        "no alert channel named `pager`",
    );
}

#[test]
fn alert_channels_load_and_probes_inherit_default_channels() {
    let main = format!(
        "{}\n[alerts.chat]\nkind = \"slack\"\nwebhook_url = \"https://hooks.slack.example/T/B/x\"\n\
         [alerts.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"canary@example.com\"\nto = [\"oncall@example.com\"]\n\
         [alerts.am]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n",
        MAIN.replace("instance = \"test\"", "instance = \"test\"\n\n[defaults]\nalerts = [\"chat\", \"am\"]\nschedule = \"*/2 * * * *\"")
    );
    let (_dir, path) = write(
        &main,
        &[
            ("p.toml", PROBE),
            (
                "q.toml",
                &PROBE
                    .replace("p1", "q1")
                    .replace("threshold", "alerts = [\"mail\"]\nthreshold"),
            ),
        ],
    );
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.alerts.len(), 3);
    assert_eq!(config.probes[0].alerts, ["chat", "am"]);
    assert_eq!(config.probes[1].alerts, ["mail"]);
    assert_eq!(config.probes[0].schedule.runs_per_day(), 720.0);
    assert!(
        !format!("{config:?}").contains("hooks.slack.example"),
        "webhook URLs are secrets"
    );
}
