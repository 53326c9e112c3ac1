//! The binary as users run it: `check` against the in-process mock carrier for
//! each outcome and its exit code, `validate`, and bad input giving UNKNOWN (3).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

/// A config whose mock carrier has one number per outcome.
const MAIN: &str = r#"[canary]
listen = "127.0.0.1:0"
instance = "ci"

[defaults]
timeout = "1s"
threshold = "400ms"

[gateways.sandbox]
kind = "mock"
latency = "50ms"
seed = 7

[gateways.sandbox.numbers."+15005550190"]
latency = "600ms"
[gateways.sandbox.numbers."+15005550191"]
drop = true
[gateways.sandbox.numbers."+15005550192"]
fail = 30003

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

fn probe(name: &str, to: &str) -> String {
    format!(
        "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n"
    )
}

fn setup(probes: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), MAIN).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for (name, to) in probes {
        std::fs::write(
            dir.path().join(format!("probes/{name}.toml")),
            probe(name, to),
        )
        .unwrap();
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_shipped_example_round_trips_ok() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(
        repo,
        &["check", "--listen", "127.0.0.1:0", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let doc = json(&out);
    let run = &doc["runs"][0];
    assert_eq!(run["probe"], "sandbox-roundtrip");
    assert_eq!(run["outcome"], "ok");
    // The example's mock latency is 800ms: measured end to end, never below it.
    let latency = run["latency_ms"].as_f64().unwrap();
    assert!((800.0..3000.0).contains(&latency), "latency {latency}ms");
}

/// A machine without a CA store (a minimal container) still runs the whole
/// offline loop: nothing in it speaks HTTPS, so nothing needs the store. And
/// a gateway configured for HTTPS there fails with a reason, not a panic.
#[test]
fn the_example_round_trips_on_a_machine_without_ca_certificates() {
    // A copy of the example, so that its state (and the probe's lease) is
    // not shared with the other tests that run it.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo.join("config.example.toml"),
        copy.path().join("config.example.toml"),
    )
    .unwrap();
    std::fs::create_dir(copy.path().join("probes")).unwrap();
    for probe in std::fs::read_dir(repo.join("probes")).unwrap() {
        let probe = probe.unwrap().path();
        std::fs::copy(
            &probe,
            copy.path().join("probes").join(probe.file_name().unwrap()),
        )
        .unwrap();
    }
    let empty = tempfile::tempdir().unwrap();
    let no_store = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(copy.path())
            .env("SSL_CERT_FILE", empty.path().join("none.pem"))
            .env("SSL_CERT_DIR", empty.path())
            .output()
            .unwrap()
    };
    let out = no_store(&["check", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("1 probe: 1 ok"), "{}", stdout(&out));

    // HTTPS needs the store: without one, the reason is said up front.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[canary]\nlisten = \"127.0.0.1:0\"\n\n[gateways.twilio]\nkind = \"twilio\"\n\
             account_sid = \"AC{}\"\nauth_token = \"t\"\nbase_url = \"https://127.0.0.1:1\"\n\n\
             [receivers.inbox]\nkind = \"webhook\"\ngateway = \"twilio\"\n",
            "0".repeat(32)
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        probe("p", "+15005550100").replace("sandbox", "twilio"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .current_dir(dir.path())
        .env("SSL_CERT_FILE", empty.path().join("none.pem"))
        .env("SSL_CERT_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}{}", stdout(&out), stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("No CA certificates"), "{said}");
}

#[test]
fn ok_run_prints_outcome_latency_phases_and_correlation_id() {
    let dir = setup(&[("fast", "+15005550100")]);
    let out = run(dir.path(), &["check"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    // First the overall status (a Nagios plugin's line), then the probe's.
    assert!(text.starts_with("OK - 1 probe: 1 ok | "), "{text}");
    let line = text.lines().nth(1).unwrap();
    assert!(line.starts_with("OK "), "{text}");
    assert!(line.contains("fast") && line.contains(" ok "), "{text}");
    assert!(
        line.contains("/ 400ms"),
        "latency against threshold: {text}"
    );
    for phase in ["submit ", "sent ", "delivered ", "received "] {
        assert!(line.contains(phase), "phase {phase} missing: {text}");
    }
    let id = line.rsplit("id ").next().unwrap().trim();
    assert_eq!(id.len(), 26, "a ULID correlation id: {text}");
    assert!(text.contains("OK - 1 probe: 1 ok"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when piped");
    assert!(
        !stderr(&out).contains('⠋'),
        "no spinner when not on a terminal"
    );
}

#[test]
fn slower_than_threshold_is_slow_and_exits_1() {
    let dir = setup(&[("slowpoke", "+15005550190")]);
    let out = run(dir.path(), &["check", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"], "WARNING");
    assert_eq!(doc["runs"][0]["outcome"], "slow");
    assert!(doc["runs"][0]["latency_ms"].as_f64().unwrap() >= 600.0);
}

#[test]
fn a_dropped_message_is_lost_after_the_timeout_and_exits_2() {
    let dir = setup(&[("void", "+15005550191")]);
    let out = run(dir.path(), &["check"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("CRITICAL") && text.contains(" lost "),
        "{text}"
    );
    assert!(text.contains("nothing arrived within 1s"), "{text}");
}

#[test]
fn a_failure_receipt_is_undelivered_with_the_code_explained() {
    let dir = setup(&[("unreachable", "+15005550192")]);
    let out = run(dir.path(), &["check", "--format", "json"]);
    assert_eq!(code(&out), 2);
    let run = &json(&out)["runs"][0];
    assert_eq!(run["outcome"], "undelivered");
    assert_eq!(run["code"], "30003");
    assert!(
        run["reason"].as_str().unwrap().contains("unreachable"),
        "{run}"
    );
}

#[test]
fn a_permanent_gateway_error_is_rejected_with_a_plain_reason() {
    let dir = setup(&[("stopped", "+15005550004")]);
    let out = run(dir.path(), &["check", "--format", "json"]);
    assert_eq!(code(&out), 2);
    let run = &json(&out)["runs"][0];
    assert_eq!(run["outcome"], "rejected");
    assert_eq!(run["code"], "21610");
    assert_eq!(run["attempts"], 1);
    assert!(
        run["reason"].as_str().unwrap().contains("unsubscribed"),
        "{run}"
    );
}

#[test]
fn with_several_probes_the_worst_status_wins() {
    let dir = setup(&[("a-fast", "+15005550100"), ("b-slow", "+15005550190")]);
    let out = run(dir.path(), &["check", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let doc = json(&out);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["exit_code"], 1);
    let outcomes: Vec<&str> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "slow"]);
    // Probes named on the command line run alone.
    let out = run(dir.path(), &["check", "a-fast"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn json_runs_carry_the_documented_fields() {
    let dir = setup(&[("fast", "+15005550100")]);
    let doc = json(&run(dir.path(), &["check", "--format", "json"]));
    assert_eq!(doc["instance"], "ci");
    let run = &doc["runs"][0];
    for field in [
        "probe",
        "gateway",
        "receiver",
        "correlation_id",
        "started_at",
        "outcome",
        "latency_ms",
        "threshold_ms",
        "timeout_ms",
        "phases_ms",
        "message_id",
        "attempts",
        "findings",
    ] {
        assert!(run.get(field).is_some(), "missing {field}: {run}");
    }
    assert!(run["message_id"].as_str().unwrap().starts_with("SM"));
    assert_eq!(run["threshold_ms"], 400.0);
}

#[test]
fn an_unknown_key_exits_3_naming_file_and_line() {
    let dir = setup(&[("fast", "+15005550100")]);
    std::fs::write(
        dir.path().join("probes/fast.toml"),
        probe("fast", "+15005550100") + "treshold = \"1s\"\n",
    )
    .unwrap();
    for cmd in ["check", "validate"] {
        let out = run(dir.path(), &[cmd]);
        assert_eq!(code(&out), 3, "{cmd}");
        let err = stderr(&out);
        assert!(
            err.contains("probes/fast.toml:6:1: unknown field `treshold`"),
            "{cmd}: {err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn a_missing_variable_exits_3_naming_it_and_the_line() {
    let dir = setup(&[("fast", "+15005550100")]);
    let main = MAIN.replace(
        "instance = \"ci\"",
        "instance = \"${CANARY_INSTANCE_NAME}\"",
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    let out = run(dir.path(), &["check"]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out)
            .contains("config.toml:3:12: environment variable `CANARY_INSTANCE_NAME` is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_probes_and_bad_arguments_exit_3() {
    let dir = setup(&[("fast", "+15005550100")]);
    let out = run(dir.path(), &["check", "nope"]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("no probe named `nope` (known: fast)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&run(dir.path(), &["check", "--bogus"])), 3);
    assert_eq!(code(&run(dir.path(), &["check", "--format", "yaml"])), 3);
    assert_eq!(code(&run(dir.path(), &["--help"])), 0);
}

#[test]
fn validate_prints_the_plan_without_secrets_or_full_numbers() {
    let dir = setup(&[("fast", "+15005550100")]);
    let out = run(dir.path(), &["validate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("fast") && text.contains("sandbox (mock)"),
        "{text}"
    );
    assert!(text.contains("/hooks/twilio/inbound/inbox"), "{text}");
    assert!(
        !text.contains("+15005550100") && text.contains("100"),
        "{text}"
    );
    assert!(!text.contains("mock-auth-token"), "{text}");
}

#[test]
fn config_path_comes_from_flag_or_environment() {
    let dir = setup(&[("fast", "+15005550100")]);
    let elsewhere = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let out = run(
        elsewhere.path(),
        &["validate", "--config", path.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = Command::new(BIN)
        .arg("validate")
        .current_dir(elsewhere.path())
        .env("SMS_CANARY_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Kills the child process when the test ends, pass or fail.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_twilio_gateway_round_trips_through_the_standalone_mock_carrier() {
    use std::io::{BufRead, BufReader};
    // The check's webhook port must be known before the mock starts, to tell
    // the mock where the owned number's inbound webhook goes.
    let hooks_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inbound = format!("+15005550100=http://127.0.0.1:{hooks_port}/hooks/twilio/inbound/inbox");
    let mut child = Command::new(BIN)
        .args([
            "mock-carrier",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            "30ms",
            "--owned",
            &inbound,
        ])
        .args(["--auth-token", "standalone-secret-token"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _mock = Reap(child);
    assert!(!line.contains("standalone-secret-token"), "{line}");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the mock prints its URL");

    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[canary]\nlisten = \"127.0.0.1:{hooks_port}\"\n\n[gateways.twilio]\nkind = \"twilio\"\n\
         account_sid = \"AC{zeros}\"\nauth_token = \"${{TWILIO_AUTH_TOKEN}}\"\nbase_url = \"{base}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"twilio\"\n",
        zeros = "0".repeat(32)
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    let probe = probe("via-twilio", "+15005550100").replace("\"sandbox\"", "\"twilio\"");
    std::fs::write(dir.path().join("probes/p.toml"), probe).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "-vv"])
        .current_dir(dir.path())
        .env("TWILIO_AUTH_TOKEN", "standalone-secret-token")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let run = &json(&out)["runs"][0];
    assert_eq!(run["outcome"], "ok");
    assert!(
        run["phases_ms"]["delivered"].as_f64().is_some(),
        "signed status callbacks reached us: {run}"
    );
    // Debug logs of a whole run: neither the token nor a full number may leak.
    let logs = stderr(&out);
    assert!(
        logs.contains(run["correlation_id"].as_str().unwrap()),
        "logs carry the correlation id"
    );
    assert!(
        !logs.contains("standalone-secret-token"),
        "secret leaked into logs"
    );
    assert!(
        !logs.contains("+15005550100") && !logs.contains("+15005550006"),
        "full number in logs:\n{logs}"
    );
}

#[test]
fn a_twilio_poll_receiver_finds_the_message_by_listing() {
    let dir = setup(&[]);
    let main = MAIN.to_string()
        + "\n[receivers.poll]\nkind = \"twilio-poll\"\ngateway = \"sandbox\"\ninterval = \"50ms\"\n";
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    for (name, to) in [("polled", "+15005550100"), ("polled-void", "+15005550191")] {
        let text = probe(name, to).replace("receiver = \"inbox\"", "receiver = \"poll\"");
        std::fs::write(dir.path().join(format!("probes/{name}.toml")), text).unwrap();
    }
    let out = run(dir.path(), &["check", "--format", "json"]);
    let doc = json(&out);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs[0]["outcome"], "ok", "{doc}");
    // Seen by a poll at most one interval after it arrived.
    let latency = runs[0]["latency_ms"].as_f64().unwrap();
    assert!((50.0..2000.0).contains(&latency), "latency {latency}");
    assert_eq!(runs[1]["outcome"], "lost", "{doc}");
    assert_eq!(code(&out), 2);
}

#[test]
fn doctor_passes_on_the_example_and_sends_no_sms() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(repo, &["doctor", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("sandbox (mock)") && text.contains("is active"),
        "{text}"
    );
    assert!(text.contains("all checks passed"), "{text}");
}

#[test]
fn doctor_names_refused_credentials_unreachable_gateways_and_busy_ports() {
    let dir = setup(&[("fast", "+15005550100")]);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    // A mock we start ourselves, so the twilio gateway can be given a wrong token.
    let mut child = Command::new(BIN)
        .args(["mock-carrier", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _mock = Reap(child);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let extra = format!(
        "\n[gateways.wrong-token]\nkind = \"twilio\"\naccount_sid = \"AC{z}\"\nauth_token = \"nope\"\nbase_url = \"{base}\"\n\
         [gateways.right-token]\nkind = \"twilio\"\naccount_sid = \"AC{z}\"\nauth_token = \"mock-auth-token\"\nbase_url = \"{base}\"\n\
         [gateways.nowhere]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nbase_url = \"http://127.0.0.1:1\"\n",
        z = "0".repeat(32)
    );
    let main = MAIN.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{busy_addr}\""),
    ) + &extra;
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    let out = run(dir.path(), &["doctor"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let text = stdout(&out);
    let line_of = |subject: &str| {
        text.lines()
            .find(|l| l.contains(subject))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line_of("wrong-token").contains("FAIL")
            && line_of("wrong-token").contains("authentication failed"),
        "{text}"
    );
    assert!(line_of("right-token").contains(" ok "), "{text}");
    assert!(
        line_of("nowhere").contains("FAIL") && line_of("nowhere").contains("unreachable"),
        "{text}"
    );
    assert!(
        line_of("listener").contains("FAIL") && line_of("listener").contains("cannot bind"),
        "{text}"
    );
    assert!(
        !text.contains("mock-auth-token") && !text.contains("nope"),
        "no secrets in output: {text}"
    );
    drop(busy);
    // Bad config is UNKNOWN, as for every command.
    std::fs::write(dir.path().join("config.toml"), "[canary]\nlisten = 5\n").unwrap();
    assert_eq!(code(&run(dir.path(), &["doctor"])), 3);
}
