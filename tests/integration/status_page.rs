//! The status page as a person sees it (issue 18): served by the daemon on
//! its admin listener from a seeded store, loaded in a real headless
//! Chromium (Debian's, driven by Selenium through chromedriver): no console
//! errors, every probe listed in its state (ok, slow, failing, silenced, not
//! running) and grouped by its labels, the failing probe's row links to its
//! page, which shows its correlation id, a chart with a line per phase, a
//! point per arrival, the failures marked, the firing shaded and the
//! threshold where the config puts it, and provider text as text; a
//! silenced probe's chart shades the silence. A screenshot of each page is
//! left in `target/` (a CI artifact).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sms_canary::probe::{Outcome, RunResult};

use crate::never_silent::{Canary, free_addr};

fn python() -> PathBuf {
    let selenium = crate::python::Package {
        pip: "selenium==4.27.1",
        check: "import importlib.metadata as m, sys; sys.exit(m.version('selenium') != '4.27.1')",
    };
    crate::python::with("selenium-4.27.1", &[selenium])
}

fn run(
    probe: &str,
    id: &str,
    minutes_ago: i64,
    outcome: Outcome,
    reason: Option<&str>,
) -> RunResult {
    let arrived = matches!(outcome, Outcome::Ok | Outcome::Slow);
    RunResult {
        probe: probe.into(),
        gateway: "sandbox".into(),
        receiver: "inbox".into(),
        correlation_id: id.into(),
        started_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        outcome,
        reason: reason.map(str::to_string),
        code: (!arrived).then(|| "30003".to_string()),
        latency: arrived.then(|| Duration::from_millis(800 + minutes_ago as u64)),
        threshold: Duration::from_secs(4),
        timeout: Duration::from_secs(5),
        phases: sms_canary::probe::Phases {
            submit: Some(Duration::from_millis(20)),
            sent: Some(Duration::from_millis(60)),
            delivered: arrived.then(|| Duration::from_millis(700)),
            received: arrived.then(|| Duration::from_millis(800 + minutes_ago as u64)),
        },
        message_id: Some(format!("SM{id}")),
        attempts: 1,
        findings: vec![],
        gateway_errors: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_works_in_a_real_browser() {
    let Some(chromium) = crate::peers::require_peer("chromium") else {
        return;
    };
    let Some(chromedriver) = crate::peers::require_peer("chromedriver") else {
        return;
    };
    // `bad`'s number fails at once: the run the daemon starts for a firing
    // probe (at its start) fails quickly too, and the alert goes on firing.
    let canary = Canary::new(
        "",
        "[gateways.sandbox.numbers.\"+15005550192\"]\nfail = 30003\n",
    );
    let hourly = "alerts = []\nschedule = \"every 1h\"\nthreshold = \"4s\"\n";
    let de = format!("{hourly}labels = {{ country = \"DE\", carrier = \"Telekom\" }}\n");
    canary.probe("good", "+15005550100", &de);
    canary.probe("bad", "+15005550192", &de);
    // Weekly: its slot falls in the few seconds the test runs only once in
    // tens of thousands, so its slow last run stays the last.
    canary.probe(
        "slowpoke",
        "+15005550100",
        "alerts = []\nschedule = \"every 7d\"\nthreshold = \"4s\"\nlabels = { country = \"US\" }\n",
    );
    canary.probe("hushed", "+15005550100", hourly);
    canary.probe("off", "+15005550100", &format!("{hourly}enabled = false\n"));
    std::fs::remove_file(canary.path().join("probes/p.toml")).unwrap();
    // A day of runs: good ones every 20 minutes; bad fails at the end, with a
    // provider's error text holding markup.
    {
        let store = canary.store();
        let none = Default::default();
        for i in 0..12 {
            let r = run(
                "good",
                &format!("good-{i:02}"),
                20 * i + 1,
                Outcome::Ok,
                None,
            );
            store
                .record_run(&r, "test", false, &none, &[], r.started_at)
                .unwrap();
        }
        for i in 0..6 {
            let r = run(
                "bad",
                &format!("bad-ok-{i:02}"),
                20 * i + 100,
                Outcome::Ok,
                None,
            );
            store
                .record_run(&r, "test", false, &none, &[], r.started_at)
                .unwrap();
        }
        // Slow at its last run; silenced for an hour; disabled.
        for (probe, outcome, minutes) in [
            ("slowpoke", Outcome::Ok, 30),
            ("slowpoke", Outcome::Slow, 10),
            ("hushed", Outcome::Ok, 5),
            ("off", Outcome::Ok, 300),
        ] {
            let mut r = run(probe, &format!("{probe}-{minutes}"), minutes, outcome, None);
            if outcome == Outcome::Slow {
                r.latency = Some(Duration::from_secs(6));
                r.phases.received = r.latency;
            }
            store
                .record_run(&r, "test", false, &none, &[], r.started_at)
                .unwrap();
        }
        let now = chrono::Utc::now();
        store
            .silence(
                "hushed",
                now + chrono::Duration::hours(1),
                Some("carrier maintenance"),
                now - chrono::Duration::minutes(15),
            )
            .unwrap();
        let firing = sms_canary::alert::AlertState {
            consecutive_failures: 2,
            failing_since: Some(chrono::Utc::now() - chrono::Duration::minutes(40)),
            firing: Some(sms_canary::alert::Firing {
                since: chrono::Utc::now() - chrono::Duration::minutes(20),
                severity: sms_canary::alert::Severity::Critical,
                last_notified: chrono::Utc::now(),
                told: true,
                channels: vec![],
                notice: None,
            }),
            ..Default::default()
        };
        for (i, minutes) in [40, 20].into_iter().enumerate() {
            let r = run(
                "bad",
                &format!("bad-lost-{i}"),
                minutes,
                Outcome::Undelivered,
                Some("carrier said: <b>bold</b> <script>alert(1)</script>"),
            );
            store
                .record_run(&r, "test", false, &firing, &[], r.started_at)
                .unwrap();
        }
    }
    let admin = free_addr();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        canary.path().join("config.toml"),
        sms_canary::daemon::DaemonOptions {
            preflight: false,
            admin_listen: Some(admin),
            ..Default::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("http://{admin}/readyz"))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The run it starts for the firing probe is in the store first.
    let store = canary.store();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.recent_runs(Some("bad"), 100).unwrap().len() < 9 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the firing probe did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Bad query parameters are refused, unknown probes are 404.
    let status = |path: String| async move { reqwest::get(path).await.unwrap().status().as_u16() };
    assert_eq!(
        status(format!("http://{admin}/probes/bad?window=forever")).await,
        400
    );
    assert_eq!(status(format!("http://{admin}/probes/nope")).await, 404);

    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("..");
    let screenshot = target.join("status-page.png");
    let request = json!({
        "chromium": chromium,
        "chromedriver": chromedriver,
        "overview": format!("http://{admin}/"),
        "failing": "bad",
        "silenced": "hushed",
        "screenshot": screenshot,
    });
    let seen: Value = tokio::task::spawn_blocking(move || {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/integration/status_page.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the browser run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
    .await
    .unwrap();
    tx.send(sms_canary::daemon::Control::Shutdown)
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon).await;

    assert_eq!(seen["console"], json!([]), "console errors: {seen:#}");
    assert_eq!(
        seen["groups"],
        json!([
            ["no labels", ["hushed", "off"]],
            ["carrier=Telekom · country=DE", ["bad", "good"]],
            ["country=US", ["slowpoke"]],
        ]),
        "{seen:#}"
    );
    assert_eq!(seen["states"]["bad"], "failing");
    assert_eq!(seen["states"]["good"], "ok");
    assert_eq!(seen["states"]["slowpoke"], "slow", "{seen:#}");
    assert_eq!(seen["states"]["hushed"], "silenced", "{seen:#}");
    assert_eq!(seen["states"]["off"], "stopped", "{seen:#}");
    assert!(
        seen["reasons"]["off"]
            .as_str()
            .unwrap()
            .contains("not running: disabled"),
        "{seen:#}"
    );
    assert!(
        seen["alerts"][0].as_str().unwrap().starts_with("bad"),
        "{seen:#}"
    );
    assert!(
        seen["probe_url"].as_str().unwrap().ends_with("/probes/bad"),
        "{seen:#}"
    );
    let text = seen["probe_text"].as_str().unwrap();
    assert!(
        text.contains("bad-lost-1") && text.contains("SMbad-lost-1"),
        "{text}"
    );
    assert!(
        text.contains("<b>bold</b> <script>alert(1)</script>"),
        "as text: {text}"
    );
    assert_eq!(seen["injected_elements"], 0, "provider text made elements");
    // A point per arrival of the day (6 good runs of `bad`), both failures marked.
    assert_eq!(seen["points"], 6, "{seen:#}");
    assert_eq!(seen["failure_marks"], 3, "{seen:#}");
    assert_eq!(seen["threshold_seconds"], json!([4.0]), "{seen:#}");
    // A line per phase the runs reached, the firing shaded behind them.
    assert_eq!(
        seen["series"],
        json!(["submit", "sent", "delivered", "received"]),
        "{seen:#}"
    );
    assert_eq!(seen["firing_shading"], 1, "{seen:#}");
    assert!(
        text.contains("carrier=Telekom · country=DE"),
        "labels on the probe page: {text}"
    );
    assert_eq!(seen["silenced_shading"], 1, "{seen:#}");
    assert!(
        seen["silenced_text"]
            .as_str()
            .unwrap()
            .contains("carrier maintenance"),
        "{seen:#}"
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}

/// `report` (the SLA table as text, CSV or JSON; the status page as one
/// file), `history --format json|csv`, and retention: raw runs older than
/// `retention` go at the next cron run, their figures stay in the rollups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_history_formats_and_retention_work_from_the_binary() {
    let canary = Canary::new("", "");
    canary.probe(
        "p",
        "+15005550100",
        "alerts = []\nschedule = \"every 1h\"\nthreshold = \"4s\"\n",
    );
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace("[canary]\n", "[canary]\nretention = \"1d\"\n"),
    )
    .unwrap();
    {
        // Three days of hourly runs, one lost with a comma and quotes in its reason.
        let store = canary.store();
        let none = Default::default();
        for h in 0..72 {
            let outcome = if h == 30 { Outcome::Lost } else { Outcome::Ok };
            let reason = (h == 30).then_some("lost, \"somewhere\"");
            let r = run("p", &format!("p-{h:02}"), h * 60 + 5, outcome, reason);
            store
                .record_run(&r, "test", false, &none, &[], r.started_at)
                .unwrap();
        }
    }
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    // The SLA table over a week: 72 of 72 due hourly runs ran, 71 ok.
    let csv = text(
        &canary
            .run(&["report", "--since", "7d", "--format", "csv"])
            .await,
    );
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("probe,window_days,runs,due,ok,availability_pct,p50_ms")
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &row[..6],
        ["p", "7.00", "72", "72", "71", "98.611"],
        "{csv}"
    );
    assert_eq!(row[9], "1", "one incident: {csv}");
    let json: Value =
        serde_json::from_str(&text(&canary.run(&["report", "--format", "json"]).await)).unwrap();
    assert_eq!(json["probes"][0]["ok"], 71);

    // History as JSON and CSV (the CSV quotes what needs quoting).
    let history: Value = serde_json::from_str(&text(
        &canary
            .run(&[
                "history", "--format", "json", "--since", "7d", "--limit", "100",
            ])
            .await,
    ))
    .unwrap();
    assert_eq!(history["probes"][0]["runs"], 72);
    assert_eq!(history["runs"].as_array().unwrap().len(), 72);
    let csv = text(
        &canary
            .run(&["history", "--format", "csv", "--limit", "100"])
            .await,
    );
    assert_eq!(csv.lines().count(), 73, "a header and 72 runs");
    assert!(csv.contains(",\"lost, \"\"somewhere\"\"\""), "{csv}");

    // The status page as one file, the lost run's reason escaped.
    let page = canary.path().join("status.html");
    let out = canary
        .run(&["report", "--html", page.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"probe-p\"") && html.contains("<svg class=\"chart\""));
    assert!(html.contains("lost, &quot;somewhere&quot;"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an external request"
    );
    // Numbers masked, the run API's token nowhere.
    assert!(!html.contains("5005550100"), "a full number on the page");
    assert!(
        !html.contains(crate::daemon::API_TOKEN),
        "the API token on the page"
    );

    // A cron run prunes what retention (1d) no longer keeps...
    let out = canary.run(&["check", "p"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = canary.store();
    let kept = store.recent_runs(Some("p"), 1000).unwrap();
    assert!(
        kept.len() < 30
            && kept
                .iter()
                .all(|r| r.started_at > chrono::Utc::now() - chrono::Duration::hours(25)),
        "{} runs kept",
        kept.len()
    );
    // ...and the week's figures still count every run, from the rollups.
    let csv = text(
        &canary
            .run(&["report", "--since", "7d", "--format", "csv"])
            .await,
    );
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(&row[2..5], ["73", "73", "72"], "{csv}");
}
