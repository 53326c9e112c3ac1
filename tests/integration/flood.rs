//! Resource bounds of the webhook listener `check` serves, with a real probe
//! run in the middle: a flood of signed webhooks for unknown, duplicate and
//! ended runs leaves the inbox's bookkeeping bounded, and a slowloris client
//! is cut off. Sizes are asserted, never memory or timing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sms_canary::check::{CheckOptions, CheckReport, check};
use sms_canary::config::Config;
use sms_canary::probe::Outcome;
use sms_canary::providers::twilio::signature::sign as twilio_signature;
use sms_canary::receiver::Inbox;
use sms_canary::receiver::inbox::FINISHED_KEPT;
use sms_canary::server::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AUTH_TOKEN: &str = "flood-auth-token";

/// Webhooks in the flood. Every one is a full signed request through the
/// listener; what is asserted is that no structure grows with their number.
/// (A debug build handles about a thousand a second on two cores; the
/// 100,000-request figure comes from a release daemon, outside the tests.)
const FLOOD: usize = 8_000;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A mock carrier whose message takes `latency` to arrive, and one probe;
/// `public_url` is where the carrier posts its webhooks, if not straight to
/// the listener.
fn setup(latency: &str, public_url: Option<&str>) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let public = public_url.map_or(String::new(), |u| format!("public_url = \"{u}\"\n"));
    let main = format!(
        "[canary]\ninstance = \"test\"\nprobes = [\"probe.toml\"]\n{public}\n\
         [gateways.sandbox]\nkind = \"mock\"\nauth_token = \"{AUTH_TOKEN}\"\nlatency = \"{latency}\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::write(
        dir.path().join("probe.toml"),
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\n\
         from = \"+15005550006\"\nto = \"+15005550100\"\ntimeout = \"60s\"\nthreshold = \"50s\"\n",
    )
    .unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).unwrap();
    (dir, config)
}

/// Starts `check` on `addr`; returns once its listener accepts connections.
async fn start_check(
    config: Config,
    options: CheckOptions,
) -> tokio::task::JoinHandle<CheckReport> {
    let addr = options.listen.unwrap();
    let handle = tokio::spawn(async move { check(&config, &options).await.unwrap() });
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return handle;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the check's listener never came up");
}

/// A stand-in for the network between the carrier and us: forwards every
/// request to the listener at `target` once `gate` opens. Returns its URL.
async fn gated_proxy(target: SocketAddr, gate: tokio::sync::watch::Receiver<bool>) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    let client = reqwest::Client::new();
    // Answers the carrier at once and delivers later: the carrier must not
    // give up on a webhook that is merely delayed.
    let forward = move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let mut gate = gate.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let _ = gate.wait_for(|open| *open).await;
            let mut request = client.post(format!("http://{target}{uri}")).body(body);
            for name in ["content-type", "x-twilio-signature"] {
                if let Some(value) = headers.get(name) {
                    request = request.header(name, value.as_bytes());
                }
            }
            let _ = request.send().await;
        });
        async { StatusCode::OK }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    url
}

