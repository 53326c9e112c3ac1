//! `sms-canary drill`, through the real binary: the shipped example keeps the
//! promise in every scenario; configs that page on one failure, cannot absorb
//! a burst or wait out a permanent refusal fail the drill with a reason; the
//! user's own channels and state are left alone unless `--notify` is given.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::capture::Capture;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

fn drill(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("drill")
        .args(args)
        .output()
        .expect("run sms-canary")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn scenario<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scenario"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {doc:#}"))
}

/// A config whose probe talks to a Twilio account nobody can reach: the drill
/// must not need it. Alerts go to `alerts` (a capture server).
fn write_config(
    dir: &Path,
    alerts: SocketAddr,
    failure_threshold: u32,
    attempts: u32,
    on_permanent: bool,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    let main = format!(
        r#"
[canary]
state_dir = "state"
instance = "local"
listen = "127.0.0.1:0"
probes = ["probes/*.toml"]

[defaults]
schedule = "every 1m"
timeout = "8s"
threshold = "2s"
retry = {{ attempts = {attempts}, initial = "500ms", factor = 3.0 }}
failure_threshold = {failure_threshold}
success_threshold = 1
alert_on_permanent = {on_permanent}
alerts = ["oncall"]

[gateways.live]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "not-a-real-token"
base_url = "http://127.0.0.1:9"

[receivers.inbox]
kind = "webhook"
gateway = "live"

[alerts.oncall]
kind = "webhook"
url = "http://{alerts}/alerts"
"#
    );
    std::fs::write(dir.join("config.toml"), main).unwrap();
    std::fs::write(
        dir.join("probes/route.toml"),
        "name = \"route\"\ngateway = \"live\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n",
    )
    .unwrap();
    dir.join("config.toml")
}

async fn drill_async(config: std::path::PathBuf, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        drill(&config, &args)
    })
    .await
    .unwrap()
}

