//! Metrics against the real tools: the daemon's `/metrics` and a check's
//! textfile pass `promtool check metrics` (Debian's `prometheus` package), and
//! a check's push lands in a real Pushgateway (`prometheus-pushgateway`)
//! started here, read back from it. Without those packages the steps that
//! need them are skipped, as `peers.rs` says.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use sms_canary::daemon::{Control, DaemonOptions};

const CONFIG: &str = r#"[canary]
listen = "127.0.0.1:0"
instance = "ci"
[defaults]
schedule = "* * * * * *"
timeout = "2s"
threshold = "1s"
[gateways.sandbox]
kind = "mock"
latency = "20ms"
[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

const PROBE: &str = "name = \"fast\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(dir.path().join("probes/fast.toml"), PROBE).unwrap();
    dir
}

/// The value of the series `name` whose labels include all of `labels`
/// (in any order, as the exposition does not promise one).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            let (metric, rest) = head.split_once('{').unwrap_or((head, "}"));
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && all)
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// `promtool check metrics` on `text`: its verdict; where promtool is not
/// installed this step is skipped (said on the terminal), unless peers are
/// required.
fn promtool(text: &str) {
    let Some(promtool) = crate::peers::require_peer("promtool") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n---\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exposition_passes_promtool() {
    let dir = setup();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        dir.path().join("config.toml"),
        DaemonOptions {
            listen: Some(listen),
            admin_listen: Some(admin),
            preflight: false,
            ..DaemonOptions::default()
        },
    );
    let url = format!("http://{admin}/metrics");
    let mut text = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = reqwest::get(&url).await {
            text = r.text().await.unwrap();
            if text.contains("sms_canary_probe_runs_total{") {
                break;
            }
        }
    }
    let ci = ("instance", "ci");
    assert!(
        series(
            &text,
            "sms_canary_probe_runs_total",
            &[ci, ("outcome", "ok"), ("probe", "fast")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    let received = [ci, ("phase", "received"), ("probe", "fast"), ("le", "+Inf")];
    assert!(
        series(&text, "sms_canary_probe_latency_seconds_bucket", &received).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        series(&text, "sms_canary_probe_up", &[ci, ("probe", "fast")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "sms_canary_build_info",
            &[ci, ("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    let hooks = [ci, ("route", "twilio_inbound"), ("result", "accepted")];
    assert!(
        series(&text, "sms_canary_webhook_requests_total", &hooks).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        series(&text, "sms_canary_outbox_pending", &[ci]),
        Some(0.0),
        "{text}"
    );
    promtool(&text);
    // Metrics are on the admin listener; the public one serves webhooks only.
    let public = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap();
    assert_eq!(
        public.status().as_u16(),
        404,
        "/metrics on the public listener"
    );
    tx.send(Control::Shutdown).await.unwrap();
    daemon.await.unwrap().unwrap();
}

#[test]
fn a_check_writes_a_textfile_promtool_accepts() {
    let dir = setup();
    let path = dir.path().join("sms_canary.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args([
            "check",
            "--no-state",
            "--listen",
            "127.0.0.1:0",
            "--textfile",
            path.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        series(
            &text,
            "sms_canary_probe_up",
            &[("instance", "ci"), ("probe", "fast")]
        ),
        Some(1.0),
        "{text}"
    );
    let last = series(
        &text,
        "sms_canary_probe_last_success_timestamp_seconds",
        &[("probe", "fast")],
    )
    .unwrap();
    assert!(
        (last - chrono::Utc::now().timestamp() as f64).abs() < 60.0,
        "{text}"
    );
    promtool(&text);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the temporary file was renamed into place"
    );
    // An unwritable path is an error naming it, beside the probes' verdict.
    let out = Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args([
            "check",
            "--no-state",
            "--listen",
            "127.0.0.1:0",
            "--textfile",
            "/nonexistent-dir/x.prom",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/x.prom"));
}

/// Kills the Pushgateway when the test ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_lands_in_a_real_pushgateway() {
    let Some(pushgateway) = crate::peers::require_peer("prometheus-pushgateway") else {
        return;
    };
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let child = Command::new(pushgateway)
        .args([
            format!("--web.listen-address={addr}"),
            format!("--persistence.file={}", store.path().join("p").display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run prometheus-pushgateway");
    let _gateway = Reap(child);
    let base = format!("http://{addr}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the Pushgateway did not come up");

    let dir = setup();
    let path = dir.path().to_path_buf();
    let push = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args([
                "check",
                "--no-state",
                "--listen",
                "127.0.0.1:0",
                "--push-gateway",
                &push,
            ])
            .current_dir(path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scraped = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = scraped
        .lines()
        .find(|l| l.starts_with("sms_canary_probe_runs_total{") && l.contains(r#"probe="fast""#))
        .unwrap_or_else(|| panic!("the push is not in the Pushgateway:\n{scraped}"));
    assert!(
        line.contains(r#"job="sms-canary""#)
            && line.contains(r#"instance="ci""#)
            && line.ends_with(" 1"),
        "{line}"
    );
    // An unreachable Pushgateway is reported; the exit code stays the probes'.
    let dir2 = setup();
    let out = Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args([
            "check",
            "--no-state",
            "--listen",
            "127.0.0.1:0",
            "--push-gateway",
            "http://127.0.0.1:1",
        ])
        .current_dir(dir2.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Pushgateway unreachable"));
}
