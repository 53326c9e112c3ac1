//! The daemon's run API (`daemon::api::router`): `POST /probes/{name}/run`
//! and `GET /runs/{id}` with any method, path, query (`wait`), headers and
//! body, against a stand-in scheduler that answers each run at once, refuses
//! it, or lets it run for a minute. Time is tokio's paused clock, so a
//! `wait` costs nothing.
//!
//! Beyond "no panic, no 5xx": a request to a run route without
//! `Authorization: Bearer <the token>` never gets past the checks (401 or
//! 403), nor does one whose `Host` is a name not configured or whose
//! `Origin` is not the `Host`; no answer takes longer than the capped wait;
//! and a run the API started is then found under `/runs/{id}`.
//!
//! Input: as the `webhook` target, an HTTP/1-like request: `METHOD
//! /path?query`, header lines, a blank line, the body. The pseudo-header
//! `X-Fuzz-Token: 1` adds the right bearer token (unless the input sets its
//! own `Authorization`), and `X-Fuzz-Host: 1` a `Host` of 127.0.0.1:9188.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use libfuzzer_sys::fuzz_target;
use sms_canary::config::Config;
use sms_canary::daemon::Control;
use sms_canary::daemon::api::{RunApi, router};
use sms_canary::probe::{Outcome, Phases, RunResult};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin-token";
/// The listener's request timeout; the API caps `wait` below it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[canary]
admin_hosts = ["canary.internal", "proxy.example:8443"]
api_token = "fuzz-admin-token"

[gateways.sandbox]
kind = "mock"

[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
"#;

/// Probes, each answered differently by the stand-in scheduler.
const PROBES: [&str; 3] = ["ok", "refused", "slow"];

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    max_wait: Duration,
    _dir: tempfile::TempDir,
}

fn run(probe: &str, id: String) -> RunResult {
    RunResult {
        probe: probe.to_string(),
        gateway: "sandbox".into(),
        receiver: "inbox".into(),
        correlation_id: id,
        started_at: chrono::Utc::now(),
        outcome: Outcome::Ok,
        reason: None,
        code: None,
        latency: Some(Duration::from_millis(800)),
        threshold: Duration::from_secs(30),
        timeout: Duration::from_secs(120),
        phases: Phases::default(),
        message_id: Some("SMfuzz".into()),
        attempts: 1,
        findings: Vec::new(),
        gateway_errors: Vec::new(),
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sms-canary.toml");
        std::fs::write(&path, CONFIG).expect("write config");
        std::fs::create_dir(dir.path().join("probes")).expect("probes dir");
        for name in PROBES {
            std::fs::write(
                dir.path().join(format!("probes/{name}.toml")),
                format!(
                    "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n"
                ),
            )
            .expect("write probe");
        }
        let config = Config::load_with_env(&path, &|_| None).expect("fuzz config loads");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Control>(64);
        runtime.spawn(async move {
            while let Some(control) = rx.recv().await {
                let Control::Run {
                    probe,
                    correlation,
                    reply,
                } = control
                else {
                    continue;
                };
                match probe.as_str() {
                    "refused" => {
                        let _ = reply.send(Err("probe `refused` is running already".into()));
                    }
                    "slow" => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            let _ = reply.send(Ok(run(&probe, correlation.id)));
                        });
                    }
                    _ => {
                        let _ = reply.send(Ok(run(&probe, correlation.id)));
                    }
                }
            }
        });
        let api = RunApi::new(&config, tx, REQUEST_TIMEOUT);
        World {
            max_wait: api.max_wait(),
            router: router(api),
            runtime,
            _dir: dir,
        }
    })
}

/// Whether a `Host` value may pass: an IP address, `localhost`, or a
/// configured name; what the harness expects of the API, written apart.
fn host_allowed(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        },
    };
    let names = ["canary.internal", "proxy.example:8443"];
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || names.contains(&name)
        || names.contains(&host.as_str())
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return;
    };
    if uri.scheme().is_some() || !target.starts_with('/') {
        return;
    }
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let (mut add_token, mut add_host) = (false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-fuzz-token") {
            add_token = true;
            continue;
        }
        if name.eq_ignore_ascii_case("x-fuzz-host") {
            add_host = true;
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.push((name, value));
        }
    }
    let has = |headers: &[(HeaderName, HeaderValue)], name: &HeaderName| {
        headers.iter().any(|(n, _)| n == name)
    };
    if add_token && !has(&headers, &header::AUTHORIZATION) {
        headers.push((
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("a header value"),
        ));
    }
    if add_host && !has(&headers, &header::HOST) {
        headers.push((header::HOST, HeaderValue::from_static("127.0.0.1:9188")));
    }
    let first = |name: &HeaderName| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap_or("\u{fffd}").to_string())
    };
    let authorized = first(&header::AUTHORIZATION).as_deref() == Some(&format!("Bearer {TOKEN}"));
    let host = first(&header::HOST);
    let host_ok = host.as_deref().is_some_and(host_allowed);
    let origin_ok = match first(&header::ORIGIN) {
        None => true,
        Some(origin) => {
            let bare = origin
                .strip_prefix("http://")
                .or(origin.strip_prefix("https://"));
            bare.zip(host.as_deref())
                .is_some_and(|(o, h)| o.eq_ignore_ascii_case(h))
        }
    };
    let path = uri.path().to_string();
    let run_route = (path.starts_with("/probes/") && path.ends_with("/run"))
        || path.starts_with("/runs/");

    let mut request = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers.iter().cloned() {
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };

    let world = world();
    let (response, took) = world.runtime.block_on(async {
        let started = tokio::time::Instant::now();
        let response = world
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        (response, started.elapsed())
    });
    let status = response.status().as_u16();
    assert!(status < 500, "the run API answered {status}");
    assert!(
        took <= world.max_wait + Duration::from_millis(1),
        "an answer took {took:?}, over the {:?} cap",
        world.max_wait
    );
    let passed = !matches!(status, 401 | 403 | 405);
    if run_route && passed && status != 404 {
        assert!(authorized, "{status} without the token");
        assert!(host_ok, "{status} for Host {host:?}");
        assert!(origin_ok, "{status} from a foreign Origin");
    }
    // A run the API started is found under its id.
    if status == 202 && method == Method::POST {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a 202 says where the run is")
            .to_string();
        let follow = Request::get(location.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::HOST, "127.0.0.1:9188")
            .body(Body::empty())
            .expect("a request");
        let found = world
            .runtime
            .block_on(world.router.clone().oneshot(follow))
            .expect("the router is infallible");
        assert!(
            matches!(found.status().as_u16(), 200 | 202),
            "{location} answered {}",
            found.status()
        );
    }
});
