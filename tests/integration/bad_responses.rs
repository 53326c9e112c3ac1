//! Providers that answer badly: a fake provider on 127.0.0.1:0 answers the
//! Twilio, Vonage and HTTP gateways and the Twilio and HTTP pollers with
//! garbage, truncated JSON, empty bodies, the wrong content type, HTML error
//! pages, and 50 MB bodies (streamed). Each run must end `error` or
//! `rejected` with a short reason holding no secret, without a panic or a
//! hang, and a huge body must not be read past the cap: the client closes
//! the connection once it holds the cap's worth.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use sms_canary::check::{CheckOptions, check};
use sms_canary::config::Config;
use sms_canary::net::MAX_RESPONSE_BYTES;
use sms_canary::probe::Outcome;
use sms_canary::providers::http::poll::MAX_LISTING_BYTES;

const SECRETS: &[&str] = &[
    "tw-secret-token-123",
    "vg-secret-456",
    "api-secret-789",
    "poll-secret-000",
    "KEY-tx-secret-321",
    "pl-secret-654",
];

/// 50 MB announced in `Content-Length`, streamed in 64 KiB chunks.
const HUGE: u64 = 50 * 1000 * 1000;
const CHUNK: usize = 64 * 1024;

/// How the fake provider answers.
#[derive(Clone)]
enum Answer {
    Fixed(u16, &'static str, &'static str),
    /// A 50 MB answer, of which the fake hands out only one chunk past the
    /// client's cap (all a client needs to see the answer is over it), then
    /// holds the connection open and sends nothing more. Whatever the
    /// kernel's socket buffers take (on loopback they grow to `tcp_rmem`'s
    /// maximum, tens of MB, within milliseconds), no more is on offer, so
    /// what the test asserts does not depend on them.
    Huge {
        status: u16,
        cap: usize,
    },
    /// A valid submit answer for the probe's gateway.
    Accept,
}

struct Fake {
    submit: Answer,
    list: Answer,
    /// Huge bodies whose connection is still open, and how many were served.
    huge: tokio::sync::watch::Sender<HugeBodies>,
}

#[derive(Clone, Copy, Default)]
struct HugeBodies {
    open: usize,
    served: usize,
}

/// Marks a huge body's connection closed when hyper drops its stream: it
/// does so only when the client went away, since the stream never ends.
struct Open(Arc<Fake>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.huge.send_modify(|h| h.open -= 1);
    }
}

fn answer(fake: &Arc<Fake>, answer: &Answer, accepted: &'static str) -> Response {
    match answer {
        Answer::Fixed(status, content_type, body) => (
            StatusCode::from_u16(*status).unwrap(),
            [(header::CONTENT_TYPE, *content_type)],
            *body,
        )
            .into_response(),
        Answer::Accept => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            accepted,
        )
            .into_response(),
        Answer::Huge { status, cap } => {
            fake.huge.send_modify(|h| {
                h.open += 1;
                h.served += 1;
            });
            let open = Open(Arc::clone(fake));
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let handed = futures_util::stream::iter(
                (0..(cap + CHUNK).div_ceil(CHUNK)).map(move |_| Ok(chunk.clone())),
            );
            // Then nothing, for ever: the stream (and `open` with it) is
            // dropped only when the connection closes.
            let held = futures_util::stream::pending::<Result<Bytes, Infallible>>().map(move |b| {
                let _ = &open;
                b
            });
            (
                StatusCode::from_u16(*status).unwrap(),
                [
                    (header::CONTENT_TYPE, "application/json".to_string()),
                    (header::CONTENT_LENGTH, HUGE.to_string()),
                ],
                Body::from_stream(handed.chain(held)),
            )
                .into_response()
        }
    }
}

const TWILIO_OK: &str = r#"{"sid":"SM00000000000000000000000000000001","status":"queued"}"#;
const VONAGE_OK: &str =
    r#"{"message-count":"1","messages":[{"status":"0","message-id":"0A000001"}]}"#;
const HTTP_OK: &str = r#"{"id":"m-1"}"#;
const TELNYX_OK: &str = r#"{"data":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6"}}"#;
const PLIVO_OK: &str =
    r#"{"message":"message(s) queued","message_uuid":["db3ce55a-7f1d-11e1-8ea7-1231380bc196"]}"#;

async fn serve_fake(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.submit, TWILIO_OK) })
                .get(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.list, "") }),
        )
        .route(
            "/sms/json",
            post(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.submit, VONAGE_OK) }),
        )
        .route(
            "/send",
            post(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.submit, HTTP_OK) }),
        )
        .route(
            "/v2/messages",
            post(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.submit, TELNYX_OK) }),
        )
        .route(
            "/v1/Account/{id}/Message/",
            post(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.submit, PLIVO_OK) }),
        )
        .route(
            "/inbound",
            get(|State(f): State<Arc<Fake>>| async move { answer(&f, &f.list, "") }),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    base
}

