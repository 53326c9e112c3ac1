//! Config loading that must neither leak nor hang, through the binary:
//! errors never quote a secret or URL credentials (each still names its
//! field), nested `${A:-${B}}` defaults expand, and a `probes` glob over a
//! symlink loop ends at once with an error naming the loop.

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

fn validate(dir: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["validate", "--config", "config.toml"])
        .current_dir(dir)
        .env_clear()
        .env("EMPTY_TOKEN", "")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every way a secret reached a config error before: a malformed URL with
/// userinfo and a token in its query (gateway, health_url, alert channels),
/// a token pasted into `account_sid` or `signature_method`, and blank
/// secrets. Each error is reported, names its field, and quotes no secret.
#[test]
fn config_errors_never_quote_secrets_or_url_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"[canary]
listen = "127.0.0.1:0"
api_token = "${EMPTY_TOKEN}"
probes = []

[gateways.api]
kind = "http"
url = "http://x.example.com/send"
health_url = "http://user:SECRET-HEALTH@[::1/health?token=SECRET-HEALTH-Q"

[gateways.tw]
kind = "twilio"
account_sid = "SECRET-PASTED-TOKEN"
auth_token = "t"
base_url = "http://user:SECRET-BASE@[::1/?x=SECRET-BASE-Q"

[gateways.vg]
kind = "vonage"
api_key = "k"
api_secret = "s"
signature_method = "SECRET-METHOD"

[receivers.inbox]
kind = "webhook"
gateway = "tw"
json_secret = " "

[alerts.hook]
kind = "webhook"
url = "http://user:SECRET-HOOK@[::1/hook?token=SECRET-HOOK-Q"

[alerts.am]
kind = "alertmanager"
url = "//user:SECRET-AM@am.example.com/?token=SECRET-AM-Q"
"#;
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let (code, stdout, stderr) = validate(dir.path());
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(
        !stderr.contains("SECRET") && !stdout.contains("SECRET"),
        "a secret was quoted:\n{stderr}"
    );
    for (field, needle) in [
        ("config.toml:3:", "`canary.api_token` is empty"),
        (
            "config.toml:9:",
            "`gateways.api`: invalid URL \"http://***@[::1/health?token=***\"",
        ),
        (
            "config.toml:13:",
            "`gateways.tw`: invalid account_sid (19 characters)",
        ),
        (
            "config.toml:21:",
            "`gateways.vg`: unknown Vonage signature method",
        ),
        (
            "config.toml:26:",
            "`receivers.inbox`: `json_secret` is empty",
        ),
        (
            "config.toml:30:",
            "`alerts.hook`: invalid URL \"http://***@[::1/hook?token=***\"",
        ),
        (
            "config.toml:34:",
            "`alerts.am`: invalid URL \"//***@am.example.com/?token=***\"",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(field) && l.contains(needle)),
            "want {field} … {needle}:\n{stderr}"
        );
    }
    // [canary] stops at its first error, so public_url gets a file of its own.
    std::fs::write(
        dir.path().join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\nprobes = []\n\
         public_url = \"https://canary:SECRET-PUBLIC@exa mple.com/?key=SECRET-PUBLIC-Q\"\n",
    )
    .unwrap();
    let (code, _, stderr) = validate(dir.path());
    assert_eq!(code, Some(3), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(
        stderr.contains("config.toml:4:14: invalid URL \"https://***@exa mple.com/?key=***\""),
        "{stderr}"
    );
}

/// `--push-gateway` is a URL from the command line: its error is redacted too.
#[test]
fn a_malformed_push_gateway_url_is_not_quoted_whole() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--push-gateway",
            "http://user:SECRET-PUSH@[::1/metrics?token=SECRET-PUSH-Q",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert!(
        stderr.contains("--push-gateway") && stderr.contains("http://***@[::1/metrics?token=***"),
        "{stderr}"
    );
}

/// A default may hold a reference of its own; before, `${A:-${B:-x}}`
/// silently became the literal text `${B:-x}`.
#[test]
fn nested_defaults_expand() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\ninstance = \"${INSTANCE:-${EMPTY_TOKEN:-${HOST_LABEL:-nested-default}}}\"\nprobes = []\n",
    )
    .unwrap();
    let (code, stdout, stderr) = validate(dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("instance nested-default,"), "{stdout}");
}

/// `probes/**` over two links pointing at each other: `validate` used to
/// walk forever (gigabytes of paths). Now it ends at once, loads the real
/// probe and reports the loop by its path.
#[test]
fn a_probes_glob_over_a_symlink_loop_ends_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::write(
        base.join("config.toml"),
        "[canary]\nlisten = \"127.0.0.1:0\"\nprobes = [\"probes/**/*.toml\"]\n\
         [gateways.sandbox]\nkind = \"mock\"\n[receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(base.join("probes/a")).unwrap();
    std::fs::create_dir_all(base.join("probes/b")).unwrap();
    std::fs::write(
        base.join("probes/a/p.toml"),
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../b", base.join("probes/a/to-b")).unwrap();
    std::os::unix::fs::symlink("../a", base.join("probes/b/to-a")).unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["validate", "--config", "config.toml"])
        .current_dir(base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("validate still walking the symlink loop after 10s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("probes/a/to-b/to-a: a symlink loop: it leads back to probes/a"),
        "{stderr}"
    );
}