/// A token-shaped word that no run has: ten letters from a counter.
fn token(i: usize) -> String {
    let mut n = i;
    (0..10)
        .map(|_| {
            let c = b'a' + (n % 26) as u8;
            n /= 26;
            c as char
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_flood_leaves_the_inbox_bounded_while_a_run_completes() {
    let addr = free_addr();
    // The carrier's webhooks wait at a gate until the flood is over, so the
    // run is waiting through all of it.
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let public = gated_proxy(addr, gate).await;
    let (_dir, config) = setup("100ms", Some(&public));
    let inbox = Inbox::new();
    // Runs of earlier checks that ended: more than the inbox remembers.
    let ended: Vec<String> = (0..FINISHED_KEPT + 2_000)
        .map(|i| token(1_000_000 + i))
        .collect();
    for t in &ended {
        drop(inbox.register(t));
    }
    let options = CheckOptions {
        listen: Some(addr),
        stateless: true,
        inbox: Some(Arc::clone(&inbox)),
        ..CheckOptions::default()
    };
    let running = start_check(config, options).await;

    // FLOOD signed inbound messages: half strangers, a quarter copies of one
    // stranger, a quarter for runs that ended (the most recent ones, still
    // remembered). 32 connections at a time.
    let url = format!("http://{addr}/hooks/twilio/inbound/inbox");
    // Signatures cover the URL the provider calls: the public one.
    let signed_url = format!("{public}/hooks/twilio/inbound/inbox");
    let bodies: Vec<String> = (0..FLOOD)
        .map(|i| match i % 4 {
            0 | 1 => format!("sms-canary x {}", token(i)),
            2 => "sms-canary x zzzzzzzzzz".to_string(),
            _ => format!(
                "sms-canary x {}",
                ended[ended.len() - 1 - (i % (FLOOD / 4))]
            ),
        })
        .collect();
    let client = reqwest::Client::new();
    let statuses = futures_util::future::join_all((0..32).map(|worker| {
        let client = client.clone();
        let url = url.clone();
        let signed_url = signed_url.clone();
        let mine: Vec<String> = bodies.iter().skip(worker).step_by(32).cloned().collect();
        async move {
            let mut ok = 0;
            for (n, body) in mine.into_iter().enumerate() {
                let params = vec![
                    ("MessageSid".to_string(), format!("SMflood{worker}x{n}")),
                    ("From".to_string(), "+15005550199".to_string()),
                    ("To".to_string(), "+15005550100".to_string()),
                    ("Body".to_string(), body),
                ];
                let sig = twilio_signature(&signed_url, &params, AUTH_TOKEN);
                let r = client
                    .post(&url)
                    .header("X-Twilio-Signature", sig)
                    .form(&params)
                    .send()
                    .await
                    .unwrap();
                ok += usize::from(r.status() == 200);
            }
            ok
        }
    }))
    .await;
    assert_eq!(
        statuses.iter().sum::<usize>(),
        FLOOD,
        "every webhook answered 200"
    );

    let stats = inbox.stats();
    assert_eq!(
        stats.waiting, 1,
        "the real run waits through the flood: {stats:?}"
    );
    assert!(
        stats.finished <= FINISHED_KEPT,
        "ended runs are remembered up to a bound: {stats:?}"
    );
    assert_eq!(stats.strangers as usize, FLOOD * 3 / 4, "{stats:?}");
    assert_eq!(stats.late as usize, FLOOD / 4, "{stats:?}");

    assert!(!running.is_finished());
    open_gate.send(true).unwrap();
    let report = running.await.unwrap();
    let run = &report.runs[0];
    assert_eq!(run.outcome, Outcome::Ok, "{run:?}");
    assert_eq!(report.strangers as usize, FLOOD * 3 / 4);
    let stats = inbox.stats();
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.finished, FINISHED_KEPT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_while_a_probe_run_completes() {
    let (_dir, config) = setup("2500ms", None);
    let addr = free_addr();
    let options = CheckOptions {
        listen: Some(addr),
        stateless: true,
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..CheckOptions::default()
    };
    let running = start_check(config, options).await;

    // Headers that never end, a line every 100 ms.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /hooks/twilio/inbound/inbox HTTP/1.1\r\nHost: canary\r\n")
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 256];
        loop {
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
            tokio::select! {
                read = slow.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    // An error status is also a cut; the socket closes next.
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await;
    assert!(
        cut.is_ok(),
        "the slowloris client is still connected after 5s"
    );
    assert!(
        !running.is_finished(),
        "the run (2.5s of carrier latency) is still going when the client is cut"
    );
    let report = running.await.unwrap();
    assert_eq!(report.runs[0].outcome, Outcome::Ok, "{:?}", report.runs[0]);
}

#[test]
fn refused_webhooks_are_warned_about_at_most_once_a_second() {
    use std::io::{Read, Write};
    let (dir, _) = setup("3s", None);
    let addr = free_addr();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args([
            "check",
            "--no-state",
            "--listen",
            &addr.to_string(),
            "--config",
        ])
        .arg(dir.path().join("config.toml"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        std::net::TcpStream::connect(addr).is_ok()
    });
    assert!(up, "the check's listener never came up");
    let started = std::time::Instant::now();
    let body = "From=%2B15005550199&Body=unsigned";
    for _ in 0..200 {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(
            tcp,
            "POST /hooks/twilio/inbound/inbox HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    let seconds = started.elapsed().as_secs();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warned = stderr.matches("webhook refused").count();
    assert!(
        (1..=seconds as usize + 2).contains(&warned),
        "200 refusals in {seconds}s gave {warned} warnings:\n{stderr}"
    );
}
