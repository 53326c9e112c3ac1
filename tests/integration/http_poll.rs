//! The `kind = "http-poll"` receiver against a small axum app standing in for
//! a user's inbound-message API: what the request carries (encoded number and
//! time, headers), how messages are found by JSONPath, how failures are
//! classified, and the poll loop handing a message to its run exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::TimeZone;
use sms_canary::config::{Config, E164, ReceiverConfig};
use sms_canary::gateway::ErrorClass;
use sms_canary::providers::http::poll::HttpPoller;
use sms_canary::receiver::poll::{Poller, Watch, watch};
use sms_canary::receiver::{Event, Inbox};

/// The fake API's answer to the n-th request (counting from 1).
type Answer = dyn Fn(usize) -> (u16, String) + Send + Sync;

#[derive(Clone)]
struct Api {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(Uri, HeaderMap)>>>,
    answer: Arc<Answer>,
}

impl Api {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> (Uri, HeaderMap) {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

async fn answer(State(api): State<Api>, uri: Uri, headers: HeaderMap) -> Response {
    api.seen.lock().unwrap().push((uri, headers));
    let n = api.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let (status, body) = (api.answer)(n);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

async fn api(
    answer_with: impl Fn(usize) -> (u16, String) + Send + Sync + 'static,
) -> (Api, String) {
    let api = Api {
        calls: Arc::default(),
        seen: Arc::default(),
        answer: Arc::new(answer_with),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(answer).with_state(api.clone());
    tokio::spawn(axum::serve(listener, app).into_future());
    (api, base)
}

/// Loads `[receivers.poll]` (kind = "http-poll", then `table`) through the
/// main config loader and builds the poller.
fn poller(table: &str) -> HttpPoller {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let main =
        format!("[receivers.poll]\nkind = \"http-poll\"\n{table}\n\n[canary]\nprobes = []\n");
    std::fs::write(&path, main).unwrap();
    let config = Config::load_with_env(&path, &|v| {
        (v == "INBOX_TOKEN").then(|| "inbox-secret".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(ReceiverConfig::HttpPoll(http)) = config.receivers.get("poll") else {
        panic!("expected an http-poll receiver");
    };
    HttpPoller::new(http).expect("poller builds")
}

fn watch_for() -> Watch {
    Watch {
        to: E164::parse("+15005550100").unwrap(),
        since: chrono::Utc
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .single()
            .unwrap(),
        correlation_id: "01HZY3Q1S8W7V6T5R4P3N2M1K0".to_string(),
    }
}

fn ok(body: &str) -> (u16, String) {
    (200, body.to_string())
}

#[tokio::test]
async fn the_number_and_time_reach_the_api_encoded() {
    let (api, base) = api(|_| ok("[]")).await;
    let p = poller(&format!(
        r#"url = "{base}/inbound/{{{{to}}}}?since={{{{since}}}}&t={{{{since_unix}}}}&ref={{{{ correlation_id }}}}"
headers = {{ Authorization = "Bearer ${{INBOX_TOKEN}}" }}
messages = "$[*]""#
    ));
    assert!(p.poll(&watch_for()).await.unwrap().is_empty());
    let (uri, headers) = api.last();
    assert_eq!(uri.path(), "/inbound/%2B15005550100");
    assert!(
        uri.query()
            .unwrap()
            .contains("since=2024-01-02T03%3A04%3A05Z"),
        "{uri}"
    );
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap().as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        query,
        [
            ("since".to_string(), "2024-01-02T03:04:05Z".to_string()),
            ("t".to_string(), "1704164645".to_string()),
            ("ref".to_string(), "01HZY3Q1S8W7V6T5R4P3N2M1K0".to_string()),
        ]
    );
    assert_eq!(headers["authorization"], "Bearer inbox-secret");
    assert_eq!(headers["x-correlation-id"], "01HZY3Q1S8W7V6T5R4P3N2M1K0");
}

#[tokio::test]
async fn messages_are_found_with_body_and_id_paths() {
    let (_api, base) = api(|_| {
        ok(r#"{"data":{"messages":[
            {"id":"in-1","content":{"text":"first abcdefghjk"}},
            {"id":42,"content":{"text":"second"}},
            {"id":"in-3","content":{}},
            {"content":{"text":"no id"}}
        ]}}"#)
    })
    .await;
    let p = poller(&format!(
        "url = \"{base}/in?to={{{{to}}}}\"\nmessages = \"$.data.messages[*]\"\n\
         body = \"$.content.text\"\nid = \"$.id\""
    ));
    let got = p.poll(&watch_for()).await.unwrap();
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|m| (m.id.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(pairs[..2], [("in-1", "first abcdefghjk"), ("42", "second")]);
    // A node without an id still counts, with an id derived from its text.
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[2].1, "no id");
    assert!(!pairs[2].0.is_empty());
}

#[tokio::test]
async fn bare_texts_get_ids_that_are_stable_across_polls() {
    let (_api, base) = api(|n| {
        if n == 1 {
            ok(r#"{"inbound":["hello abcdefghjk","other"]}"#)
        } else {
            ok(r#"{"inbound":["newer","other","hello abcdefghjk"]}"#)
        }
    })
    .await;
    let p = poller(&format!(
        "url = \"{base}/in?to={{{{to}}}}\"\nmessages = \"$.inbound[*]\""
    ));
    let first = p.poll(&watch_for()).await.unwrap();
    let second = p.poll(&watch_for()).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 3);
    for m in &first {
        let again = second.iter().find(|s| s.body == m.body).unwrap();
        assert_eq!(again.id, m.id);
    }
    assert_ne!(first[0].id, first[1].id);
}

#[tokio::test]
async fn failures_are_classified() {
    for (status, body, class, words) in [
        (401, "{}", ErrorClass::Permanent, "credentials"),
        (403, "{}", ErrorClass::Permanent, "credentials"),
        (404, "{}", ErrorClass::Permanent, "url"),
        (503, "busy", ErrorClass::Transient, "HTTP 503"),
        (429, "", ErrorClass::Transient, "HTTP 429"),
        (
            200,
            "<html>maintenance</html>",
            ErrorClass::Transient,
            "maintenance",
        ),
        (200, "{\"messages\":[", ErrorClass::Transient, "not JSON"),
    ] {
        let (_api, base) = api(move |_| (status, body.to_string())).await;
        let p = poller(&format!(
            "url = \"{base}/in?to={{{{to}}}}\"\nmessages = \"$.messages[*]\""
        ));
        let e = p.poll(&watch_for()).await.unwrap_err();
        assert_eq!(e.class, class, "HTTP {status} {body}: {e}");
        assert!(e.reason.contains(words), "HTTP {status} {body}: {e}");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = poller(&format!(
        "url = \"http://{addr}/in?to={{{{to}}}}\"\nmessages = \"$.messages[*]\""
    ));
    let e = p.poll(&watch_for()).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
}

#[tokio::test]
async fn the_poll_loop_hands_a_message_on_once() {
    const TOKEN: &str = "abcdefghjk";
    let (api, base) = api(|n| {
        if n <= 2 {
            ok(r#"{"messages":[{"sid":"old","body":"someone else mnpqrstvwx"}]}"#)
        } else {
            ok(&format!(
                r#"{{"messages":[{{"sid":"old","body":"someone else mnpqrstvwx"}},{{"sid":"new","body":"sms-canary probe {TOKEN}"}}]}}"#
            ))
        }
    })
    .await;
    let p = poller(&format!(
        "url = \"{base}/in?to={{{{to}}}}\"\nmessages = \"$.messages[*]\"\n\
         body = \"$.body\"\nid = \"$.sid\"\ninterval = \"20ms\""
    ));
    assert_eq!(p.interval(), Duration::from_millis(20));

    let inbox = Inbox::new();
    let mut waiter = inbox.register(TOKEN);
    let looping = {
        let inbox = Arc::clone(&inbox);
        tokio::spawn(async move { watch(&p, &watch_for(), &inbox, "poll").await })
    };

    let event = tokio::time::timeout(Duration::from_secs(5), waiter.recv())
        .await
        .expect("arrival within 5s");
    let Some(Event::Arrival(arrival)) = event else {
        panic!("expected an arrival, got {event:?}");
    };
    assert_eq!(arrival.receiver, "poll");
    assert_eq!(arrival.message_id.as_deref(), Some("new"));
    assert!(api.calls() >= 3);

    // Several more polls list the message again: it is not handed on again.
    let seen_at = api.calls();
    tokio::time::timeout(Duration::from_secs(5), async {
        while api.calls() < seen_at + 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the loop keeps polling");
    assert!(waiter.try_recv().is_none(), "handed on twice");
    // The other message was seen once as a stranger, not once per poll.
    assert_eq!(inbox.strangers(), 1);
    looping.abort();
}

#[tokio::test]
async fn the_poll_loop_stops_on_a_permanent_error() {
    let (_api, base) = api(|n| {
        if n == 1 {
            (503, String::new())
        } else {
            (401, String::new())
        }
    })
    .await;
    let p = poller(&format!(
        "url = \"{base}/in?to={{{{to}}}}\"\nmessages = \"$[*]\"\ninterval = \"20ms\""
    ));
    let inbox = Inbox::new();
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        watch(&p, &watch_for(), &inbox, "poll"),
    )
    .await
    .expect("the loop ends");
    assert_eq!(e.class, ErrorClass::Permanent);
}
