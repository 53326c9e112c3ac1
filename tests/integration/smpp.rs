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
    write_config_with(
        dir,
        &format!(
            "[gateways.smsc]\nkind = \"smpp\"\naddress = \"{smpp}\"\nsystem_id = \"canary\"\npassword = \"{password}\"\n"
        ),
    );
}

/// The config with gateway `smsc` as `gateway` says, and a probe per outcome.
fn write_config_with(dir: &Path, gateway: &str) {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[canary]\nstate_dir = \".state\"\nlisten = \"127.0.0.1:0\"\nprobes = [\"probes/*.toml\"]\n\
             {gateway}[receivers.bind]\nkind = \"smpp\"\ngateway = \"smsc\"\n"
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
fn the_in_process_mock_speaks_smpp_for_every_outcome() {
    let dir = tempfile::tempdir().unwrap();
    write_config_with(
        dir.path(),
        "[gateways.smsc]\nkind = \"mock\"\napi = \"smpp\"\nlatency = \"50ms\"\n\
         [gateways.smsc.numbers.\"+15005550101\"]\nlatency = \"400ms\"\n\
         [gateways.smsc.numbers.\"+15005550102\"]\ndrop = true\n\
         [gateways.smsc.numbers.\"+15005550103\"]\nfail = 30003\n",
    );
    let out = run(dir.path(), &["check", "--all", "--format", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let outcome = |name: &str| {
        doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == name)
            .map(|r| (r["outcome"].clone(), r["code"].clone()))
            .unwrap_or_else(|| panic!("{name} did not run: {text}"))
    };
    assert_eq!(outcome("ok").0, "ok", "{text}");
    assert_eq!(outcome("slow").0, "slow", "{text}");
    assert_eq!(outcome("lost").0, "lost", "{text}");
    assert_eq!(
        outcome("undelivered"),
        ("undelivered".into(), "UNDELIV err:30003".into()),
        "{text}"
    );
    assert_eq!(
        outcome("rejected"),
        ("rejected".into(), "ESME_RINVDSTADR".into()),
        "{text}"
    );

    // A webhook receiver cannot take what arrives on a bind.
    std::fs::write(
        dir.path().join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\nprobes = [\"probes/*.toml\"]\n\
         [gateways.smsc]\nkind = \"mock\"\napi = \"smpp\"\n[receivers.bind]\nkind = \"webhook\"\ngateway = \"smsc\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(3));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("receiver `bind`") || text.contains("bind"),
        "{text}"
    );
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

/// A Python with smpplib, the SMPP client from PyPI.
fn python() -> std::path::PathBuf {
    crate::python::with(
        "smpplib",
        &[crate::python::Package {
            pip: "smpplib==2.2.4",
            check: "import sys; from importlib.metadata import version; sys.exit(version('smpplib') != '2.2.4')",
        }],
    )
}

#[test]
fn smpplib_binds_to_the_mock_smsc_submits_every_coding_and_gets_each_receipt() {
    let python = python();
    let (_mock, smpp) = start_mock(&[]);
    let (host, port) = smpp.rsplit_once(':').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/smpp_peer.py");
    let out = Command::new(python)
        .arg(script)
        .args([host, port, "canary", "s3cret"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let parts = doc["parts"].as_u64().unwrap();
    // GSM-7 and UCS-2 in one part each; 216 characters take two or more.
    assert!(parts >= 4, "{doc}");
    let sent: Vec<&str> = doc["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(sent.len() as u64, parts);
    let receipts = doc["receipts"].as_array().unwrap();
    assert_eq!(receipts.len() as u64, parts, "{doc}");
    for r in receipts {
        assert_eq!(r["esm_class"].as_u64(), Some(4), "a receipt: {r}");
        let id = r["id"].as_str().unwrap();
        assert!(sent.contains(&id), "receipt for {id}, sent {sent:?}");
        let text = r["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("id:{id} ")) && text.contains("stat:DELIVRD"),
            "{text}"
        );
    }
}

/// Perl with Net::SMPP, or why not.
fn net_smpp() -> Result<(), String> {
    let out = Command::new("perl")
        .args(["-MNet::SMPP", "-e1"])
        .output()
        .map_err(|e| format!("cannot run perl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err("perl cannot load Net::SMPP".into())
    }
}

/// Starts the Net::SMPP SMSC of `smpp_smsc.pl`; returns it and its address.
fn start_perl_smsc(password: &str) -> (Reap, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/smpp_smsc.pl");
    let mut child = Command::new("perl")
        .arg(script)
        .arg(password)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .expect("the SMSC says its port");
    (Reap(child), format!("127.0.0.1:{port}"))
}

#[test]
fn our_client_round_trips_through_a_net_smpp_smsc() {
    if crate::peers::require("Net::SMPP", net_smpp()).is_none() {
        return;
    }
    let (mut smsc, addr) = start_perl_smsc("s3cret");
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &addr, "s3cret");
    let out = run(dir.path(), &["check", "ok", "--format", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok = &doc["runs"][0];
    assert_eq!(ok["outcome"], "ok", "{text}");
    assert_eq!(ok["message_id"], "perl0001", "{text}");
    // The receipt came back on the bind: its phase is measured.
    assert!(text.contains("delivered"), "{text}");
    // And the check unbound before it exited.
    let status = (0..50)
        .find_map(|_| {
            let status = smsc.0.try_wait().unwrap();
            if status.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            status
        })
        .expect("the SMSC ends with its connection");
    assert_eq!(status.code(), Some(0), "the client unbinds before it exits");

    let (_smsc, addr) = start_perl_smsc("s3cret");
    write_config(dir.path(), &addr, "wrong");
    let out = run(dir.path(), &["check", "ok", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["runs"][0]["outcome"], "rejected", "{doc}");
    assert_eq!(doc["runs"][0]["code"], "ESME_RINVPASWD", "{doc}");
}
