//! The standalone mock carrier's admin API, through the binary: an admin
//! token closes it, a bind beyond loopback is warned about, and listed
//! messages show phone numbers masked unless asked for in full.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");
const SID: &str = "AC00000000000000000000000000000000";

/// Starts `mock-carrier` with `args`; its base URL (reached on loopback).
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("mock-carrier")
        .args(args)
        .env_remove("SMS_CANARY_MOCK_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the mock announces itself");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .replace("0.0.0.0", "127.0.0.1");
    (child, url)
}

/// Stops the mock; what it said on stderr.
fn stop(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_mock_warns_and_its_admin_api_takes_a_token() {
    let (child, base) = start(&["--listen", "0.0.0.0:0", "--admin-token", "mock-admin-token"]);
    let http = reqwest::Client::new();
    let faults = format!("{base}/_mock/faults");
    let refused = http.get(&faults).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let refused = http
        .post(format!("{base}/_mock/reset"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let allowed = http
        .get(&faults)
        .bearer_auth("mock-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    // The provider API is not the admin API: it takes its own credentials.
    let sent = http
        .post(format!("{base}/2010-04-01/Accounts/{SID}/Messages.json"))
        .basic_auth(SID, Some("mock-auth-token"))
        .form(&[
            ("To", "+15005550100"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 201);
    let list = |query: &'static str| {
        http.get(format!("{base}/_mock/messages{query}"))
            .bearer_auth("mock-admin-token")
            .send()
    };
    let masked: Value = list("").await.unwrap().json().await.unwrap();
    assert_eq!(masked["messages"][0]["to"], "+********100", "{masked}");
    assert_eq!(masked["messages"][0]["from"], "+********006", "{masked}");
    let full: Value = list("?numbers=full").await.unwrap().json().await.unwrap();
    assert_eq!(full["messages"][0]["to"], "+15005550100", "{full}");
    let stderr = stop(child);
    assert!(
        stderr.contains("warning: the mock carrier listens on 0.0.0.0:")
            && stderr.contains("reachable from other hosts"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("set --admin-token"),
        "it has one: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_admin_api_on_all_interfaces_is_named_in_the_warning() {
    let (child, base) = start(&["--listen", "0.0.0.0:0"]);
    let open = reqwest::get(format!("{base}/_mock/faults")).await.unwrap();
    assert_eq!(open.status().as_u16(), 200, "no token: open");
    let stderr = stop(child);
    assert!(stderr.contains("is open: set --admin-token"), "{stderr}");
    let (child, _) = start(&["--listen", "127.0.0.1:0"]);
    let stderr = stop(child);
    assert!(
        !stderr.contains("warning"),
        "loopback is not warned about: {stderr}"
    );
}
