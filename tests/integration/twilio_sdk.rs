//! Twilio's official Python SDK against the in-process mock carrier: the
//! claim that "an official SDK pointed at it works unchanged", checked.
//!
//! The interpreter is `SMS_CANARY_TEST_PYTHON` when set (it must have
//! `twilio==9.13.0` installed); otherwise the test builds a venv under the
//! target directory on first run and installs the SDK from PyPI into it. No
//! python3 at all is a test failure, not a skip: this must run in CI.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, NumberConfig};
use tokio::net::TcpListener;

const SDK_VERSION: &str = "9.13.0";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/twilio_sdk.py"
);

/// A Python with Twilio's SDK.
fn python() -> PathBuf {
    let sdk = crate::python::Package {
        pip: "twilio==9.13.0",
        check: "import twilio, sys; sys.exit(twilio.__version__ != '9.13.0')",
    };
    crate::python::with(&format!("twilio-sdk-{SDK_VERSION}"), &[sdk])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_works_unchanged() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();

    let mut config = MockConfig {
        latency: LatencyModel::Fixed(std::time::Duration::from_millis(30)),
        ..MockConfig::default()
    };
    config.numbers.insert(
        "+15005550100".into(),
        NumberConfig {
            owned: true,
            ..Default::default()
        },
    );
    let sid = config.account_sid.clone();
    let token = config.auth_token.expose().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = MockCarrier::start(config, listener).await.unwrap();

    let base_url = mock.base_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .args([&base_url, &sid, &token])
            // The SDK (requests) honours proxy variables; the mock is local.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .output()
            .expect("run the SDK script")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK script failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("SDK script printed no JSON ({e}):\n{stdout}"));
    println!("{result:#}");

    assert_eq!(result["sdk_version"], SDK_VERSION);
    let created = result["created"].as_array().unwrap();
    assert_eq!(created.len(), 5);
    for m in created {
        assert_eq!(m["status"], "queued");
        assert_eq!(m["to"], "+15005550100");
        assert_eq!(m["from"], "+15005550006");
    }
    assert_eq!(result["created_date_is_datetime"], true);

    let fetched = &result["fetched"];
    assert_eq!(fetched["sid"], created[0]["sid"]);
    assert_eq!(fetched["status"], "delivered");
    assert_eq!(fetched["direction"], "outbound-api");
    assert!(fetched["error_code"].is_null());
    assert_eq!(fetched["num_segments"], "1");
    assert_eq!(fetched["date_sent_is_datetime"], true);

    // 5 outbound + 5 inbound copies (the number is owned), none to the other number.
    let listed = result["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 10, "{listed:#?}");
    assert!(listed.iter().all(|m| m["to"] == "+15005550100"));
    let inbound = listed
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    assert_eq!(inbound, 5);
    assert!(
        listed
            .iter()
            .filter(|m| m["direction"] == "inbound")
            .all(|m| m["status"] == "received")
    );
    let unique: HashSet<&str> = listed.iter().filter_map(|m| m["sid"].as_str()).collect();
    assert_eq!(unique.len(), 10);
    assert_eq!(result["list_pages"], 5, "page_size 2 over 10 messages");

    let limited = result["limited"].as_array().unwrap();
    assert_eq!(limited.len(), 3);
    assert_eq!(result["limited_pages"], 2);
    assert_eq!(result["in_future"], 0);

    let errors = &result["errors"];
    assert_eq!(errors["+15005550002"]["code"], 21612);
    assert_eq!(errors["+15005550002"]["status"], 400);
    assert_eq!(errors["+15005550004"]["code"], 21610);
    assert_eq!(errors["auth"]["code"], 20003);
    assert_eq!(errors["auth"]["status"], 401);

    mock.shutdown().await;
}