#[test]
fn the_shipped_example_keeps_the_promise_in_every_scenario() {
    let out = drill(Path::new("config.example.toml"), &["--format", "json"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let scenarios = doc["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 12, "{doc:#}");
    assert_eq!(doc["passed"], 12);
    // The example: every 5m, timeout 30s, failure_threshold 2, success_threshold 1.
    let sustained = 2.0 * 300.0 + 30.0;
    for quiet in ["dropped-message", "5xx-burst", "rate-limited"] {
        let s = scenario(&doc, quiet);
        assert_eq!(s["notifications"].as_array().unwrap().len(), 0, "{s:#}");
        assert!(s["outcomes"].as_array().unwrap().len() >= 2, "{s:#}");
    }
    // The burst and the rate limit were met, and healed by the retries.
    assert!(
        scenario(&doc, "5xx-burst")["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o == "ok")
    );
    assert_eq!(scenario(&doc, "dropped-message")["outcomes"][0], "lost");
    for (name, severity, within) in [
        ("slow-carrier", "warning", sustained),
        ("fake-dlr", "critical", sustained),
        ("sustained-outage", "critical", sustained),
        ("receiver-down", "critical", sustained),
        ("no-credit", "critical", 30.0),
        ("unsubscribed", "critical", 30.0),
    ] {
        let s = scenario(&doc, name);
        let fired = &s["notifications"][0];
        assert_eq!(fired["transition"], "firing", "{s:#}");
        assert_eq!(fired["severity"], severity, "{s:#}");
        let t = s["time_to_alert_s"].as_f64().unwrap();
        assert!(t <= within, "{name}: alerted after {t}s, bound {within}s");
        assert!(
            !fired["correlation_ids"].as_array().unwrap().is_empty(),
            "{s:#}"
        );
        assert!(fired["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    // Reasons a person can act on, in the probe's own time.
    let reason = |name: &str| scenario(&doc, name)["notifications"][0]["reason"].clone();
    assert!(reason("no-credit").as_str().unwrap().contains("billing"));
    assert!(reason("unsubscribed").as_str().unwrap().contains("STOP"));
    assert!(reason("fake-dlr").as_str().unwrap().contains("within 30s"));
    assert!(
        reason("slow-carrier")
            .as_str()
            .unwrap()
            .contains("over the 5s threshold")
    );
    assert!(reason("sustained-outage").as_str().unwrap().contains("503"));
    let recovery = scenario(&doc, "recovery");
    let transitions: Vec<&str> = recovery["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["transition"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, ["firing", "resolved"], "{recovery:#}");
    assert!(recovery["time_to_resolve_s"].as_f64().unwrap() <= 300.0 + 30.0);
    // The canary's own failure modes: a spent budget alerts at the first run
    // it stops, and a silence that ends with the alert firing tells it.
    let cost = scenario(&doc, "cost-guard");
    let told = &cost["notifications"][0];
    assert_eq!(
        (told["transition"].as_str(), told["severity"].as_str()),
        (Some("firing"), Some("critical")),
        "{cost:#}"
    );
    assert!(
        told["reason"]
            .as_str()
            .unwrap()
            .contains("cost guard reached: 2 of 2 messages")
    );
    assert_eq!(cost["time_to_alert_s"].as_f64(), Some(0.0), "{cost:#}");
    let silence = scenario(&doc, "silence-ends-while-firing");
    let told: Vec<&str> = silence["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["transition"].as_str().unwrap())
        .collect();
    assert_eq!(told, ["firing"], "{silence:#}");
    assert!(
        silence["time_to_alert_s"].as_f64().unwrap() <= 30.0,
        "{silence:#}"
    );
}

#[test]
fn the_human_table_names_every_scenario_and_the_verdict() {
    let out = drill(
        Path::new("config.example.toml"),
        &["--scenario", "no-credit", "--scenario", "rate-limited"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("RESULT  PROBE"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
            .to_string()
    };
    assert!(line("no-credit").starts_with("PASS"), "{text}");
    assert!(line("no-credit").contains("critical alert ≤ 30s"), "{text}");
    assert!(line("rate-limited").contains("no alert (ok ok)"), "{text}");
    assert!(text.contains("↳ gateway rejected the message: account suspended"));
    assert!(text.contains("2 of 2 scenarios behaved"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_pages_on_one_failure_fails_the_drill_and_says_why() {
    let (capture, alerts) = Capture::start("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), alerts, 1, 1, true);
    let out = drill_async(
        config,
        &[
            "--scenario",
            "dropped-message",
            "--scenario",
            "5xx-burst",
            "--scenario",
            "sustained-outage",
            "--speed",
            "4",
            "--format",
            "json",
        ],
    )
    .await;
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(2), "{doc:#}");
    assert_eq!(doc["failed"], 2, "{doc:#}");
    let dropped = scenario(&doc, "dropped-message");
    assert_eq!(dropped["passed"], false);
    assert!(
        dropped["hint"]
            .as_str()
            .unwrap()
            .contains("failure_threshold = 1")
    );
    let burst = scenario(&doc, "5xx-burst");
    assert_eq!(burst["passed"], false);
    assert!(burst["hint"].as_str().unwrap().contains("retry.attempts"));
    assert_eq!(scenario(&doc, "sustained-outage")["passed"], true);
    // The user's channel and state directory were never touched (the drill
    // has exited, so anything it sent has been answered).
    assert!(capture.received.lock().unwrap().is_empty());
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_out_a_permanent_refusal_fails_and_notify_reaches_the_real_channel() {
    let (capture, alerts) = Capture::start("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), alerts, 2, 3, false);
    let out = drill_async(
        config,
        &[
            "--scenario",
            "no-credit",
            "--speed",
            "4",
            "--notify",
            "--format",
            "json",
        ],
    )
    .await;
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(2), "{doc:#}");
    let refused = scenario(&doc, "no-credit");
    assert!(
        refused["hint"]
            .as_str()
            .unwrap()
            .contains("alert_on_permanent = false"),
        "{refused:#}"
    );
    // It fired on the second run, a minute after the first: too late.
    assert!(refused["time_to_alert_s"].as_f64().unwrap() >= 60.0);
    let got = capture.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got, ["firing"]);
    let n = capture.received.lock().unwrap()[0].clone();
    assert_eq!(n["probe"], "route");
    assert_eq!(
        n["instance"], "local (drill)",
        "a drill must not pass for an outage"
    );
    assert_eq!(n["code"], "30002");
}

#[test]
fn unknown_scenarios_and_probes_exit_3() {
    let out = drill(Path::new("config.example.toml"), &["--scenario", "meteor"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dropped-message"));
    let out = drill(Path::new("config.example.toml"), &["no-such-probe"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-probe"));
    let out = drill(Path::new("config.example.toml"), &["--speed", "0.5"]);
    assert_eq!(out.status.code(), Some(3));
}

/// The drill's mock stands in for any provider: probes on Telnyx and Plivo
/// accounts nobody can reach are drilled like any other, without them.
#[test]
fn telnyx_and_plivo_probes_are_drilled_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        r#"
[canary]
state_dir = "state"
listen = "127.0.0.1:0"

[defaults]
schedule = "every 1m"
timeout = "8s"
threshold = "2s"
failure_threshold = 2
alerts = []

[gateways.tx]
kind = "telnyx"
api_key = "not-a-real-key"
public_key = "DwfOtQn4P2wYiIZ4xG50Tj04t8zyFxMAi5fNJBMREhs="
base_url = "http://127.0.0.1:9/v2"

[gateways.pl]
kind = "plivo"
auth_id = "MAXXXXXXXXXXXXXXXXXX"
auth_token = "not-a-real-token"
base_url = "http://127.0.0.1:9"

[receivers.tx-inbox]
kind = "webhook"
gateway = "tx"

[receivers.pl-inbox]
kind = "webhook"
gateway = "pl"
"#,
    )
    .unwrap();
    for (name, gateway) in [("via-telnyx", "tx"), ("via-plivo", "pl")] {
        std::fs::write(
            dir.path().join(format!("probes/{name}.toml")),
            format!(
                "name = \"{name}\"\ngateway = \"{gateway}\"\nreceiver = \"{gateway}-inbox\"\n\
                 from = \"+15005550006\"\nto = \"+15005550100\"\nalerts = []\n"
            ),
        )
        .unwrap();
    }
    let out = drill(
        &dir.path().join("config.toml"),
        &[
            "--format",
            "json",
            "--scenario",
            "sustained-outage",
            "--scenario",
            "5xx-burst",
            "--scenario",
            "unsubscribed",
            "--speed",
            "8",
        ],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let probes: std::collections::BTreeSet<&str> = doc["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["probe"].as_str().unwrap())
        .collect();
    assert_eq!(
        probes,
        ["via-plivo", "via-telnyx"].into_iter().collect(),
        "{doc:#}"
    );
    assert_eq!(doc["passed"], 6, "{doc:#}");
}
