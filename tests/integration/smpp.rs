//! SMPP through the real binaries: `sms-canary mock-carrier --smpp-listen`
//! as the SMSC and `sms-canary check --format json` binding to it as a
//! transceiver, one probe per outcome (ok, slow, lost, undelivered,
//! rejected) over one shared bind; the receipt and the inbound message
//! both come back as `deliver_sm` on that bind. `doctor` binds and unbinds,
//! and names a refused password.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

/// Kills the mock when the test ends, pass or fail.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the standalone mock with SMPP on a free port; returns its SMPP address.
fn start_mock(extra: &[&str]) -> (Reap, String) {
    let mut child = Command::new(BIN)
        .args([
            "mock-carrier",
            "--listen",
            "127.0.0.1:0",
            "--smpp-listen",
            "127.0.0.1:0",
            "--smpp-system-id",
            "canary",
            "--smpp-password",
            "s3cret",
            "--latency",
            "300ms",
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    for _ in 0..5 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.contains("SMPP listening on") {
            addr = line.split_whitespace().last().map(str::to_string);
            break;
        }
    }
    let addr = addr.expect("the mock announces its SMPP address");
    (Reap(child), addr)
}

fn write_config(dir: &Path, smpp: &str, password: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[canary]\nstate_dir = \".state\"\nlisten = \"127.0.0.1:0\"\nprobes = [\"probes/*.toml\"]\n\
             [gateways.smsc]\nkind = \"smpp\"\naddress = \"{smpp}\"\nsystem_id = \"canary\"\npassword = \"{password}\"\n\
             [receivers.bind]\nkind = \"smpp\"\ngateway = \"smsc\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    for (name, to, threshold) in [
        ("ok", "+15005550100", "2s"),
        ("slow", "+15005550101", "100ms"),
        ("lost", "+15005550102", "2s"),
        ("undelivered", "+15005550103", "2s"),
        ("rejected", "+15005550001", "2s"),
    ] {
        std::fs::write(
            dir.join(format!("probes/{name}.toml")),
            format!(
                "name = \"{name}\"\ngateway = \"smsc\"\nreceiver = \"bind\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n\
                 timeout = \"3s\"\nthreshold = \"{threshold}\"\nalerts = []\n"
            ),
        )
        .unwrap();
    }
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SMS_CANARY_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn every_outcome_round_trips_over_smpp_through_the_binaries() {
    let (_mock, smpp) = start_mock(&[
        "--owned",
        "+15005550100",
        "--owned",
        "+15005550101",
        "--drop",
        "+15005550102",
        "--fail",
        "+15005550103=30003",
    ]);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &smpp, "s3cret");
    let out = run(dir.path(), &["check", "--all", "--format", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{text}");
    let run = |name: &str| {
        doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == name)
            .unwrap_or_else(|| panic!("{name} did not run: {text}"))
            .clone()
    };
    assert_eq!(run("ok")["outcome"], "ok", "{text}");
    let latency = run("ok")["latency_ms"].as_f64().unwrap();
    assert!((300.0..3000.0).contains(&latency), "latency {latency}ms");
    assert_eq!(run("slow")["outcome"], "slow", "{text}");
    assert_eq!(run("lost")["outcome"], "lost", "{text}");
    let undelivered = run("undelivered");
    assert_eq!(undelivered["outcome"], "undelivered", "{text}");
    assert_eq!(undelivered["code"], "UNDELIV err:30003", "{text}");
    let rejected = run("rejected");
    assert_eq!(rejected["outcome"], "rejected", "{text}");
    assert_eq!(rejected["code"], "ESME_RINVDSTADR", "{text}");
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("destination address (to) is invalid"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "the password never shows");
}

#[test]
fn doctor_binds_and_unbinds_and_names_a_refused_password() {
    let (_mock, smpp) = start_mock(&[]);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &smpp, "s3cret");
    let out = run(dir.path(), &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("smsc"))
        .unwrap_or_default();
    assert!(
        line.contains("bound as transceiver") && line.contains("and unbound"),
        "{text}"
    );

    write_config(dir.path(), &smpp, "wrong");
    let out = run(dir.path(), &["doctor"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("smsc"))
        .unwrap_or_default();
    assert!(
        line.contains("FAIL") && line.contains("ESME_RINVPASWD"),
        "{text}"
    );
    assert!(!text.contains("wrong\""), "{text}");
}
