//! Config loading through the library: what a valid config resolves to, and
//! how errors are gathered. One fixture per invalid-config rule lives in
//! `tests/fixtures/bad-config/` (see `bad_config.rs`).

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
fn a_broken_gateway_is_reported_once_not_at_every_reference() {
    let (_dir, path) = write(
        &MAIN.replace("latency = \"50ms\"", "latency = 12"),
        &[("p.toml", PROBE)],
    );
    let err = load(&path).unwrap_err();
    assert_eq!(err.lines().count(), 1, "{err}");
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
