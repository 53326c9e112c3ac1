//! The official Python SDKs of Telnyx, Plivo and Vonage (v4), and the
//! official Python client of SMS Gateway for Android (4.x), against the
//! in-process mock carrier: each sends through it unchanged (its base URL
//! pointed at the mock), and Telnyx's and Plivo's own webhook helpers accept
//! the callbacks the mock signed, and refuse them tampered.
//!
//! The interpreter is `SMS_CANARY_TEST_PYTHON` when set (CI's venv, with
//! the packages below); otherwise a venv under the target dir, built once
//! with pip. Like the Twilio SDK test, this runs in CI and never skips.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, NumberConfig};
use sms_canary::providers::MockAccounts;
use sms_canary::providers::vonage::mock::Account as VonageAccount;
use sms_canary::providers::vonage::signature::SignatureMethod;
use sms_canary::redact::Secret;

const TELNYX: &str = "4.189.0";
const PLIVO: &str = "4.63.0";
const VONAGE: &str = "4.9.1";
const ANDROID: &str = "4.3.3";
const OWNED: &str = "+15005550100";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/integration/{name}"))
}

/// A Python with the three SDKs, in the versions above.
fn python() -> PathBuf {
    let packages = [
        crate::python::Package {
            pip: "telnyx[webhooks]==4.189.0",
            check: "import nacl, sys; from importlib.metadata import version; sys.exit(version('telnyx') != '4.189.0')",
        },
        crate::python::Package {
            pip: "plivo==4.63.0",
            check: "import sys; from importlib.metadata import version; sys.exit(version('plivo') != '4.63.0')",
        },
        crate::python::Package {
            pip: "vonage==4.9.1",
            check: "import sys; from importlib.metadata import version; sys.exit(version('vonage') != '4.9.1')",
        },
    ];
    crate::python::with("provider-sdks", &packages)
}

