//! Personal data at rest and in words, through the binary: a provider's
//! error that quotes the phone number it refused is masked before it is
//! logged, printed, stored, shown by `history` or alerted; and the state
//! store is readable by its owner only, whatever the umask.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::capture::Capture;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");
const NUMBER: &str = "+15005550166";
/// Any run of these digits in output means the number leaked.
const LEAK: &str = "5005550166";

/// A gateway that is busy once, then refuses the number, quoting it both times.
async fn refusing_gateway() -> SocketAddr {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move || {
            let calls = Arc::clone(&calls);
            async move {
                use axum::http::StatusCode;
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("{{\"error\":\"queue full for {NUMBER}\"}}"),
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{{\"error\":\"'To' number is not a valid mobile number: {NUMBER}\"}}"
                        ),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, app).into_future());
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_in_a_providers_error_is_masked_everywhere() {
    let gateway = refusing_gateway().await;
    let (capture, alerts) = Capture::start("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[canary]
listen = "127.0.0.1:0"
instance = "masking"

[defaults]
timeout = "5s"
threshold = "2s"
retry = {{ attempts = 2, initial = "10ms", factor = 1.0 }}
failure_threshold = 1
alerts = ["hook"]

[gateways.api]
kind = "http"
url = "http://{gateway}/send"
body = '{{"to":"{{{{to}}}}","text":"{{{{body}}}}"}}'
message_id = "$.id"

[receivers.inbox]
kind = "webhook"
json_secret = "inbox-secret"

[alerts.hook]
kind = "webhook"
url = "http://{alerts}/alerts"
"#
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        format!("name = \"p\"\ngateway = \"api\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{NUMBER}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let dir = dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(args)
                .current_dir(dir)
                .env_remove("SMS_CANARY_CONFIG")
                .env_remove("RUST_LOG")
                .output()
                .unwrap()
        })
    };
    let out = run(&["-vv", "check", "--format", "json"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reason = json["runs"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not a valid mobile number: +********166"),
        "the reason keeps its words, the number masked: {reason}"
    );
    assert!(
        stderr.contains("queue full for +********166"),
        "the retried error is logged, masked:\n{stderr}"
    );
    assert!(!stdout.contains(LEAK), "JSON output:\n{stdout}");
    assert!(!stderr.contains(LEAK), "logs:\n{stderr}");

    let out = run(&["history"]).await.unwrap();
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(history.contains("+********166"), "{history}");
    assert!(!history.contains(LEAK), "history:\n{history}");

    let db = std::fs::read(dir.path().join(".sms-canary/state.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(LEAK), "the number is in state.db");

    assert_eq!(
        capture.wait_for(1, Duration::from_secs(5)).await,
        ["firing"]
    );
    let alerts = serde_json::to_string(&*capture.received.lock().unwrap()).unwrap();
    assert!(alerts.contains("+********166"), "{alerts}");
    assert!(!alerts.contains(LEAK), "alert body:\n{alerts}");
}

#[test]
fn the_state_store_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"state/nested\"\n\
         [defaults]\nschedule = \"* * * * * *\"\ntimeout = \"2s\"\nthreshold = \"1s\"\n\
         [gateways.sandbox]\nkind = \"mock\"\nlatency = \"10ms\"\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n",
    )
    .unwrap();
    // The daemon keeps the database open, so its -wal and -shm are there to look at.
    let mut daemon = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000; exec {BIN} daemon --no-preflight"))
        .current_dir(dir.path())
        .env_remove("SMS_CANARY_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = dir.path().join("state/nested");
    let files = ["state.db", "state.db-wal", "state.db-shm"];
    let mut ready = false;
    for _ in 0..100 {
        if files.iter().all(|f| state.join(f).exists()) {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let modes: Vec<(String, u32)> = std::iter::once(("state dir".to_string(), mode(&state)))
        .chain(
            files
                .iter()
                .filter(|f| state.join(f).exists())
                .map(|f| (f.to_string(), mode(&state.join(f)))),
        )
        .collect();
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(ready, "the daemon never opened its store: {modes:?}");
    assert_eq!(modes[0].1, 0o700, "{modes:?}");
    for (file, mode) in &modes[1..] {
        assert_eq!(*mode, 0o600, "{file}: {modes:?}");
    }
}
