//! `check --junit PATH` as a CI job uses it: one probe per outcome against the
//! in-process mock carrier, the XML read back with an independent parser, the
//! file present when the check fails, and an unwritable path exiting 3.

use std::path::Path;
use std::process::{Command, Output};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

/// The instance name carries every XML special character: it ends up in each
/// testcase's `classname` attribute.
const INSTANCE: &str = r#"ci <&"'> x"#;

const MAIN: &str = r#"[canary]
listen = "127.0.0.1:0"
instance = "ci <&\"'> x"

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

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

/// ok, slow, lost, and rejected (Twilio's magic "unsubscribed" number).
const PROBES: [(&str, &str); 4] = [
    ("a-ok", "+15005550100"),
    ("b-slow", "+15005550190"),
    ("c-lost", "+15005550191"),
    ("d-rejected", "+15005550004"),
];

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), MAIN).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for (name, to) in PROBES {
        let probe = format!(
            "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n"
        );
        std::fs::write(dir.path().join(format!("probes/{name}.toml")), probe).unwrap();
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

/// One `<testcase>` as read back from the file.
#[derive(Debug, Default)]
struct Case {
    name: String,
    classname: String,
    time: f64,
    /// `failure` or `error`, with its type, message and body.
    problem: Option<(String, String, String, String)>,
    system_out: String,
}

#[derive(Debug, Default)]
struct Suite {
    name: String,
    tests: usize,
    failures: usize,
    errors: usize,
    cases: Vec<Case>,
}

fn attr(tag: &BytesStart, name: &str) -> String {
    tag.try_get_attribute(name)
        .unwrap()
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                .unwrap()
                .into_owned()
        })
        .unwrap_or_default()
}

