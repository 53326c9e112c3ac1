//! Every error class through the real mock carrier over HTTP, via `check`:
//! transient bursts that heal within the retry budget and ones that outlast it,
//! Retry-After, every permanent code failing on the first attempt, receipts
//! ending runs early, duplicates and fake receipts.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Fast retries (20ms, then 60ms) so bursts heal quickly.
const MAIN: &str = r#"[canary]
listen = "127.0.0.1:0"

[defaults]
timeout = "3s"
threshold = "1s"
retry = { attempts = 3, initial = "20ms", factor = 3.0 }

[gateways.sandbox]
kind = "mock"
latency = "30ms"
seed = 11

[gateways.sandbox.numbers."+15005550150"]
duplicates = 2
[gateways.sandbox.numbers."+15005550151"]
fake_dlr = true
[gateways.sandbox.numbers."+15005550152"]
fail = 30005

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

fn check(faults: &str, probes: &[(&str, &str, &str)]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let main = format!("{MAIN}\n[gateways.sandbox.faults]\n{faults}\n");
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    for (name, from, to) in probes {
        let text = format!(
            "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"{from}\"\nto = \"{to}\"\n"
        );
        std::fs::write(dir.path().join(format!("probes/{name}.toml")), text).unwrap();
    }
    run(dir.path())
}

fn run(dir: &Path) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["check", "--format", "json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, doc)
}

const FROM: &str = "+15005550006";
const TO: &str = "+15005550100";

#[test]
fn a_5xx_burst_shorter_than_the_retry_budget_heals_silently() {
    let (out, doc) = check("errors = { status = 503, count = 2 }", &[("p", FROM, TO)]);
    let run = &doc["runs"][0];
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["attempts"], 3);
    let retried = run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "retried")
        .expect("retried finding");
    assert_eq!(retried["errors"].as_array().unwrap().len(), 2);
}

#[test]
fn a_5xx_burst_longer_than_the_retry_budget_is_an_error() {
    let (out, doc) = check("errors = { status = 500, count = 10 }", &[("p", FROM, TO)]);
    let run = &doc["runs"][0];
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(run["outcome"], "error");
    assert_eq!(run["attempts"], 3);
    assert!(
        run["reason"].as_str().unwrap().contains("3 attempts"),
        "{run}"
    );
}

#[test]
fn retry_after_is_honoured() {
    // The mock says Retry-After: 1 (whole seconds), more than the 20ms backoff.
    let started = std::time::Instant::now();
    let (out, doc) = check(
        "rate_limit = { count = 1, retry_after = \"1s\" }",
        &[("p", FROM, TO)],
    );
    assert_eq!(out.status.code(), Some(0), "{doc}");
    assert_eq!(doc["runs"][0]["attempts"], 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the second attempt waited for Retry-After"
    );
}

#[test]
fn every_permanent_code_is_rejected_on_the_first_attempt() {
    let cases = [
        ("to-invalid", FROM, "+15005550001", "21211"),
        ("to-unroutable", FROM, "+15005550002", "21612"),
        ("to-no-permission", FROM, "+15005550003", "21408"),
        ("to-unsubscribed", FROM, "+15005550004", "21610"),
        ("to-not-capable", FROM, "+15005550009", "21614"),
        ("from-invalid", "+15005550001", TO, "21212"),
        ("from-not-owned", "+15005550007", TO, "21606"),
    ];
    let probes: Vec<(&str, &str, &str)> = cases.iter().map(|(n, f, t, _)| (*n, *f, *t)).collect();
    let (out, doc) = check("", &probes);
    assert_eq!(out.status.code(), Some(2));
    for (name, _, _, code) in cases {
        let run = doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == name)
            .unwrap();
        assert_eq!(run["outcome"], "rejected", "{run}");
        assert_eq!(run["code"], code, "{run}");
        assert_eq!(run["attempts"], 1, "{run}");
        assert!(
            run["reason"].as_str().unwrap().len() > 30,
            "a reason in words: {run}"
        );
    }
}

#[test]
fn an_injected_provider_code_is_rejected_with_its_reason() {
    let (_, doc) = check(
        "error_code = { code = 21610, count = 0 }",
        &[("p", FROM, TO)],
    );
    let run = &doc["runs"][0];
    assert_eq!(run["outcome"], "rejected");
    assert_eq!(run["code"], "21610");
    assert!(
        run["reason"].as_str().unwrap().contains("unsubscribed"),
        "{run}"
    );
}

