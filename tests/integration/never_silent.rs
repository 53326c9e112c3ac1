//! The canary never goes silent (issue 12): every path where it could stop
//! watching or telling, through the real binary and daemon. A check that
//! cannot start holds no lease; a process that ended frees its leases at
//! once; skipped runs are counted and said louder when they repeat.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sms_canary::store::{Holder, Store};

pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The run API's token in these configs.
const API_TOKEN: &str = "never-silent-token";

/// A config dir like the shipped example: the in-process mock carrier and
/// a webhook receiver on a fixed `listen`, the daemon's admin listener on a
/// fixed `admin_listen`, one probe `p`.
pub(crate) struct Canary {
    pub dir: tempfile::TempDir,
    pub admin: SocketAddr,
}

impl Canary {
    pub fn new(extra_defaults: &str, extra: &str) -> Canary {
        let dir = tempfile::tempdir().unwrap();
        let listen = free_addr();
        let admin = free_addr();
        let config = format!(
            r#"[canary]
listen = "{listen}"
admin_listen = "{admin}"
api_token = "{API_TOKEN}"
instance = "test"

[defaults]
schedule = "every 1s"
timeout = "5s"
threshold = "4s"
failure_threshold = 2
{extra_defaults}

[gateways.sandbox]
kind = "mock"
latency = "20ms"

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
{extra}"#
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        std::fs::create_dir(dir.path().join("probes")).unwrap();
        let canary = Canary { dir, admin };
        canary.probe("p", "+15005550100", "");
        canary
    }

    pub fn probe(&self, name: &str, to: &str, extra: &str) {
        std::fs::write(
            self.path().join(format!("probes/{name}.toml")),
            format!(
                "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n{extra}"
            ),
        )
        .unwrap();
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn store(&self) -> Store {
        Store::open(&self.path().join(".sms-canary")).unwrap()
    }

    /// Runs the binary in the config dir.
    pub async fn run(&self, args: &[&str]) -> Output {
        let dir = self.path();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_sms-canary"))
                .args(&args)
                .current_dir(dir)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// Starts `sms-canary daemon` with its log in `daemon.log`, and waits
    /// until it answers `/readyz`.
    pub async fn daemon(&self) -> Daemon {
        let log = std::fs::File::create(self.path().join("daemon.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args(["daemon", "--no-preflight"])
            .current_dir(self.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            admin: self.admin,
            dir: self.path(),
        };
        daemon.wait_until_ready().await;
        daemon
    }
}

pub(crate) struct Daemon {
    child: Child,
    /// Its admin listener: /readyz, /metrics, the run API.
    admin: SocketAddr,
    dir: PathBuf,
}

impl Daemon {
    async fn wait_until_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not get ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Asks the daemon to run `probe` now and waits for it: the HTTP status
    /// and body.
    pub async fn run_now(&self, probe: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/probes/{probe}/run?wait=20s", self.admin))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Stops it with SIGTERM and waits for it to exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let waited = tokio::task::spawn_blocking(move || self.child.wait().unwrap());
        tokio::time::timeout(Duration::from_secs(20), waited)
            .await
            .expect("the daemon stopped on SIGTERM")
            .unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a Prometheus sample, e.g. `sms_canary_probe_up{probe="p"}`
/// (the instance label is matched loosely).
pub(crate) fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = rest.rsplit_once(' ')?;
        labels
            .iter()
            .all(|(k, v)| labels_part.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())?
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hold_lease(store: &Store, probe: &str, holder: &str) {
    assert!(
        store
            .acquire_lease(probe, holder, Duration::from_secs(600), chrono::Utc::now())
            .unwrap()
    );
}

fn holders_dir(dir: &Path) -> PathBuf {
    dir.join(".sms-canary/holders")
}

/// Issue 12, item 1: a `check` that cannot bind its listener (the daemon has
/// it) fails UNKNOWN, but holds no lease: the daemon's manual run and the
/// next `check` after the daemon stopped both run the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_cannot_start_leaves_no_lease_behind() {
    let canary = Canary::new("", "");
    // Scheduled rarely: only the manual run below runs it in the daemon.
    canary.probe("p", "+15005550100", "schedule = \"every 1h\"\n");
    let daemon = canary.daemon().await;
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot listen"), "{}", stderr(&out));

    let (status, body) = daemon.run_now("p").await;
    assert_eq!(status, 200, "{body}\n{}", daemon.log());
    assert!(body.contains("\"outcome\":\"ok\""), "{body}");
    daemon.stop().await;

    let out = canary.run(&["check"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Issue 12, item 1: a lease whose holder has ended is taken over at once,
/// whether the process removed its lock file (a normal exit) or not (kill
/// -9), instead of locking the probe out until the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_left_by_an_ended_process_is_taken_over_at_once() {
    let canary = Canary::new("", "");
    let store = canary.store();
    // Ended cleanly: its lock file is gone, its lease (leaked) is not.
    hold_lease(&store, "p", "check-1-01JCLEANEXIT");
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Killed: its lock file is there, unlocked.
    std::fs::create_dir_all(holders_dir(&canary.path())).unwrap();
    std::fs::write(
        holders_dir(&canary.path()).join("check-2-01JKILLED.lock"),
        b"",
    )
    .unwrap();
    hold_lease(&store, "p", "check-2-01JKILLED");
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Alive (this process): its lease holds, and the refusal says who has it.
    let alive = Holder::claim(&store, "daemon").unwrap();
    hold_lease(&store, "p", alive.name());
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(
        text.contains("another run of this probe is in progress (the daemon, pid"),
        "{text}"
    );
}

/// Issue 12, item 1: scheduled runs skipped because another process runs
/// the probe are counted by reason, and a repeat is logged at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_scheduled_runs_are_counted_and_warned_about() {
    let canary = Canary::new("", "");
    let store = canary.store();
    let alive = Holder::claim(&store, "check").unwrap();
    hold_lease(&store, "p", alive.name());
    let daemon = canary.daemon().await;
    let mut skipped = 0.0;
    for _ in 0..100 {
        let metrics = daemon.metrics().await;
        skipped = sample(
            &metrics,
            "sms_canary_probe_skipped_total",
            &[("probe", "p"), ("reason", "lease_held")],
        )
        .unwrap_or(0.0);
        if skipped >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skipped >= 2.0, "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("run skipped")
            && l.contains("another run of this probe is in progress")),
        "{log}"
    );
    daemon.stop().await;
}

/// A canary whose probes alert to a capture after two failures; `p` is
/// pointed at a number the mock drops (every run `lost`).
async fn alerting_canary() -> (Canary, crate::capture::Capture) {
    let (capture, hook) = crate::capture::Capture::start(crate::capture::ANY_PORT).await;
    let canary = Canary::new(
        "alerts = [\"hook\"]\nreminder = \"1h\"",
        &format!(
            "[gateways.sandbox.numbers.\"{DROPPED}\"]\ndrop = true\n\n[alerts.hook]\nkind = \"webhook\"\nurl = \"http://{hook}/alerts\"\n"
        ),
    );
    canary.probe("p", DROPPED, "timeout = \"300ms\"\nthreshold = \"200ms\"\n");
    (canary, capture)
}

const DROPPED: &str = "+15005550191";

async fn code(canary: &Canary, args: &[&str]) -> i32 {
    let out = canary.run(args).await;
    out.status.code().unwrap_or(-1)
}

/// Issue 12, item 3: an alert that fires while its probe is silenced is
/// told the moment the silence is lifted, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifting_a_silence_tells_an_alert_still_firing_at_once() {
    let (canary, capture) = alerting_canary().await;
    assert_eq!(code(&canary, &["silence", "p", "--for", "1h"]).await, 0);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert!(capture.transitions().is_empty(), "silenced: nothing told");
    let out = canary.run(&["alerts"]).await;
    let listed = stdout(&out);
    assert!(
        listed.contains("FIRING  p")
            && listed.contains("silenced until")
            && listed.contains("not told yet"),
        "{listed}"
    );

    let out = canary.run(&["unsilence", "p"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        capture.transitions(),
        ["firing"],
        "told when the silence ended"
    );
    let told = capture.received.lock().unwrap()[0].clone();
    assert_eq!(told["probe"], "p");
    assert_eq!(told["outcome"], "lost");
    // Told once: the next failing run is within the reminder interval.
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(capture.transitions(), ["firing"]);
}

/// Issue 12, item 3: a silence that expires under the daemon, with the
/// alert still firing, is told when it ends: not at the next run (an hour
/// away here), nor at the next reminder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_that_expires_under_the_daemon_tells_the_alert_when_it_ends() {
    let (canary, capture) = alerting_canary().await;
    canary.probe(
        "p",
        DROPPED,
        "timeout = \"300ms\"\nthreshold = \"200ms\"\nschedule = \"every 1h\"\n",
    );
    // Before the command: the silence ends 4 s after a moment later than this.
    let silenced_at = std::time::Instant::now();
    assert_eq!(code(&canary, &["silence", "p", "--for", "4s"]).await, 0);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(code(&canary, &["check"]).await, 2);
    let daemon = canary.daemon().await;
    let told = capture.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(told, ["firing"], "{}", daemon.log());
    assert!(
        silenced_at.elapsed() >= Duration::from_secs(4),
        "told before the silence ended"
    );
    daemon.stop().await;
}

/// Issue 12, item 4: a firing alert of a probe that is disabled, or removed
/// from the config, resolves with that reason at the next start; `alerts
/// clear` resolves one by hand and sends the resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_of_disabled_removed_or_cleared_probes_resolve() {
    let (canary, capture) = alerting_canary().await;
    canary.probe("q", "+15005550100", "");
    canary.probe("r", DROPPED, "timeout = \"300ms\"\nthreshold = \"200ms\"\n");
    canary.probe("s", DROPPED, "timeout = \"300ms\"\nthreshold = \"200ms\"\n");
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(capture.transitions(), ["firing", "firing", "firing"]);
    let listed = stdout(&canary.run(&["alerts"]).await);
    for p in ["p", "r", "s"] {
        assert!(listed.contains(&format!("FIRING  {p} ")), "{listed}");
    }

    // p disabled, r's file deleted: the next check (of q alone) resolves both.
    canary.probe("p", DROPPED, "enabled = false\n");
    std::fs::remove_file(canary.path().join("probes/r.toml")).unwrap();
    assert_eq!(code(&canary, &["check", "q"]).await, 0);
    let received = capture.received.lock().unwrap().clone();
    let resolved: Vec<(String, String)> = received[3..]
        .iter()
        .map(|n| {
            assert_eq!(n["transition"], "resolved", "{n}");
            (
                n["probe"].as_str().unwrap().to_string(),
                n["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(resolved.len(), 2, "{received:?}");
    assert!(
        resolved.contains(&("p".into(), "resolved: the probe was disabled".into())),
        "{resolved:?}"
    );
    assert!(
        resolved.contains(&(
            "r".into(),
            "resolved: the probe was removed from the config".into()
        )),
        "{resolved:?}"
    );
    // Cleared by hand: resolved and sent.
    let out = canary.run(&["alerts", "clear", "s"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resolve sent to 1 channel"),
        "{}",
        stdout(&out)
    );
    let last = capture.received.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["probe"].as_str(), last["transition"].as_str()),
        (Some("s"), Some("resolved"))
    );
    assert_eq!(
        stdout(&canary.run(&["alerts"]).await),
        "no alert is firing\n"
    );
    // Nothing to clear, and a probe that does not exist: said, exit 3.
    assert!(stdout(&canary.run(&["alerts", "clear", "s"]).await).contains("no alert is firing"));
    let out = canary.run(&["alerts", "clear", "nosuch"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no probe named `nosuch` (known:"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12, item 4, in the daemon: a reload (SIGHUP) that removes a firing
/// probe's file, or disables it, resolves its alert then, not at some later
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_resolves_the_alerts_of_removed_and_disabled_probes() {
    let (canary, capture) = alerting_canary().await;
    let failing = "timeout = \"300ms\"\nthreshold = \"200ms\"\nschedule = \"every 1h\"\n";
    canary.probe("p", DROPPED, failing);
    canary.probe("r", DROPPED, failing);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(code(&canary, &["check"]).await, 2);
    assert_eq!(capture.transitions(), ["firing", "firing"]);
    let daemon = canary.daemon().await;

    canary.probe("p", DROPPED, &format!("{failing}enabled = false\n"));
    std::fs::remove_file(canary.path().join("probes/r.toml")).unwrap();
    let pid = daemon.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    capture.wait_for(4, Duration::from_secs(20)).await;
    let received = capture.received.lock().unwrap().clone();
    let mut resolved: Vec<(String, String)> = received[2..]
        .iter()
        .map(|n| {
            assert_eq!(n["transition"], "resolved", "{n}");
            (
                n["probe"].as_str().unwrap().to_string(),
                n["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    resolved.sort();
    assert_eq!(
        resolved,
        [
            (
                "p".to_string(),
                "resolved: the probe was disabled".to_string()
            ),
            (
                "r".to_string(),
                "resolved: the probe was removed from the config".to_string()
            )
        ],
        "{}",
        daemon.log()
    );
    daemon.stop().await;
}

/// Issue 12, item 1: a run whose task panics frees its lease at once and is
/// recorded as interrupted, so the next run of the probe starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_panics_frees_its_lease_and_is_recorded() {
    use sms_canary::monitor::{Monitor, Refusal};
    let canary = Canary::new("", "");
    let config = sms_canary::config::Config::load(&canary.path().join("config.toml")).unwrap();
    let probe = config.probe("p").unwrap().clone();
    let monitor = Monitor::new(&config, canary.store(), None).unwrap();
    let now = chrono::Utc::now();
    // Two live holders, as a cron check and a daemon would be.
    let first = Holder::claim(&canary.store(), "check").unwrap();
    let other = Holder::claim(&canary.store(), "daemon").unwrap();
    let ticket = monitor.begin(&probe, first.name(), now).await.unwrap();
    let id = ticket.correlation().id.clone();
    // Held: a second run of the probe is refused while the first is on.
    assert!(matches!(
        monitor.begin(&probe, other.name(), now).await,
        Err(Refusal::LeaseHeld { .. })
    ));
    let crashed = tokio::spawn(async move {
        let _held = ticket;
        panic!("a bug in the middle of a run");
    })
    .await;
    assert!(crashed.unwrap_err().is_panic());
    // The lease is free (the interrupt is recorded off the async workers:
    // give it a moment), and the run is on record as interrupted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let next = loop {
        match monitor
            .begin(&probe, other.name(), chrono::Utc::now())
            .await
        {
            Ok(ticket) => break ticket,
            Err(refusal) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still refused: {refusal:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    drop(next);
    let runs = canary.store().recent_runs(Some("p"), 10).unwrap();
    let cut = runs
        .iter()
        .find(|r| r.correlation_id == id)
        .expect("the panicked run is recorded");
    assert!(cut.interrupted, "{cut:?}");
}

/// Issue 13: a reload into a probes directory with a symlink loop ends with
/// an error and keeps the running config; the daemon goes on answering and
/// says so in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_into_a_symlink_loop_keeps_the_running_config() {
    let canary = Canary::new("", "");
    canary.probe(
        "p",
        "+15005550100",
        "alerts = []\nschedule = \"every 1h\"\n",
    );
    let daemon = canary.daemon().await;
    let loaded = |m: &str| sample(m, "sms_canary_config_last_reload_successful", &[]);
    assert_eq!(loaded(&daemon.metrics().await), Some(1.0));
    let probes = canary.path().join("probes");
    std::fs::create_dir_all(probes.join("a")).unwrap();
    std::os::unix::fs::symlink("..", probes.join("a/up")).unwrap();
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace("[canary]\n", "[canary]\nprobes = [\"probes/**/*.toml\"]\n"),
    )
    .unwrap();
    let pid = daemon.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while loaded(&daemon.metrics().await) != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reload never failed:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.log().contains("symlink loop"), "{}", daemon.log());
    // Still running its probe from the config it had.
    let (status, body) = daemon.run_now("p").await;
    assert_eq!(status, 200, "{body}");
    daemon.stop().await;
}

/// Issue 12, item 5: a probe whose alerts go nowhere is warned about by
/// `validate` and fails `doctor`, unless it says `alerts = []` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_without_an_alert_channel_is_warned_about_and_fails_doctor() {
    let canary = Canary::new("", "");
    let out = canary.run(&["validate"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("warning: probe `p` has no alert channel: its alerts go nowhere"),
        "{}",
        stdout(&out)
    );
    let out = canary.run(&["doctor", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("alerts    probes")
            && stdout(&out).contains("no alert channel for p"),
        "{}",
        stdout(&out)
    );
    // Said on purpose: no warning, doctor passes.
    canary.probe("p", "+15005550100", "alerts = []\n");
    assert!(!stdout(&canary.run(&["validate"]).await).contains("no alert channel"));
    let out = canary.run(&["doctor", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// Issue 12, item 12: `doctor` fails when the state store cannot be
/// written, instead of passing and leaving `check` to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_when_the_state_store_cannot_be_written() {
    let canary = Canary::new("", "");
    canary.probe("p", "+15005550100", "alerts = []\n");
    // A file where the state dir should be: no process, root included,
    // can create the store under it.
    std::fs::write(canary.path().join("blocked"), b"").unwrap();
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace("[canary]\n", "[canary]\nstate_dir = \"blocked/state\"\n"),
    )
    .unwrap();
    let out = canary.run(&["doctor", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("store") && text.contains("FAIL"), "{text}");
    assert!(text.contains("cannot create the state dir"), "{text}");
}

/// An alert sink that holds each request until told to answer, and counts
/// what it got.
struct SlowSink {
    received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    first: std::sync::Arc<tokio::sync::Notify>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
    addr: SocketAddr,
}

impl SlowSink {
    async fn start() -> SlowSink {
        use axum::extract::State;
        type Shared = (
            std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
            std::sync::Arc<tokio::sync::Notify>,
            std::sync::Arc<tokio::sync::Semaphore>,
        );
        let shared: Shared = (
            Default::default(),
            Default::default(),
            std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        );
        let app =
            axum::Router::new()
                .route(
                    "/alerts",
                    axum::routing::post(
                        |State((received, first, release)): State<Shared>,
                         body: axum::body::Bytes| async move {
                            received
                                .lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap_or_default());
                            first.notify_one();
                            // Held until the test says so (a slow channel).
                            let _ = release.acquire().await.map(|p| p.forget());
                            "ok"
                        },
                    ),
                )
                .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, app).into_future());
        SlowSink {
            received: shared.0,
            first: shared.1,
            release: shared.2,
            addr,
        }
    }
}

/// Issue 12, item 6: a notification being sent by one process (a slow
/// channel) is not sent again by another sharing the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_in_flight_is_not_sent_again_by_another_process() {
    let sink = SlowSink::start().await;
    let canary = Canary::new(
        "alerts = [\"hook\"]",
        &format!(
            "[gateways.sandbox.numbers.\"{DROPPED}\"]\ndrop = true\n\n[alerts.hook]\nkind = \"webhook\"\nurl = \"http://{}/alerts\"\n",
            sink.addr
        ),
    );
    canary.probe(
        "p",
        DROPPED,
        "timeout = \"300ms\"\nthreshold = \"200ms\"\nfailure_threshold = 1\n",
    );
    canary.probe("q", "+15005550100", "");
    // The first check fires p's alert and is still sending it...
    let first = {
        let dir = canary.path();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_sms-canary"))
                .args(["check", "p"])
                .current_dir(dir)
                .output()
                .unwrap()
        })
    };
    tokio::time::timeout(Duration::from_secs(20), sink.first.notified())
        .await
        .expect("the alert was sent");
    // ...when another check, sharing the store, delivers its outbox.
    let out = canary.run(&["check", "q"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sink.release.add_permits(10);
    let first = first.await.unwrap();
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "sent twice: {received:?}");
}

/// Issue 12, item 7: a state store damaged under a running daemon fails
/// `/healthz`, is counted in the metrics and is told to the canary's
/// channels straight away (its outbox is in the damaged file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_fails_healthz_and_is_told() {
    let (capture, hook) = crate::capture::Capture::start(crate::capture::ANY_PORT).await;
    let canary = Canary::new(
        "alerts = [\"hook\"]",
        &format!("[alerts.hook]\nkind = \"webhook\"\nurl = \"http://{hook}/alerts\"\n"),
    );
    // A store with some history, all of it in the main file.
    {
        let store = canary.store();
        let at = chrono::Utc::now() - chrono::Duration::hours(1);
        for i in 0..300 {
            let mut run = sms_canary::probe::RunResult {
                probe: "p".into(),
                gateway: "sandbox".into(),
                receiver: "inbox".into(),
                correlation_id: format!("seed-{i:04}"),
                started_at: at + chrono::Duration::seconds(i),
                outcome: sms_canary::probe::Outcome::Ok,
                reason: None,
                code: None,
                latency: Some(Duration::from_millis(20)),
                threshold: Duration::from_secs(4),
                timeout: Duration::from_secs(5),
                phases: Default::default(),
                message_id: Some(format!("SM{i}")),
                attempts: 1,
                findings: Vec::new(),
                gateway_errors: Vec::new(),
            };
            run.reason = None;
            store
                .record_run(&run, "test", false, &Default::default(), &[], at)
                .unwrap();
        }
    }
    let (tx, daemon) = crate::daemon::spawn_daemon(
        canary.path().join("config.toml"),
        sms_canary::daemon::DaemonOptions {
            preflight: false,
            store_check_interval: Duration::from_millis(500),
            admin_listen: Some(canary.admin),
            ..Default::default()
        },
    );
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let r = http.get(format!("http://{}{path}", canary.admin)).send();
        async move {
            match r.await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get("/healthz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 30 KB of garbage in the middle of the file.
    let db = canary.path().join(".sms-canary/state.db");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 64 * 1024, "seeded store too small: {len}");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.seek(SeekFrom::Start(len / 2 - 15 * 1024)).unwrap();
        f.write_all(&vec![0xA5; 30 * 1024]).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let (status, body) = get("/healthz").await;
        if status == 503 || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("state store failing"), "{body}");
    let metrics = get("/metrics").await.1;
    assert_eq!(
        sample(&metrics, "sms_canary_store_up", &[]),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "sms_canary_store_errors_total", &[]).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    capture.wait_for(1, Duration::from_secs(20)).await;
    let told = capture.received.lock().unwrap().clone();
    assert!(
        told.iter()
            .any(|n| n["probe"] == "canary:state-store" && n["transition"] == "firing"),
        "{told:?}"
    );
    tx.send(sms_canary::daemon::Control::Shutdown)
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon).await;

    // Afterwards doctor names the damage, and a daemon will not start on it
    // (even without its preflight), saying what to do.
    let out = canary.run(&["doctor", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("store") && l.contains("FAIL") && l.contains("state store")),
        "{}",
        stdout(&out)
    );
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        canary.run(&["daemon", "--no-preflight"]),
    )
    .await
    .expect("a daemon on a damaged store exits");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the state store is damaged: stop every sms-canary using it"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12, item 7: an empty (truncated) state.db is not taken silently
/// for a new store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_file_is_warned_about() {
    let canary = Canary::new("", "");
    canary.probe("p", "+15005550100", "alerts = []\n");
    std::fs::create_dir_all(canary.path().join(".sms-canary")).unwrap();
    std::fs::write(canary.path().join(".sms-canary/state.db"), b"").unwrap();
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the state store is an empty file (0 bytes)"),
        "{}",
        stderr(&out)
    );
}

/// Issue 12, item 8: the exit code is the probes' verdict, whatever happens
/// to the outputs around it, and the JSON agrees with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_code_is_the_verdict_and_the_output_agrees_with_it() {
    let canary = Canary::new(
        "",
        "[gateways.sandbox.numbers.\"+15005550191\"]\ndrop = true\n",
    );
    canary.probe("p", "+15005550100", "alerts = []\n");
    let closed = free_addr();
    // A Pushgateway that is not there: reported, never the verdict.
    let out = canary
        .run(&[
            "check",
            "--format",
            "json",
            "--push-gateway",
            &format!("http://{closed}"),
        ])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["exit_code"], 0, "{doc}");
    assert_eq!(doc["outputs"][0]["kind"], "pushgateway");
    assert!(
        doc["outputs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Pushgateway unreachable")
    );
    assert!(
        stderr(&out).contains("WARNING: the pushgateway output was not written"),
        "{}",
        stderr(&out)
    );
    // A lost message with a metrics outage is still CRITICAL.
    canary.probe(
        "p",
        DROPPED,
        "alerts = []\ntimeout = \"300ms\"\nthreshold = \"200ms\"\n",
    );
    let out = canary
        .run(&[
            "check",
            "--format",
            "json",
            "--textfile",
            "/nonexistent-dir/x.prom",
        ])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        (doc["status"].as_str(), doc["exit_code"].as_u64()),
        (Some("CRITICAL"), Some(2))
    );
    assert!(
        doc["outputs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent-dir/x.prom")
    );

    // A config error: still a JSON document and a JUnit file saying why.
    std::fs::write(
        canary.path().join("probes/bad.toml"),
        "name = \"bad\"\ntreshold = \"1s\"\n",
    )
    .unwrap();
    let junit = canary.path().join("out.xml");
    let out = canary
        .run(&[
            "check",
            "--format",
            "json",
            "--junit",
            junit.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(
        (doc["status"].as_str(), doc["exit_code"].as_u64()),
        (Some("UNKNOWN"), Some(3))
    );
    let errors = doc["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("bad.toml")),
        "{doc}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error") && xml.contains("bad.toml"), "{xml}");
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
}

/// Issue 12, item 9: the first line is the overall status with performance
/// data in the plugin convention, checked with a strict pattern from the
/// Nagios plugin guidelines; per-probe lines follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_line_is_a_nagios_status_with_performance_data() {
    let canary = Canary::new(
        "",
        "[gateways.sandbox.numbers.\"+15005550191\"]\ndrop = true\n",
    );
    canary.probe(
        "sandbox-roundtrip",
        "+15005550100",
        "alerts = []\nthreshold = \"5s\"\n",
    );
    canary.probe(
        "sandbox-lost",
        DROPPED,
        "alerts = []\ntimeout = \"300ms\"\nthreshold = \"200ms\"\n",
    );
    std::fs::remove_file(canary.path().join("probes/p.toml")).unwrap();
    let out = canary.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    let (status, perfdata) = first.split_once(" | ").expect("perfdata after ` | `");
    assert_eq!(status, "CRITICAL - 2 probes: 1 lost, 1 ok", "{text}");
    // 'label'=value[UOM];[warn];[crit];[min];[max], space separated.
    let series: Vec<&str> = perfdata.split(' ').collect();
    for s in &series {
        assert!(nagios_perfdata(s), "not in the plugin convention: {s}");
    }
    let by_label: std::collections::BTreeMap<&str, &str> =
        series.iter().map(|s| s.split_once('=').unwrap()).collect();
    assert_eq!(by_label["'sandbox-lost_latency'"], "U;0.2;;0");
    assert_eq!(by_label["'sandbox-lost_up'"], "0;;;0;1");
    assert_eq!(by_label["'sandbox-roundtrip_up'"], "1;;;0;1");
    let latency = by_label["'sandbox-roundtrip_latency'"];
    assert!(latency.ends_with("s;5;;0"), "{latency}");
    let secs: f64 = latency.split('s').next().unwrap().parse().unwrap();
    assert!(secs > 0.0 && secs < 5.0, "{latency}");
    assert_eq!(series.len(), 4);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("CRITICAL  sandbox-lost"),
        "{text}"
    );
}

/// One performance datum as the plugin guidelines define it.
fn nagios_perfdata(s: &str) -> bool {
    let Some((label, rest)) = s.split_once('=') else {
        return false;
    };
    let quoted = label.len() > 2
        && label.starts_with('\'')
        && label.ends_with('\'')
        && !label[1..label.len() - 1].contains(['=', '\'']);
    let bare = !label.is_empty() && !label.contains([' ', '\'', '=']);
    if !(quoted || bare) {
        return false;
    }
    let mut fields = rest.split(';');
    let value = fields.next().unwrap_or("");
    let number = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            && t.parse::<f64>().is_ok()
    };
    let value_ok = value == "U" || {
        let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
        let uom = &value[digits.len()..];
        number(digits) && ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom)
    };
    let rest: Vec<&str> = fields.collect();
    value_ok && rest.len() <= 4 && rest.iter().all(|f| f.is_empty() || number(f))
}

/// Issue 12, item 10: at the default log level, a run's warning names its
/// probe and correlation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_log_lines_carry_its_probe_and_correlation_id() {
    let canary = Canary::new(
        "",
        "[gateways.sandbox.numbers.\"+15005550192\"]\nfail = 30003\n",
    );
    canary.probe("p", "+15005550192", "alerts = []\n");
    let dir = canary.path();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .args(["check", "--format", "json"])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = doc["runs"][0]["correlation_id"].as_str().unwrap();
    let log = stderr(&out);
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("undelivered"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(
        warning.contains("probe=p") && warning.contains(&format!("correlation_id={id}")),
        "{warning}"
    );
}

/// Issue 12, items 11 to 13: common mistakes get an error that says what
/// to do, causes are said once, and unknown probes are bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_mistakes_get_clear_errors() {
    // No config at all: what was looked for, and how to point at one.
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sms-canary"))
            .arg("check")
            .current_dir(dir)
            .env_remove("SMS_CANARY_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let said = stderr(&out);
    assert!(
        said.contains("looked for config.toml and then config.example.toml")
            && said.contains("--config PATH")
            && said.contains("SMS_CANARY_CONFIG"),
        "{said}"
    );

    // A cause is said once, not twice.
    let canary = Canary::new("", "");
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(canary.path().join("blocked"), b"").unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace("[canary]\n", "[canary]\nstate_dir = \"blocked/state\"\n"),
    )
    .unwrap();
    let out = canary.run(&["history"]).await;
    assert_eq!(out.status.code(), Some(3));
    let said = stderr(&out);
    assert_eq!(said.matches("Not a directory").count(), 1, "{said}");

    // Unknown probes: exit 3 naming the known ones, like `silence`.
    let canary = Canary::new("", "");
    for args in [
        &["unsilence", "nosuch"][..],
        &["history", "nosuch"],
        &["silence", "nosuch", "--for", "1h"],
    ] {
        let out = canary.run(args).await;
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            stderr(&out).contains("no probe named `nosuch` (known: p)"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
