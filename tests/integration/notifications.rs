//! What an on-call person receives (issue 20): through the real outbox, a
//! cron `check` fires and resolves an alert on a webhook sink, a
//! Slack-shaped API (bot token: the resolve threads under the firing notice)
//! and a real SMTP server, and each notice carries what it takes to act
//! without opening anything else. The webhook's JSON is checked against its
//! published schema with a real validator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::alert_channels::SmtpServer;
use crate::capture::Capture;
use crate::never_silent::{Canary, free_addr};

const DROPPED: &str = "+15005550191";
const GOOD: &str = "+15005550100";

/// A stand-in for Slack's Web API: records each `chat.postMessage` (its
/// bearer token and body) and answers `ok` with a fresh `ts`.
#[derive(Clone, Default)]
struct SlackApi {
    posts: Arc<Mutex<Vec<Post>>>,
}

/// One `chat.postMessage`: its `Authorization` header and its body.
type Post = (Option<String>, Value);

impl SlackApi {
    async fn start() -> (SlackApi, SocketAddr) {
        let api = SlackApi::default();
        let app =
            axum::Router::new()
                .route(
                    "/api/chat.postMessage",
                    axum::routing::post(
                        |State(api): State<SlackApi>,
                         headers: HeaderMap,
                         body: axum::body::Bytes| async move {
                            let auth = headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let mut posts = api.posts.lock().unwrap();
                            posts.push((auth, body));
                            axum::Json(json!({
                                "ok": true,
                                "channel": "C0123456",
                                "ts": format!("1700000000.{:06}", posts.len()),
                            }))
                        },
                    ),
                )
                .route(
                    "/api/auth.test",
                    axum::routing::post(|headers: HeaderMap| async move {
                        let good = headers
                            .get("authorization")
                            .is_some_and(|v| v == "Bearer xoxb-test-token");
                        axum::Json(if good {
                            json!({"ok": true, "team": "T0", "user": "canary"})
                        } else {
                            json!({"ok": false, "error": "invalid_auth"})
                        })
                    }),
                )
                .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, app).into_future());
        (api, addr)
    }
}

