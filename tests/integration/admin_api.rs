//! The daemon's two listeners and its run API, through a real daemon and a
//! real mock carrier: the public listener serves webhooks and nothing else,
//! the admin one metrics, health and the run API; the run API trusts no
//! address (a reverse proxy on loopback gets nothing without the token),
//! refuses cross-site requests and foreign Host names, answers a long run
//! with 202 and a Location to poll instead of a 408, and `sms-canary
//! trigger` drives it with the config's own address and token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sms_canary::daemon::{Control, DaemonError, DaemonOptions};
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig};
use sms_canary::redact::Secret;

pub(crate) const API_TOKEN: &str = "admin-api-test-token";
/// The auth token of the carrier the `inbox` receiver belongs to.
pub(crate) const CARRIER_TOKEN: &str = "carrier-secret-token";
/// Delivered to the daemon's `inbox` after the carrier's latency.
pub(crate) const DELIVERED: &str = "+15005550100";
/// Accepted by the carrier, then never delivered.
pub(crate) const DROPPED: &str = "+15005550191";

pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A daemon in this process with a carrier of its own.
pub(crate) struct Daemon {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub carrier: MockHandle,
    pub dir: tempfile::TempDir,
    pub control: tokio::sync::mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

/// How to start one.
pub(crate) struct Setup {
    pub api_token: Option<&'static str>,
    /// A run of `lost` waits this long for its message.
    pub timeout: &'static str,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub limits: sms_canary::server::Limits,
    /// `[canary] public_url`, when the carrier calls another address.
    pub public_url: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            api_token: Some(API_TOKEN),
            timeout: "3s",
            public: free_addr(),
            admin: free_addr(),
            limits: sms_canary::server::Limits::default(),
            public_url: None,
        }
    }
}

