//! Provider webhooks under `/hooks/`: inbound messages and status callbacks.
//!
//! Routes:
//! - `POST /hooks/twilio/inbound/{receiver}`: a Twilio inbound message;
//! - `POST /hooks/twilio/status/{gateway}?run={token}`: a Twilio status callback.
//!
//! Every request must carry a valid `X-Twilio-Signature` over our *public* URL
//! (the one the provider called) unless the receiver turned checks off:
//! unsigned or badly signed → 403, body over the limit → 413, malformed → 400.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use super::inbox::{Arrival, DeliveryStatus, Inbox, Receipt};
use crate::config::{Config, ReceiverConfig};
use crate::redact::{Secret, mask_number};
use crate::signing::verify_twilio_signature;

/// Largest webhook body accepted: Twilio's are well under 4 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the webhook routes need: the inbox, the keys, and our public URL.
#[derive(Debug)]
pub struct Hooks {
    inbox: Arc<Inbox>,
    public_url: Url,
    receivers: HashMap<String, ReceiverKeys>,
    /// Twilio-style gateways' auth tokens, by gateway name.
    gateways: HashMap<String, Secret>,
    counters: Counters,
}

#[derive(Debug)]
struct ReceiverKeys {
    verify: bool,
    /// Tokens an inbound signature may be made with.
    tokens: Vec<Secret>,
}

/// Requests by result, for logs now and metrics later.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub forbidden: AtomicU64,
    pub malformed: AtomicU64,
    pub unmatched: AtomicU64,
}

impl Hooks {
    /// Builds the routes' state from the config. `public_url` is the URL the
    /// providers call, which is what their signatures cover.
    pub fn new(config: &Config, inbox: Arc<Inbox>, public_url: Url) -> Arc<Hooks> {
        let gateways: HashMap<String, Secret> = config
            .gateways
            .iter()
            .filter_map(|(name, g)| g.twilio_auth_token().map(|t| (name.clone(), t.clone())))
            .collect();
        let receivers = config
            .receivers
            .iter()
            .filter_map(|(name, r)| match r {
                ReceiverConfig::Webhook(w) => Some((name, w)),
                _ => None,
            })
            .map(|(name, w)| {
                let tokens = match &w.gateway {
                    Some(g) => gateways.get(g.get_ref()).cloned().into_iter().collect(),
                    None => gateways.values().cloned().collect(),
                };
                (
                    name.clone(),
                    ReceiverKeys {
                        verify: w.verify_signatures,
                        tokens,
                    },
                )
            })
            .collect();
        Arc::new(Hooks {
            inbox,
            public_url,
            receivers,
            gateways,
            counters: Counters::default(),
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The URL a provider should call for `path` (e.g. to configure a number's webhook).
    pub fn url_for(&self, path: &str) -> String {
        join_public(&self.public_url, path)
    }
}

/// `public_url` + a path (and query), keeping any path prefix of the public URL.
pub fn join_public(public_url: &Url, path_and_query: &str) -> String {
    format!(
        "{}{}",
        public_url.as_str().trim_end_matches('/'),
        path_and_query
    )
}

/// The webhook routes, ready to be served or merged into a bigger router.
pub fn router(hooks: Arc<Hooks>) -> Router {
    Router::new()
        .route("/hooks/twilio/inbound/{receiver}", post(twilio_inbound))
        .route("/hooks/twilio/status/{gateway}", post(twilio_status))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(hooks)
}

/// Twilio waits for TwiML; an empty `<Response/>` means "do not reply".
fn twiml_ok() -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
    )
        .into_response()
}

fn refuse(hooks: &Hooks, status: StatusCode, why: &str) -> Response {
    let counter = match status {
        StatusCode::FORBIDDEN => &hooks.counters.forbidden,
        StatusCode::NOT_FOUND => &hooks.counters.unmatched,
        _ => &hooks.counters.malformed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    warn!(status = status.as_u16(), "webhook refused: {why}");
    (status, why.to_string()).into_response()
}

/// Parses a form body; `None` if it is not UTF-8 form encoding.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks `X-Twilio-Signature` against each candidate token.
fn signed(
    hooks: &Hooks,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
    tokens: &[Secret],
) -> bool {
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let url = join_public(&hooks.public_url, path_and_query);
    tokens
        .iter()
        .any(|t| verify_twilio_signature(&url, params, t.expose(), signature))
}

async fn twilio_inbound(
    State(hooks): State<Arc<Hooks>>,
    Path(receiver): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let Some(keys) = hooks.receivers.get(&receiver) else {
        return refuse(&hooks, StatusCode::NOT_FOUND, "no such receiver");
    };
    let Some(params) = parse_form(&body) else {
        return refuse(&hooks, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    if keys.verify && !signed(&hooks, &uri, &headers, &params, &keys.tokens) {
        return refuse(
            &hooks,
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let (Some(text), Some(from)) = (field(&params, "Body"), field(&params, "From")) else {
        return refuse(
            &hooks,
            StatusCode::BAD_REQUEST,
            "inbound message lacks Body or From",
        );
    };
    hooks.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let arrival = Arrival {
        at,
        receiver: receiver.clone(),
        message_id: field(&params, "MessageSid").map(str::to_string),
    };
    let matched = hooks.inbox.arrival(text, arrival);
    debug!(%receiver, from = %mask_number(from), matched, "inbound message");
    twiml_ok()
}

async fn twilio_status(
    State(hooks): State<Arc<Hooks>>,
    Path(gateway): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let Some(token) = hooks.gateways.get(&gateway) else {
        return refuse(&hooks, StatusCode::NOT_FOUND, "no such gateway");
    };
    let Some(params) = parse_form(&body) else {
        return refuse(&hooks, StatusCode::BAD_REQUEST, "body is not a UTF-8 form");
    };
    if !signed(&hooks, &uri, &headers, &params, std::slice::from_ref(token)) {
        return refuse(
            &hooks,
            StatusCode::FORBIDDEN,
            "missing or invalid X-Twilio-Signature",
        );
    }
    let status = field(&params, "MessageStatus").or_else(|| field(&params, "SmsStatus"));
    let run = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "run")
            .map(|(_, v)| v.into_owned())
    });
    let (Some(status), Some(run)) = (status, run) else {
        return refuse(
            &hooks,
            StatusCode::BAD_REQUEST,
            "status callback lacks MessageStatus or the run parameter",
        );
    };
    hooks.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let receipt = Receipt {
        at,
        status: DeliveryStatus::parse(status),
        error_code: field(&params, "ErrorCode").map(str::to_string),
        message_id: field(&params, "MessageSid").map(str::to_string),
    };
    let matched = hooks.inbox.receipt(&run, receipt);
    debug!(%gateway, status, matched, "status callback");
    twiml_ok()
}