#[test]
fn a_failure_receipt_ends_the_run_before_its_timeout() {
    let (_, doc) = check("", &[("p", FROM, "+15005550152")]);
    let run = &doc["runs"][0];
    // `lost` would have meant waiting the whole timeout.
    assert_eq!(run["outcome"], "undelivered", "{run}");
    assert_eq!(run["code"], "30005");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("unknown destination handset"),
        "{run}"
    );
}

#[test]
fn duplicates_are_ignored_and_counted() {
    let (out, doc) = check("", &[("p", FROM, "+15005550150")]);
    let run = &doc["runs"][0];
    assert_eq!(out.status.code(), Some(0), "{run}");
    // Copies that come while the run is deciding are counted on it; ones that
    // come after it ended (a loaded machine) are counted as late, never as
    // strangers and never as the run's arrival.
    let on_run = run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "duplicates")
        .map_or(0, |d| d["count"].as_u64().unwrap());
    let late = doc["late_arrivals"].as_u64().unwrap();
    assert_eq!(doc["strangers"], 0, "{doc}");
    assert!(on_run + late >= 1, "{doc}");
}

#[test]
fn a_fake_delivery_receipt_is_reported_on_the_lost_run() {
    let (_, doc) = check("", &[("p", FROM, "+15005550151")]);
    let run = &doc["runs"][0];
    assert_eq!(run["outcome"], "lost");
    assert!(
        run["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "fake_dlr"),
        "{run}"
    );
    assert!(run["reason"].as_str().unwrap().contains("fake DLR"));
}

#[test]
fn an_outage_longer_than_the_run_is_an_error_not_a_hang() {
    let (out, doc) = check("outage = { for = \"1h\" }", &[("p", FROM, TO)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(doc["runs"][0]["outcome"], "error");
}

/// Messages to the receiving number that belong to no run (a person texting
/// it, an old probe's message) are ignored and counted, and do not satisfy the
/// run that is waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_ignored_and_counted() {
    use std::sync::Arc;

    use sms_canary::config::{Config, GatewayConfig};
    use sms_canary::probe::{self, Outcome, Wiring};
    use sms_canary::providers as mock;
    use sms_canary::receiver::Inbox;
    use sms_canary::receiver::webhook::{Hooks, router};

    let dir = tempfile::tempdir().unwrap();
    let main = MAIN.replace("latency = \"30ms\"", "latency = \"300ms\"");
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        format!("name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"{FROM}\"\nto = \"{TO}\"\n"),
    )
    .unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).unwrap();
    let probe = config.probes[0].clone();
    let inbox = Inbox::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let hooks = Hooks::new(&config, Arc::clone(&inbox), public.clone());
    tokio::spawn(axum::serve(listener, router(Arc::clone(&hooks))).into_future());
    let GatewayConfig::Mock(m) = &config.gateways["sandbox"] else {
        unreachable!()
    };
    let inbound = [(
        TO.to_string(),
        Some(hooks.url_for("/hooks/twilio/inbound/inbox")),
    )];
    let started = mock::start_mock(
        "sandbox",
        m,
        inbound,
        &mock::Links {
            inbox: &inbox,
            receivers: &config.receivers,
        },
    )
    .await
    .unwrap();

    // Strangers text the receiving number through the same carrier just before
    // the run: their messages land while it waits, before its own.
    let base = started.carrier.base_url();
    {
        let client = reqwest::Client::new();
        for body in [
            "hi, is this the support line?",
            "sms-canary p 0000000000",
            "STOP",
        ] {
            client
                .post(format!(
                    "{base}/2010-04-01/Accounts/AC{}/Messages.json",
                    "0".repeat(32)
                ))
                .basic_auth(format!("AC{}", "0".repeat(32)), Some("mock-auth-token"))
                .form(&[("To", TO), ("From", "+15005550111"), ("Body", body)])
                .send()
                .await
                .unwrap();
        }
    }
    let wiring = Wiring {
        gateway: started.gateway.as_ref(),
        inbox: &inbox,
        callback_base: Some(&public),
        poller: None,
    };
    let result = probe::run(&probe, wiring).await;
    assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
    // A stranger taken for the run's message would show as a shorter latency.
    assert!(
        result.latency.unwrap() >= std::time::Duration::from_millis(300),
        "{result:?}"
    );
    // Each stranger's webhook is its own delivery, 300 ms after it was
    // sent like the run's own: on a loaded machine one may land after the
    // run ended, so wait for all three rather than assume their order.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while inbox.strangers() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(inbox.strangers(), 3);
    started.carrier.shutdown().await;
}