/// A Python with the app's official client, in the version above.
fn android_python() -> PathBuf {
    let packages = [crate::python::Package {
        pip: "android-sms-gateway[requests]==4.3.3",
        check: "import requests, sys; from importlib.metadata import version; sys.exit(version('android-sms-gateway') != '4.3.3')",
    }];
    crate::python::with("android-sdk", &packages)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `script` with `args`; its last line of output, as JSON.
async fn run(python: PathBuf, script: PathBuf, args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            // The SDKs honour proxy variables; the mock is local.
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
    result
}

/// A mock whose number `OWNED` posts its inbound messages to `capture`.
async fn mock(capture: u16, accounts: MockAccounts) -> sms_canary::mock_carrier::MockHandle {
    let mut config = MockConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(30)),
        accounts,
        ..MockConfig::default()
    };
    config.numbers.insert(
        OWNED.into(),
        NumberConfig {
            owned: true,
            inbound_url: Some(format!("http://127.0.0.1:{capture}/inbound")),
            ..NumberConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockCarrier::start(config, listener).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_sdk_sends_and_its_webhook_helper_accepts_the_mocks_signatures() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let capture = free_port();
    let mock = mock(capture, MockAccounts::default()).await;
    let public_key = mock.accounts().telnyx.signing.public_key().to_base64();
    let result = run(
        python,
        script("telnyx_sdk.py"),
        vec![
            format!("{}/v2", mock.base_url()),
            mock.accounts().telnyx.api_key.expose().to_string(),
            public_key,
            capture.to_string(),
        ],
    )
    .await;
    assert_eq!(result["sdk_version"], TELNYX);
    assert_eq!(result["sent"]["to_status"], "queued");
    let events = result["events"].as_array().unwrap();
    let mut kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["message.finalized", "message.received", "message.sent"],
        "every event the mock posted was unwrapped by the SDK"
    );
    assert!(events.iter().all(|e| e["tampered_refused"] == true));
    let finalized = events
        .iter()
        .find(|e| e["event_type"] == "message.finalized")
        .unwrap();
    assert_eq!(finalized["to_status"], "delivered");
    assert_eq!(finalized["message_id"], result["sent"]["id"]);
    assert_eq!(result["retrieved_status"], "delivered");
    assert_eq!(result["balance"], "300.00");
    assert_eq!(result["errors"]["stop"]["code"], "40300");
    assert_eq!(result["errors"]["auth"]["status"], 401);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plivo_sdk_sends_and_its_signature_helpers_accept_the_mocks_callbacks() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let capture = free_port();
    let mock = mock(capture, MockAccounts::default()).await;
    let account = &mock.accounts().plivo;
    let result = run(
        python,
        script("plivo_sdk.py"),
        vec![
            mock.base_url(),
            account.auth_id.clone(),
            account.auth_token.expose().to_string(),
            capture.to_string(),
        ],
    )
    .await;
    assert_eq!(result["sdk_version"], PLIVO);
    assert_eq!(result["message"], "message(s) queued");
    let callbacks = result["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 3, "sent, delivered, inbound");
    for c in callbacks {
        assert_eq!(c["v3"], true, "V3 by the SDK's helper: {c}");
        assert_eq!(c["v2"], true, "V2 by the SDK's helper: {c}");
        assert_eq!(c["v3_tampered"], false, "{c}");
    }
    let statuses: Vec<&str> = callbacks
        .iter()
        .filter_map(|c| c["status"].as_str())
        .collect();
    assert_eq!(statuses, ["sent", "delivered"]);
    assert!(
        callbacks
            .iter()
            .any(|c| c["text"] == "sms-canary sdk plivo" && c["path"] == "/inbound")
    );
    assert_eq!(result["fetched_state"], "delivered");
    assert_eq!(result["cash_credits"], "25.00000");
    assert_eq!(result["errors"]["invalid"], "invalid dst number");
    assert_eq!(result["errors"]["auth"], "authentication failed");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_sdk_v4_sends_with_basic_auth_and_signed_requests() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let accounts = MockAccounts {
        vonage: VonageAccount {
            signature_secret: Some(Secret::new("vonage-signature-secret")),
            signature_method: SignatureMethod::Sha256,
            ..VonageAccount::default()
        },
        ..MockAccounts::default()
    };
    let mock = mock(free_port(), accounts).await;
    let host = mock.base_url().trim_start_matches("http://").to_string();
    let vonage = &mock.accounts().vonage;
    let result = run(
        python,
        script("vonage_sdk.py"),
        vec![
            host,
            vonage.api_key.clone(),
            vonage.api_secret.expose().to_string(),
            "vonage-signature-secret".to_string(),
            "sha256".to_string(),
        ],
    )
    .await;
    assert_eq!(result["sdk_version"], VONAGE);
    assert_eq!(result["basic"]["status"], "0", "{result:#}");
    assert_eq!(result["signed_request"]["status"], "0", "{result:#}");
    // The SDK's `sms.send` signs fields it does not send: refused as Vonage does.
    assert!(
        result["signed_sms_send"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("error code 14")),
        "{result:#}"
    );
    assert!(
        result["wrong_secret"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("error code 4: Bad Credentials"))
    );
    assert!(
        result["wrong_signature"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("error code 14: Invalid Signature"))
    );
    assert!(result["balance"].as_f64().is_some_and(|b| b > 0.0));
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn android_client_sends_registers_webhooks_and_reads_state_through_the_mock() {
    let python = tokio::task::spawn_blocking(android_python).await.unwrap();
    let mock = mock(free_port(), MockAccounts::default()).await;
    let account = &mock.accounts().android;
    let result = run(
        python,
        script("android_sdk.py"),
        vec![
            format!("{}/3rdparty/v1", mock.base_url()),
            account.username.clone(),
            account.password.expose().to_string(),
            account.signing_key.expose().to_string(),
            free_port().to_string(),
        ],
    )
    .await;
    assert_eq!(result["sdk_version"], ANDROID);
    assert_eq!(result["sent"]["state"], "Pending");
    assert_eq!(result["retrieved_state"], "Delivered", "{result:#}");
    assert_eq!(
        result["webhooks"],
        serde_json::json!(["sms:delivered", "sms:sent"])
    );
    let events = result["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, ["sms:sent", "sms:delivered"], "{result:#}");
    for e in events {
        assert_eq!(e["signature_ok"], true, "signed as the app documents: {e}");
        assert_eq!(e["tampered_refused"], true, "{e}");
        assert_eq!(e["message_id"], result["sent"]["id"], "{e}");
    }
    assert_eq!(result["unauthorized_status"], 401);
    mock.shutdown().await;
}