fn config(base: &str) -> String {
    format!(
        r#"[canary]
listen = "127.0.0.1:0"
instance = "test"
probes = ["probe.toml"]

[defaults]
retry = {{ attempts = 1 }}

[gateways.tw]
kind = "twilio"
account_sid = "AC{zeros}"
auth_token = "tw-secret-token-123"
base_url = "{base}"

[gateways.vg]
kind = "vonage"
api_key = "key"
api_secret = "vg-secret-456"
base_url = "{base}"

[gateways.tx]
kind = "telnyx"
api_key = "KEY-tx-secret-321"
public_key = "DwfOtQn4P2wYiIZ4xG50Tj04t8zyFxMAi5fNJBMREhs="
base_url = "{base}/v2"

[gateways.pl]
kind = "plivo"
auth_id = "MAXXXXXXXXXXXXXXXXXX"
auth_token = "pl-secret-654"
base_url = "{base}"

[gateways.api]
kind = "http"
url = "{base}/send"
headers = {{ Authorization = "Bearer api-secret-789" }}
body = '{{"to":"{{{{to}}}}","text":"{{{{body}}}}"}}'
message_id = "$.id"

[receivers.hook]
kind = "webhook"

[receivers.twpoll]
kind = "twilio-poll"
gateway = "tw"
interval = "200ms"

[receivers.own]
kind = "http-poll"
url = "{base}/inbound"
headers = {{ X-Key = "poll-secret-000" }}
messages = "$.messages[*]"
body = "$.text"
interval = "200ms"
"#,
        zeros = "0".repeat(32)
    )
}

struct Case {
    name: &'static str,
    /// What the run's reason must say.
    needle: &'static str,
    gateway: &'static str,
    receiver: &'static str,
    submit: Answer,
    list: Answer,
}

struct Ran {
    name: &'static str,
    needle: &'static str,
    outcome: Outcome,
    reason: String,
    huge: HugeBodies,
}

/// One probe against its own fake provider, through `check` as the CLI runs it.
async fn run(case: Case) -> Ran {
    let fake = Arc::new(Fake {
        submit: case.submit,
        list: case.list,
        huge: tokio::sync::watch::Sender::new(HugeBodies::default()),
    });
    let base = serve_fake(Arc::clone(&fake)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config(&base)).unwrap();
    // A bad submit answer ends the run at once, so a long timeout costs
    // nothing and keeps a loaded machine from ending it mid-submit instead.
    // A poller that keeps failing is only given up on at the timeout.
    let timeout = if case.receiver == "hook" { "20s" } else { "3s" };
    std::fs::write(
        dir.path().join("probe.toml"),
        format!(
            "name = \"p\"\ngateway = \"{}\"\nreceiver = \"{}\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n\
             timeout = \"{timeout}\"\nthreshold = \"1s\"\n",
            case.gateway, case.receiver
        ),
    )
    .unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let options = CheckOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        stateless: true,
        ..CheckOptions::default()
    };
    let report = tokio::time::timeout(Duration::from_secs(30), check(&config, &options))
        .await
        .unwrap_or_else(|_| panic!("{}: the check hung", case.name))
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let run = &report.runs[0];
    // A client that stopped at its cap has closed (or is closing) every
    // huge body's connection; one that held on, or waits for more than
    // the fake hands out, never does. The limit only bounds a failure.
    let mut huge = fake.huge.subscribe();
    let closed = tokio::time::timeout(Duration::from_secs(20), huge.wait_for(|h| h.open == 0))
        .await
        .is_ok();
    let huge = *fake.huge.borrow();
    Ran {
        name: case.name,
        needle: case.needle,
        outcome: run.outcome,
        reason: run.reason.clone().unwrap_or_default(),
        huge: HugeBodies {
            open: if closed { 0 } else { huge.open },
            ..huge
        },
    }
}

const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response from an upstream server.</p>\
<hr><address>nginx</address></body></html>";

/// Each bad answer, by name, with the status a good one would have.
fn bad_answers(ok_status: u16, cap: usize) -> Vec<(&'static str, Answer)> {
    vec![
        (
            "garbage",
            Answer::Fixed(ok_status, "application/json", "\u{1}\u{2}garbage\u{0}"),
        ),
        (
            "truncated",
            Answer::Fixed(ok_status, "application/json", "{\"sid\": \"SM12"),
        ),
        ("empty", Answer::Fixed(ok_status, "application/json", "")),
        (
            "wrong-type",
            Answer::Fixed(ok_status, "text/plain", "OK, message queued"),
        ),
        ("html-502", Answer::Fixed(502, "text/html", HTML_PAGE)),
        ("html-400", Answer::Fixed(400, "text/html", HTML_PAGE)),
        (
            "huge-ok",
            Answer::Huge {
                status: ok_status,
                cap,
            },
        ),
        ("huge-503", Answer::Huge { status: 503, cap }),
    ]
}