/// A small reader for the JUnit subset we write.
fn parse(xml: &str) -> Suite {
    let mut reader = Reader::from_str(xml);
    let mut suite = Suite::default();
    let mut text = String::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(tag) | Event::Empty(tag) => {
                text.clear();
                match tag.name().as_ref() {
                    b"testsuite" => {
                        suite.name = attr(&tag, "name");
                        suite.tests = attr(&tag, "tests").parse().unwrap();
                        suite.failures = attr(&tag, "failures").parse().unwrap();
                        suite.errors = attr(&tag, "errors").parse().unwrap();
                    }
                    b"testcase" => suite.cases.push(Case {
                        name: attr(&tag, "name"),
                        classname: attr(&tag, "classname"),
                        time: attr(&tag, "time").parse().unwrap(),
                        ..Case::default()
                    }),
                    kind @ (b"failure" | b"error") => {
                        suite.cases.last_mut().unwrap().problem = Some((
                            String::from_utf8(kind.to_vec()).unwrap(),
                            attr(&tag, "type"),
                            attr(&tag, "message"),
                            String::new(),
                        ));
                    }
                    _ => {}
                }
            }
            Event::Text(t) => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap();
                text.push_str(match name.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                });
            }
            Event::End(tag) => {
                let case = suite.cases.last_mut();
                match (tag.name().as_ref(), case) {
                    (b"failure" | b"error", Some(case)) => {
                        if let Some(p) = case.problem.as_mut() {
                            p.3 = text.clone();
                        }
                    }
                    (b"system-out", Some(case)) => case.system_out = text.clone(),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    suite
}

#[test]
fn each_outcome_becomes_a_testcase_and_the_file_is_there_when_the_check_fails() {
    let dir = setup();
    let out = run(
        dir.path(),
        &[
            "check",
            "--no-state",
            "--format",
            "json",
            "--junit",
            "out.xml",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let xml = std::fs::read_to_string(dir.path().join("out.xml")).expect("written on exit 2");
    assert!(
        !dir.path().join("out.xml.tmp").exists(),
        "temporary file renamed away"
    );
    assert!(xml.starts_with("<?xml"), "{xml}");
    // Raw escaping: the instance's specials never appear unescaped in an attribute.
    assert!(xml.contains("&lt;&amp;&quot;&apos;&gt;"), "{xml}");

    let suite = parse(&xml);
    assert_eq!(suite.name, "sms-canary");
    assert_eq!(
        (suite.tests, suite.failures, suite.errors),
        (4, 3, 0),
        "{xml}"
    );
    let names: Vec<&str> = suite.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a-ok", "b-slow", "c-lost", "d-rejected"]);

    for (case, run) in suite.cases.iter().zip(doc["runs"].as_array().unwrap()) {
        let id = run["correlation_id"].as_str().unwrap();
        assert_eq!(case.classname, format!("sms-canary.{INSTANCE}"));
        assert!(
            case.system_out.contains(id),
            "{}: {}",
            case.name,
            case.system_out
        );
        let outcome = run["outcome"].as_str().unwrap();
        if outcome == "ok" {
            assert!(case.problem.is_none(), "{case:?}");
            let latency = run["latency_ms"].as_f64().unwrap() / 1e3;
            assert!((case.time - latency).abs() < 0.002, "{case:?} vs {run}");
            continue;
        }
        let (kind, ty, message, body) = case.problem.as_ref().expect("a failure");
        assert_eq!(
            (kind.as_str(), ty.as_str()),
            ("failure", outcome),
            "{case:?}"
        );
        let reason = run["reason"].as_str().unwrap();
        assert!(
            message.contains(reason),
            "{}: {message} lacks {reason}",
            case.name
        );
        assert!(body.contains(id), "{}: body {body}", case.name);
        assert!(body.contains("gateway: sandbox"), "{body}");
        assert!(body.contains("phases: "), "{body}");
        if let Some(code) = run["code"].as_str() {
            assert!(message.contains(&format!("(code {code})")), "{message}");
        }
    }
    let slow = &suite.cases[1];
    let (_, _, message, _) = slow.problem.as_ref().unwrap();
    assert!(message.starts_with("WARNING"), "{message}");
    assert!(slow.time >= 0.6, "{slow:?}");
    let lost = &suite.cases[2];
    assert!(
        (lost.time - 1.0).abs() < 1e-9,
        "waited the timeout: {lost:?}"
    );
    let (_, _, message, body) = suite.cases[3].problem.as_ref().unwrap();
    assert!(message.contains("(code 21610)"), "{message}");
    assert!(body.contains("attempts: 1"), "{body}");
}

#[test]
fn a_report_replaces_the_previous_one() {
    let dir = setup();
    std::fs::write(dir.path().join("old.xml"), "stale").unwrap();
    let out = run(
        dir.path(),
        &["check", "a-ok", "--no-state", "--junit", "old.xml"],
    );
    assert_eq!(out.status.code(), Some(0));
    let suite = parse(&std::fs::read_to_string(dir.path().join("old.xml")).unwrap());
    assert_eq!(
        (suite.tests, suite.failures, suite.errors),
        (1, 0, 0),
        "{suite:?}"
    );
}

/// The exit code is the probes' verdict: a report that cannot be written is
/// said on stderr (and in the JSON's `outputs`), never folded into it.
#[test]
fn an_unwritable_path_is_reported_without_changing_the_verdict() {
    let dir = setup();
    let path = dir.path().join("no-such-dir").join("out.xml");
    let out = run(
        dir.path(),
        &[
            "check",
            "a-ok",
            "--no-state",
            "--junit",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "WARNING: the junit output was not written: cannot write the JUnit report to {}",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK - 1 probe"),
        "the results are still shown"
    );
    // A directory is not a file either; the JSON says so beside the verdict.
    let out = run(
        dir.path(),
        &[
            "check",
            "a-ok",
            "--no-state",
            "--junit",
            "probes",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("probes"));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["status"].as_str(), doc["exit_code"].as_u64()),
        (Some("OK"), Some(0))
    );
    assert_eq!(doc["outputs"][0]["kind"], "junit");
    assert_eq!(doc["outputs"][0]["target"], "probes");
    assert!(
        doc["outputs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot write"),
        "{doc}"
    );
}