/// The config: probe `p` goes around the loop through `inbox`, probe `lost`
/// is dropped by the carrier. Both run only when asked (a yearly schedule).
/// `sandbox`, a mock no probe uses, and `json-in`, a receiver with no
/// gateway, are there for their credentials and routes.
pub(crate) fn write_config(dir: &Path, setup: &Setup, carrier: &str) -> PathBuf {
    let mut token = setup
        .api_token
        .map(|t| format!("api_token = \"{t}\"\n"))
        .unwrap_or_default();
    if let Some(url) = &setup.public_url {
        token.push_str(&format!("public_url = \"{url}\"\n"));
    }
    let config = format!(
        r#"[canary]
listen = "{public}"
admin_listen = "{admin}"
{token}admin_hosts = ["canary.internal"]

[defaults]
schedule = "0 0 1 1 *"
timeout = "{timeout}"
threshold = "2s"

[gateways.carrier]
kind = "twilio"
account_sid = "AC{zeros}"
auth_token = "{CARRIER_TOKEN}"
base_url = "{carrier}"

[gateways.sandbox]
kind = "mock"

[receivers.inbox]
kind = "webhook"
gateway = "carrier"

[receivers.json-in]
kind = "webhook"
json_secret = "json-in-secret"
"#,
        public = setup.public,
        admin = setup.admin,
        timeout = setup.timeout,
        zeros = "0".repeat(32),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    for (name, to) in [("p", DELIVERED), ("lost", DROPPED)] {
        std::fs::write(
            dir.join(format!("probes/{name}.toml")),
            format!(
                "name = \"{name}\"\ngateway = \"carrier\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n"
            ),
        )
        .unwrap();
    }
    path
}

/// A carrier that delivers [`DELIVERED`] to `inbound` and drops [`DROPPED`].
pub(crate) async fn carrier(inbound: &str) -> MockHandle {
    let mut mock = MockConfig {
        auth_token: Secret::new(CARRIER_TOKEN),
        latency: LatencyModel::Fixed(Duration::from_millis(20)),
        ..MockConfig::default()
    };
    mock.numbers.insert(
        DELIVERED.into(),
        NumberConfig {
            owned: true,
            inbound_url: Some(inbound.to_string()),
            ..NumberConfig::default()
        },
    );
    mock.numbers.insert(
        DROPPED.into(),
        NumberConfig {
            drop: true,
            ..NumberConfig::default()
        },
    );
    MockCarrier::start(
        mock,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap()
}

impl Daemon {
    pub(crate) async fn start(setup: Setup) -> Daemon {
        let inbound = format!("http://{}/hooks/twilio/inbound/inbox", setup.public);
        Daemon::start_with_inbound(setup, &inbound).await
    }

    /// As [`Daemon::start`], the carrier delivering to `inbound`.
    pub(crate) async fn start_with_inbound(setup: Setup, inbound: &str) -> Daemon {
        let carrier = carrier(inbound).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &setup, &carrier.base_url());
        let (control, task) = crate::daemon::spawn_daemon(
            path,
            DaemonOptions {
                preflight: false,
                grace: Duration::from_secs(2),
                admin_listen: Some(setup.admin),
                limits: setup.limits,
                ..DaemonOptions::default()
            },
        );
        let daemon = Daemon {
            public: sms_canary::config::reachable(setup.public),
            admin: sms_canary::config::reachable(setup.admin),
            carrier,
            dir,
            control,
            task,
        };
        daemon.ready().await;
        daemon
    }

    async fn ready(&self) {
        let url = format!("http://{}/readyz", self.admin);
        for _ in 0..200 {
            assert!(!self.task.is_finished(), "the daemon stopped at start");
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon's admin listener never became ready");
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Messages the carrier was asked to send.
    pub(crate) async fn sent(&self) -> Vec<Value> {
        let list: Value = reqwest::get(format!("{}/_mock/messages", self.carrier.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["direction"] != "inbound")
            .cloned()
            .collect()
    }

    pub(crate) async fn stop(self) {
        self.control.send(Control::Shutdown).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
        self.carrier.shutdown().await;
    }
}

async fn status(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_listener_serves_webhooks_only_and_the_admin_one_the_rest() {
    let d = Daemon::start(Setup::default()).await;
    let http = reqwest::Client::new();
    for path in ["/metrics", "/healthz", "/readyz", "/runs/x", "/"] {
        let (code, _) = status(http.get(format!("http://{}{path}", d.public))).await;
        assert_eq!(code, 404, "GET {path} on the public listener");
    }
    let run = http
        .post(format!("http://{}/probes/p/run", d.public))
        .bearer_auth(API_TOKEN);
    assert_eq!(
        status(run).await.0,
        404,
        "the run API on the public listener"
    );
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (code, _) = status(http.get(format!("http://{}{path}", d.admin))).await;
        assert_eq!(code, 200, "GET {path} on the admin listener");
    }
    let hook = http
        .post(format!("http://{}/hooks/twilio/inbound/inbox", d.admin))
        .form(&[("Body", "x"), ("From", DELIVERED)]);
    assert_eq!(status(hook).await.0, 404, "webhooks on the admin listener");
    // The round trip: the carrier's signed webhook reaches the public listener.
    let (code, run) = status(
        http.post(format!("http://{}/probes/p/run?wait=20s", d.admin))
            .bearer_auth(API_TOKEN),
    )
    .await;
    assert_eq!((code, run["outcome"].as_str()), (200, Some("ok")), "{run}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_token_the_run_api_says_how_to_turn_it_on() {
    let d = Daemon::start(Setup {
        api_token: None,
        ..Setup::default()
    })
    .await;
    let (code, body) = status(
        reqwest::Client::new()
            .post(format!("http://{}/probes/p/run", d.admin))
            .bearer_auth("anything"),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("set [canary] api_token") && error.contains("sms-canary trigger"),
        "{error}"
    );
    assert!(d.sent().await.is_empty(), "nothing was sent");
    d.stop().await;
}

/// A reverse proxy on the same host, as one adds TLS in front: it connects
/// from 127.0.0.1, and forwards whatever the internet sends. Its callers get
/// nothing without the token; with it, the run starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_reverse_proxy_gets_no_run_without_the_token() {
    let d = Daemon::start(Setup::default()).await;
    let proxy = proxy_to(d.admin).await;
    let http = reqwest::Client::new();
    let url = format!("http://{proxy}/probes/p/run");
    assert_eq!(status(http.post(&url)).await.0, 401, "no token");
    assert_eq!(
        status(http.post(&url).bearer_auth("wrong")).await.0,
        401,
        "a wrong token"
    );
    assert_eq!(
        status(http.post(&url).bearer_auth(&API_TOKEN[1..])).await.0,
        401,
        "a token's tail"
    );
    assert!(d.sent().await.is_empty(), "a refused request sent an SMS");
    let (code, body) = status(http.post(&url).bearer_auth(API_TOKEN)).await;
    assert!(code == 200 || code == 202, "{code} {body}");
    d.stop().await;
}

/// The tiny proxy: accepts on loopback, forwards each request to `upstream`
/// over a fresh loopback connection with its method, path, headers and body.
async fn proxy_to(upstream: SocketAddr) -> SocketAddr {
    use axum::extract::Request;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(move |request: Request| {
        let client = client.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut forward = client.request(
                parts.method,
                format!("http://{upstream}{}", parts.uri.path_and_query().unwrap()),
            );
            for (name, value) in &parts.headers {
                if name != axum::http::header::HOST {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let status = answer.status();
            (status, answer.bytes().await.unwrap())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, app).into_future());
    addr
}

/// A page in a browser on the operator's host POSTs to the admin listener
/// (CSRF), or reaches it under its own name through DNS rebinding: both are
/// refused even with the token, which the page cannot have but an extension
/// or a leaked header might.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_foreign_host_requests_are_refused() {
    let d = Daemon::start(Setup::default()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/probes/p/run", d.admin);
    for origin in [
        "http://evil.example",
        "null",
        "http://canary.internal.evil.example",
    ] {
        let (code, body) = status(
            http.post(&url)
                .bearer_auth(API_TOKEN)
                .header("Origin", origin),
        )
        .await;
        assert_eq!(code, 403, "Origin {origin}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("cross-origin"),
            "{body}"
        );
    }
    let without_token = http.post(&url).header("Origin", "http://evil.example");
    assert_eq!(status(without_token).await.0, 403);
    let (code, body) = status(
        http.post(&url)
            .bearer_auth(API_TOKEN)
            .header("Host", format!("rebound.evil.example:{}", d.admin.port())),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("admin_hosts"),
        "{body}"
    );
    assert!(d.sent().await.is_empty(), "a refused request sent an SMS");
    // Its own origin, and a configured name, are served.
    let (code, body) = status(
        http.post(format!("{url}?wait=20s"))
            .bearer_auth(API_TOKEN)
            .header("Origin", format!("http://{}", d.admin)),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = status(
        http.get(format!(
            "http://{}/runs/{}",
            d.admin,
            body["correlation_id"].as_str().unwrap()
        ))
        .bearer_auth(API_TOKEN)
        .header("Host", "canary.internal:9188")
        .header("Origin", "https://canary.internal:9188"),
    )
    .await;
    assert_eq!(
        (code, body["outcome"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    d.stop().await;
}

/// A lost message keeps its run going for the probe's whole timeout, longer
/// than the listener lets a request last: the answer is 202 with where to
/// look, never a 408, and the run's result is there once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_the_request_timeout_answers_202_and_is_polled() {
    let d = Daemon::start(Setup {
        timeout: "4s",
        limits: sms_canary::server::Limits {
            request_timeout: Duration::from_secs(2),
            ..sms_canary::server::Limits::default()
        },
        ..Setup::default()
    })
    .await;
    let http = reqwest::Client::new();
    // 60 s asked under a 2 s request timeout: the wait is capped below it.
    let response = http
        .post(format!("http://{}/probes/lost/run?wait=60s", d.admin))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202, "not a 408");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["correlation_id"].as_str().unwrap();
    assert_eq!(location, format!("/runs/{id}"));
    assert_eq!(body["status"], "running");
    // Asked again while it runs: refused, with the reason.
    let (code, again) = status(
        http.post(format!("http://{}/probes/lost/run?wait=1s", d.admin))
            .bearer_auth(API_TOKEN),
    )
    .await;
    assert_eq!(code, 409, "{again}");
    assert!(
        again["error"].as_str().unwrap().contains("running already"),
        "{again}"
    );
    let poll = || {
        http.get(format!("http://{}{location}?wait=60s", d.admin))
            .bearer_auth(API_TOKEN)
    };
    let (code, body) = status(poll()).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (202, Some("running")),
        "{body}"
    );
    let (mut code, mut body) = (0, Value::Null);
    for _ in 0..10 {
        (code, body) = status(poll()).await;
        if code != 202 {
            break;
        }
    }
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "lost");
    assert_eq!(body["correlation_id"], id);
    let unknown = status(
        http.get(format!("http://{}/runs/01NOSUCHRUN", d.admin))
            .bearer_auth(API_TOKEN),
    )
    .await;
    assert_eq!(unknown.0, 404);
    d.stop().await;
}

/// `sms-canary trigger` reads admin_listen and api_token from the config
/// the daemon runs: no token on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_runs_a_probe_through_the_daemon() {
    let d = Daemon::start(Setup::default()).await;
    let trigger = |args: &[&str]| {
        let config = d.config();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
                .arg("--config")
                .arg(config)
                .arg("trigger")
                .args(args)
                .env_remove("SMS_CANARY_CONFIG")
                .output()
                .unwrap()
        })
    };
    let out = trigger(&["p", "--wait"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("p: OK in "), "{stdout}");
    let out = trigger(&["lost", "--wait", "--format", "json"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a lost run is CRITICAL");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "lost");
    let out = trigger(&["p"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("p: "), "{stdout}");
    let out = trigger(&["nope"]).await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no probe named `nope`"));
    assert_eq!(d.sent().await.len(), 3, "one message per triggered run");
    // No token in the config: trigger says what to do, and calls nobody.
    let text = std::fs::read_to_string(d.config()).unwrap();
    std::fs::write(d.config(), text.replace("api_token = ", "# api_token = ")).unwrap();
    let out = trigger(&["p"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("has no [canary] api_token"), "{stderr}");
    d.stop().await;
}

/// `check` serves only what its probes need: the public listener for the
/// webhooks, never the admin one (a daemon may hold it).
#[test]
fn check_binds_the_public_listener_only() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[canary]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"{admin}\"\napi_token = \"t\"\n\
             [defaults]\ntimeout = \"5s\"\nthreshold = \"4s\"\n\
             [gateways.sandbox]\nkind = \"mock\"\nlatency = \"10ms\"\n\
             [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        format!("name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{DELIVERED}\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["check", "--no-state"])
        .current_dir(dir.path())
        .env_remove("SMS_CANARY_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(taken);
}

/// `validate` tells which listener faces what, and each receiver's own
/// provider route (a Vonage receiver is not shown a Twilio URL).
#[test]
fn validate_shows_both_listeners_and_each_receivers_route() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[canary]\nlisten = \"0.0.0.0:9187\"\nadmin_listen = \"127.0.0.1:9188\"\n\
             public_url = \"https://canary.example.com\"\nprobes = []\n\
             [gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{z}\"\nauth_token = \"t\"\n\
             [gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\n\
             [receivers.tin]\nkind = \"webhook\"\ngateway = \"tw\"\n\
             [receivers.vin]\nkind = \"webhook\"\ngateway = \"vg\"\n\
             [receivers.jin]\nkind = \"webhook\"\njson_secret = \"j\"\n",
            z = "0".repeat(32)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["validate"])
        .current_dir(dir.path())
        .env_remove("SMS_CANARY_CONFIG")
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{plan}");
    for line in [
        "webhooks on 0.0.0.0:9187 (public: /hooks/... only)",
        "daemon admin on 127.0.0.1:9188 (/metrics, /healthz, /readyz, run API off: no api_token)",
        "tin (webhook): Twilio inbound URL https://canary.example.com/hooks/twilio/inbound/tin",
        "vin (webhook): Vonage inbound URL https://canary.example.com/hooks/vonage/inbound/vin",
        "jin (webhook): JSON inbound URL https://canary.example.com/hooks/json/jin",
    ] {
        assert!(plan.contains(line), "want `{line}` in:\n{plan}");
    }
}