/// Validates `doc` against the JSON Schema at `schema` with Python's
/// `jsonschema` (format checks on): the errors, if any.
fn schema_errors(schema: &str, doc: &Value) -> Vec<String> {
    let python = crate::reference::python();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(schema))
            .unwrap(),
    )
    .unwrap();
    let script = "import json, sys, jsonschema\n\
                  req = json.load(sys.stdin)\n\
                  v = jsonschema.Draft7Validator(req['schema'], format_checker=jsonschema.FormatChecker())\n\
                  print(json.dumps([e.message for e in v.iter_errors(req['doc'])]))";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!({"schema": schema, "doc": doc}).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_gets_what_it_takes_to_act_and_the_resolve_follows_the_firing() {
    let (hook, hook_addr) = Capture::start(crate::capture::ANY_PORT).await;
    let (slack, slack_addr) = SlackApi::start().await;
    let smtp = tokio::task::spawn_blocking(|| SmtpServer::start_on(0))
        .await
        .unwrap();
    let canary = Canary::new(
        "alerts = [\"hook\", \"chat\", \"mail\"]\n\
         runbook_url = \"https://wiki.example.com/runbooks/sms#{probe}\"\n\
         dashboard_url = \"https://grafana.example.com/d/sms?var-probe={probe}&var-run={correlation_id}\"",
        &format!(
            "[gateways.sandbox.numbers.\"{DROPPED}\"]\ndrop = true\n\n\
             [alerts.hook]\nkind = \"webhook\"\nurl = \"http://{hook_addr}/alerts\"\n\n\
             [alerts.chat]\nkind = \"slack\"\nbot_token = \"xoxb-test-token\"\nchannel = \"#sms-alerts\"\n\
             api_url = \"http://{slack_addr}/api/\"\n\n\
             [alerts.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\n\
             from = \"canary@example.com\"\nto = [\"oncall@example.com\"]\n",
            smtp.port
        ),
    );
    // Operators reach the status page behind a proxy, under a path prefix.
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace(
            "[canary]\n",
            "[canary]\nstatus_url = \"https://ops.example.com/canary/\"\n",
        ),
    )
    .unwrap();
    canary.probe("p", DROPPED, "timeout = \"300ms\"\nthreshold = \"200ms\"\n");
    let check = |expected: i32| {
        let canary = &canary;
        async move {
            let out = canary.run(&["check"]).await;
            assert_eq!(
                out.status.code(),
                Some(expected),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    check(2).await;
    check(2).await;
    // The webhook: the notice as the outbox keeps it, in its published shape.
    assert_eq!(hook.transitions(), ["firing"]);
    let firing = hook.received.lock().unwrap()[0].clone();
    assert_eq!(
        schema_errors("docs/notification.schema.json", &firing),
        Vec::<String>::new()
    );
    assert_eq!(firing["schema_version"], 1);
    assert_eq!(firing["probe"], "p");
    assert_eq!(
        (firing["gateway"].as_str(), firing["receiver"].as_str()),
        (Some("sandbox"), Some("inbox"))
    );
    assert!(
        firing["message_id"].as_str().unwrap().starts_with("SM"),
        "{firing}"
    );
    assert_eq!(firing["destination"], "+********191");
    let progress = firing["progress"].as_str().unwrap();
    assert!(
        progress.starts_with("accepted ") && progress.ends_with("nothing arrived within 300ms"),
        "{progress}"
    );
    assert_eq!(firing["failed_runs"], 2);
    assert!(firing["failing_since"].as_str().is_some());
    assert_eq!(firing["last_ok"], Value::Null, "no good run yet");
    let ids = firing["correlation_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "both failed runs: {firing}");
    let links = firing["links"].as_array().unwrap();
    assert_eq!(links[0]["url"], "https://wiki.example.com/runbooks/sms#p");
    assert_eq!(
        links[1]["url"],
        format!(
            "https://grafana.example.com/d/sms?var-probe=p&var-run={}",
            ids[0].as_str().unwrap()
        )
    );
    assert_eq!(links[2]["label"], "Status page");
    assert_eq!(links[2]["url"], "https://ops.example.com/canary/probes/p");

    // The carrier recovers: the resolve follows the firing everywhere.
    canary.probe("p", GOOD, "timeout = \"5s\"\nthreshold = \"4s\"\n");
    check(0).await;
    assert_eq!(hook.transitions(), ["firing", "resolved"]);
    let resolved = hook.received.lock().unwrap()[1].clone();
    assert_eq!(
        schema_errors("docs/notification.schema.json", &resolved),
        Vec::<String>::new()
    );
    assert_eq!(resolved["follows"], firing["id"]);

    let posts = slack.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 2, "{posts:?}");
    for (auth, body) in &posts {
        assert_eq!(auth.as_deref(), Some("Bearer xoxb-test-token"));
        assert_eq!(body["channel"], "#sms-alerts");
    }
    assert_eq!(posts[0].1["blocks"][0]["text"]["text"], "CRITICAL p: lost");
    assert!(
        posts[0].1.get("thread_ts").is_none(),
        "a firing starts a thread"
    );
    assert_eq!(
        posts[1].1["thread_ts"], "1700000000.000001",
        "the resolve threads under it"
    );
    assert_eq!(posts[1].1["reply_broadcast"], true);
    let buttons = posts[0].1["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .map(|b| b["elements"].as_array().unwrap().len());
    assert_eq!(
        buttons,
        Some(3),
        "runbook, dashboard and status page buttons"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while smtp.messages().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        mails[0]["headers"]["Subject"],
        "[sms-canary] CRITICAL p: lost"
    );
    assert_eq!(
        mails[1]["headers"]["Subject"],
        "[sms-canary] RESOLVED p: ok"
    );
    assert_eq!(
        mails[1]["headers"]["In-Reply-To"],
        format!("<{}@sms-canary>", firing["id"].as_str().unwrap())
    );
    let body = mails[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Route: gateway sandbox → receiver inbox, to +********191"),
        "{body}"
    );
    assert!(
        body.contains("https://ops.example.com/canary/probes/p"),
        "{body}"
    );
    assert!(
        body.contains("Failed runs") || body.contains("(2 failed runs)"),
        "{body}"
    );
}

/// `alerts test` sends a marked notice through each channel and says which
/// did not take it; `outbox` lists what waits, `outbox retry` sends dead
/// letters again once the channel is back, `outbox purge` drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_and_the_outbox_commands_work_end_to_end() {
    let (hook, hook_addr) = Capture::start(crate::capture::ANY_PORT).await;
    let (down_addr, gone_addr) = (free_addr(), free_addr());
    let canary = Canary::new(
        "alerts = [\"hook\"]",
        &format!(
            "[alerts.hook]\nkind = \"webhook\"\nurl = \"http://{hook_addr}/alerts\"\n\n\
             [alerts.down]\nkind = \"webhook\"\nurl = \"http://{down_addr}/alerts\"\n\n\
             [alerts.gone]\nkind = \"webhook\"\nurl = \"http://{gone_addr}/alerts\"\n"
        ),
    );
    // One attempt only: a failure is a dead letter at once.
    let config = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(
        canary.path().join("config.toml"),
        config.replace(
            "[canary]\n",
            "[canary]\nnotify_retry = { attempts = 1, initial = \"1s\", factor = 1.0 }\n",
        ),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let canary = &canary;
        async move {
            let out = canary.run(args).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };

    let (code, out, _) = run(&["alerts", "test", "hook", "down"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("ok    hook: took the test notification"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  down: ") && out.contains("(dead-lettered)"),
        "{out}"
    );
    let told = hook.received.lock().unwrap()[0].clone();
    assert_eq!(told["probe"], "canary:test");
    assert!(
        told["reason"]
            .as_str()
            .unwrap()
            .contains("nothing is wrong")
    );
    let (code, out, _) = run(&["alerts", "test", "hook"]).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = run(&["alerts", "test", "nope"]).await;
    assert_eq!(code, Some(3));
    assert!(
        err.contains("no alert channel named `nope` (known: down, gone, hook)"),
        "{err}"
    );

    // The dead letter is listed, with what to do about it.
    let (code, out, _) = run(&["outbox"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("DEAD ") && out.contains("down") && out.contains("TEST sms-canary"),
        "{out}"
    );
    assert!(out.contains("sms-canary outbox retry ID"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    // Still down: retried, dead again.
    let (code, out, _) = run(&["outbox", "retry", "--all"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("1 dead letter(s) re-queued: 0 delivered, 0 to retry, 1 dead again"),
        "{out}"
    );
    // Back up: the retry delivers it.
    let (down, _) = Capture::start(down_addr).await;
    let out = canary.run(&["outbox", "retry", &id]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 delivered"));
    assert_eq!(down.transitions(), ["firing"]);
    let (_, out, _) = run(&["outbox"]).await;
    assert_eq!(
        out,
        "the outbox is empty: every notification was delivered\n"
    );

    // Purging: one by id, many only with --yes, pending never.
    let (code, _, _) = run(&["alerts", "test", "gone"]).await;
    assert_eq!(code, Some(2));
    let (code, _, err) = run(&["outbox", "purge", "--older-than", "0s"]).await;
    assert_eq!(code, Some(3));
    assert!(err.contains("needs --yes"), "{err}");
    let (code, out, err) = run(&["outbox", "purge", "--older-than", "0s", "--yes"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(out, "1 dead letter(s) purged\n");
    assert!(err.contains("dead letters purged by hand"), "logged: {err}");
    let (code, _, err) = run(&["outbox", "retry", "01NOSUCHID"]).await;
    assert_eq!(code, Some(3));
    assert!(err.contains("no dead letter with id 01NOSUCHID"), "{err}");

    // Each action counted in the store, and exported by whatever process
    // serves the metrics (here a monitor delivering what is due).
    assert_eq!(
        canary.store().outbox_actions().unwrap(),
        sms_canary::store::OutboxActions {
            requeued: 2,
            purged: 1
        }
    );
    let config = sms_canary::config::Config::load(&canary.path().join("config.toml")).unwrap();
    let metrics = std::sync::Arc::new(sms_canary::metrics::Metrics::new("test"));
    let monitor =
        sms_canary::monitor::Monitor::new(&config, canary.store(), Some(metrics.clone())).unwrap();
    monitor.deliver_due().await.unwrap();
    let text = metrics.render();
    for (action, n) in [("requeued", 2), ("purged", 1)] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("sms_canary_outbox_by_hand_total{")
                    && l.contains(&format!("action=\"{action}\""))
                    && l.ends_with(&format!(" {n}"))),
            "{text}"
        );
    }
}

/// `doctor` checks that each alert channel answers, sending nothing anyone
/// reads: a webhook is asked with HEAD, Slack's token with auth.test, the
/// mail server up to authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_alert_channel_answers_without_sending() {
    let (hook, hook_addr) = Capture::start(crate::capture::ANY_PORT).await;
    let (slack, slack_addr) = SlackApi::start().await;
    let smtp = tokio::task::spawn_blocking(|| SmtpServer::start_on(0))
        .await
        .unwrap();
    let closed = free_addr();
    let canary = Canary::new(
        "alerts = [\"hook\"]",
        &format!(
            "[alerts.hook]\nkind = \"webhook\"\nurl = \"http://{hook_addr}/alerts\"\n\n\
             [alerts.down]\nkind = \"webhook\"\nurl = \"http://{closed}/alerts\"\n\n\
             [alerts.chat]\nkind = \"slack\"\nbot_token = \"xoxb-test-token\"\nchannel = \"#a\"\n\
             api_url = \"http://{slack_addr}/api/\"\n\n\
             [alerts.stale]\nkind = \"slack\"\nbot_token = \"xoxb-revoked\"\nchannel = \"#a\"\n\
             api_url = \"http://{slack_addr}/api/\"\n\n\
             [alerts.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\n\
             from = \"canary@example.com\"\nto = [\"oncall@example.com\"]\n",
            smtp.port
        ),
    );
    let out = canary.run(&["doctor", "--listen", "127.0.0.1:0"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    let line = |subject: &str| {
        text.lines()
            .find(|l| l.starts_with("channel") && l.contains(subject))
            .unwrap_or_else(|| panic!("no line for {subject}: {text}"))
            .to_string()
    };
    assert!(line("hook (webhook)").contains(" ok "), "{text}");
    assert!(line("down (webhook)").contains("FAIL"), "{text}");
    assert!(
        line("chat (slack)").contains("accepts the bot token"),
        "{text}"
    );
    assert!(
        line("stale (slack)").contains("FAIL") && line("stale (slack)").contains("invalid_auth"),
        "{text}"
    );
    assert!(line("mail (email)").contains("takes a session"), "{text}");
    // Nothing was sent anywhere.
    assert!(hook.received.lock().unwrap().is_empty());
    assert!(slack.posts.lock().unwrap().is_empty());
    assert!(smtp.messages().is_empty());
    assert!(!text.contains("xoxb-"), "a token in the output: {text}");
}

/// The metrics an operator alerts on: whether the last config load worked
/// (and when one last did), and `probe_up` for every enabled probe from the
/// start, from its last recorded run, not only once it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_and_every_probe_show_in_the_metrics_from_the_start() {
    use sms_canary::daemon::{Control, DaemonOptions};
    let canary = Canary::new("", "");
    canary.probe("p", GOOD, "alerts = []\nschedule = \"every 1h\"\n");
    canary.probe("q", GOOD, "alerts = []\nschedule = \"every 1h\"\n");
    // p ran well before this daemon started; q never ran.
    {
        let store = canary.store();
        let run = sms_canary::probe::RunResult {
            probe: "p".into(),
            gateway: "sandbox".into(),
            receiver: "inbox".into(),
            correlation_id: "earlier".into(),
            started_at: chrono::Utc::now() - chrono::Duration::minutes(30),
            outcome: sms_canary::probe::Outcome::Ok,
            reason: None,
            code: None,
            latency: Some(Duration::from_millis(20)),
            threshold: Duration::from_secs(4),
            timeout: Duration::from_secs(5),
            phases: Default::default(),
            message_id: Some("SM1".into()),
            attempts: 1,
            findings: vec![],
            gateway_errors: vec![],
        };
        store
            .record_run(
                &run,
                "test",
                false,
                &Default::default(),
                &[],
                chrono::Utc::now(),
            )
            .unwrap();
    }
    let admin = free_addr();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        canary.path().join("config.toml"),
        DaemonOptions {
            preflight: false,
            admin_listen: Some(admin),
            ..DaemonOptions::default()
        },
    );
    let metrics = || async move {
        match reqwest::get(format!("http://{admin}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let sample = crate::never_silent::sample;
    let wait_for = |want: &'static str, value: f64| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = metrics().await;
            if sample(&m, want, &[]) == Some(value) || tokio::time::Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let m = wait_for("sms_canary_config_last_reload_successful", 1.0).await;
    assert_eq!(
        sample(&m, "sms_canary_probe_up", &[("probe", "p")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "sms_canary_probe_up", &[("probe", "q")]),
        Some(0.0),
        "{m}"
    );
    let loaded = sample(
        &m,
        "sms_canary_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(loaded > 1.7e9, "{m}");

    // A broken config: the reload fails and says so; the good one runs on.
    let good = std::fs::read_to_string(canary.path().join("config.toml")).unwrap();
    std::fs::write(canary.path().join("config.toml"), "[canary]\nlisten = 12\n").unwrap();
    tx.send(Control::Reload).await.unwrap();
    let m = wait_for("sms_canary_config_last_reload_successful", 0.0).await;
    assert_eq!(
        sample(&m, "sms_canary_config_last_reload_successful", &[]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "sms_canary_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(loaded)
    );
    // Fixed, with a new probe: it shows at once.
    std::fs::write(canary.path().join("config.toml"), good).unwrap();
    canary.probe("r", GOOD, "alerts = []\nschedule = \"every 1h\"\n");
    tx.send(Control::Reload).await.unwrap();
    let m = wait_for("sms_canary_config_last_reload_successful", 1.0).await;
    assert_eq!(
        sample(&m, "sms_canary_probe_up", &[("probe", "r")]),
        Some(0.0),
        "{m}"
    );
    tx.send(Control::Shutdown).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon).await;
}