/// What a run's reason says for a bad answer `name` from `side`.
fn needle(side: &str, name: &str) -> &'static str {
    match (side, name) {
        (_, "html-502" | "html-400") => "an HTML page, \"502 Bad Gateway\"",
        (_, "huge-503") => "HTTP 503",
        ("api", _) => "HTTP 500",
        ("tw" | "twpoll", "huge-ok") => "larger than 1 MiB; it was not read to the end",
        ("vg", "huge-ok") => "Vonage's answer is larger than 1 MiB",
        ("tx" | "pl", "huge-ok") => "is larger than 1 MiB; it was not read to the end",
        ("own", "huge-ok") => "answered with more than 4 MiB",
        ("tw", _) => "not a Twilio message resource",
        ("vg", _) => "not a Vonage SMS response",
        ("tx", _) => "not a Telnyx message",
        ("pl", _) => "its answer has no message_uuid",
        ("twpoll", _) => "not a Twilio message page",
        ("own", _) => "the receiver API's answer is not JSON",
        _ => unreachable!("{side} {name}"),
    }
}

fn case(side: &'static str, name: &str, gateway: &'static str, receiver: &'static str) -> Case {
    Case {
        name: Box::leak(format!("{side} {name}").into_boxed_str()),
        needle: needle(side, name),
        gateway,
        receiver,
        submit: Answer::Accept,
        list: Answer::Accept,
    }
}

/// Every bad answer, for every place one can come from.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for gateway in ["tw", "vg", "tx", "pl"] {
        for (name, submit) in bad_answers(200, MAX_RESPONSE_BYTES) {
            cases.push(Case {
                submit,
                ..case(gateway, name, gateway, "hook")
            });
        }
    }
    // The HTTP gateway takes a 2xx it can read whole as accepted whatever its
    // body says (see http_gateway.rs): its bad answers here are the non-2xx ones.
    for (name, submit) in bad_answers(500, MAX_RESPONSE_BYTES) {
        cases.push(Case {
            submit,
            ..case("api", name, "api", "hook")
        });
    }
    for (gateway, receiver, cap) in [
        ("tw", "twpoll", MAX_RESPONSE_BYTES),
        ("api", "own", MAX_LISTING_BYTES),
    ] {
        for (name, list) in bad_answers(200, cap) {
            cases.push(Case {
                list,
                ..case(receiver, name, gateway, receiver)
            });
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_provider_answers_end_runs_as_errors_with_short_clean_reasons() {
    // Each case has its own fake and config, so they run side by side.
    // A few at a time: each builds its own HTTP clients, which is not free
    // on a loaded machine, and a starved run would time out while submitting.
    let slots = Arc::new(tokio::sync::Semaphore::new(10));
    let handles: Vec<_> = cases()
        .into_iter()
        .map(|case| {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                run(case).await
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut count = 0;
    for handle in handles {
        let ran = handle.await.expect("no panic while running a probe");
        count += 1;
        if !matches!(ran.outcome, Outcome::Error | Outcome::Rejected) {
            problems.push(format!(
                "{}: outcome {:?}, want error or rejected ({})",
                ran.name, ran.outcome, ran.reason
            ));
        }
        if !ran.reason.contains(ran.needle) {
            problems.push(format!(
                "{}: want a reason saying `{}`, got {:?}",
                ran.name, ran.needle, ran.reason
            ));
        }
        if ran.reason.chars().count() > 300 {
            problems.push(format!(
                "{}: the reason must be short and say why: {:?}",
                ran.name, ran.reason
            ));
        }
        if ran.reason.contains("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        {
            problems.push(format!("{}: the reason dumps the body", ran.name));
        }
        if let Some(secret) = SECRETS.iter().find(|s| ran.reason.contains(*s)) {
            problems.push(format!(
                "{}: the reason shows the secret {secret}",
                ran.name
            ));
        }
        // A huge answer's reason says it was over the cap, which the
        // client can only know from the bytes the fake handed out; and it
        // closed the connection instead of waiting for the rest.
        if ran.name.contains("huge") && ran.huge.served == 0 {
            problems.push(format!("{}: no huge body was asked for", ran.name));
        }
        if ran.huge.open > 0 {
            problems.push(format!(
                "{}: {} of {} huge bodies' connections were left open: the client \
                 went on waiting past its cap",
                ran.name, ran.huge.open, ran.huge.served
            ));
        }
    }
    assert_eq!(count, 56, "every case ran");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
