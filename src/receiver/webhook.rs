//! Provider webhooks under `/hooks/`: the server side every provider's
//! routes share.
//!
//! Each provider defines its routes once, in its folder (`webhooks.rs`): a
//! [`Route`] names the path, which the router serves, which `validate`
//! prints and which a gateway's callback URLs are built from. The registry
//! ([`crate::providers`]) mounts them all here, under one body limit.
//!
//! A receiver serves the inbound route of its own gateway's provider only: a
//! receiver with no `gateway` serves only the JSON route of your own system,
//! which a receiver with a `json_secret` serves too. Every request must be
//! signed with the credentials of the receiver's own gateway (or of the
//! gateway named in the receipt route), never another's, so the in-process
//! mock's public token opens nothing but a mock's own receiver. Unsigned or
//! badly signed → 403, body over the limit → 413 (declared: before it is
//! read), malformed → 400, no such receiver or gateway for the route → 404.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use super::inbox::{Arrival, Inbox, Receipt};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::providers::{GatewayConfig, ReceiverConfig, WebhookReceiverConfig};

/// Largest webhook body accepted: providers' are well under 4 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// One webhook route: defined once, by its provider, and used to serve it,
/// to build the URLs given to the provider, and to print them.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// The label of `webhook_requests_total{route}`, e.g. "json".
    pub name: &'static str,
    /// The axum path, with one parameter: `{receiver}` or `{gateway}`.
    pub path: &'static str,
    /// What comes in there, as `validate` says it: "JSON inbound".
    pub what: &'static str,
}

impl Route {
    /// The path for receiver or gateway `name`.
    pub fn path_for(&self, name: &str) -> String {
        let start = self.path.find('{').unwrap_or(self.path.len());
        let end = self.path[start..]
            .find('}')
            .map_or(self.path.len(), |e| start + e + 1);
        format!("{}{name}{}", &self.path[..start], &self.path[end..])
    }

    /// The path up to its parameter: how a request path is told to be this route's.
    pub fn prefix(&self) -> &'static str {
        &self.path[..self.path.find('{').unwrap_or(self.path.len())]
    }
}

/// What the routes need: the inbox, the keys, and our public URL.
#[derive(Debug)]
pub struct Hooks {
    inbox: Arc<Inbox>,
    public_url: Url,
    receivers: HashMap<String, ReceiverKeys>,
    /// Each gateway's settings, by name: its credentials sign its callbacks.
    gateways: BTreeMap<String, GatewayConfig>,
    /// Every receiver's settings, by name, for routes of receivers that are
    /// not `kind = "webhook"` (a provider's own receiver kind).
    receiver_configs: BTreeMap<String, ReceiverConfig>,
    counters: Counters,
    metrics: Option<Arc<Metrics>>,
    /// For rate-limiting warnings: when the routes were built, and the
    /// second (counted from 1) of the last warning.
    started: std::time::Instant,
    last_warned: AtomicU64,
}

/// A webhook receiver as the routes see it.
#[derive(Debug)]
pub struct ReceiverKeys {
    /// The one provider route it serves.
    pub inbound: &'static Route,
    /// The gateway whose account owns the receiving number.
    pub gateway: Option<String>,
    pub settings: WebhookReceiverConfig,
}

impl ReceiverKeys {
    /// Whether signatures are checked (on unless the receiver turned them off).
    pub fn verify(&self) -> bool {
        self.settings.verify_signatures
    }
}

/// Requests by result, for logs now and metrics later.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub forbidden: AtomicU64,
    pub malformed: AtomicU64,
    /// Bodies over [`BODY_LIMIT`] (413).
    pub too_large: AtomicU64,
    pub unmatched: AtomicU64,
    /// Events taken before (a provider's retry, or a replay): answered 200
    /// so the sender stops retrying, and handed on to nothing.
    pub duplicate: AtomicU64,
}

/// Strings seen once each (nonces, event ids), a bounded FIFO: memory stays
/// bounded, and an entry is forgotten only after [`SeenOnce::KEPT`] newer ones.
#[derive(Debug, Default)]
pub struct SeenOnce {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenOnce {
    /// How many entries are remembered.
    pub const KEPT: usize = 10_000;

    /// Whether `id` is new (and now remembered).
    pub fn first_use(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        if self.order.len() >= Self::KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(id.to_string());
        true
    }
}

impl Hooks {
    /// Builds the routes' state from the config. `public_url` is the URL the
    /// providers call, which is what their signatures cover.
    pub fn new(config: &Config, inbox: Arc<Inbox>, public_url: Url) -> Arc<Hooks> {
        Hooks::with_metrics(config, inbox, public_url, None)
    }

    /// As [`Hooks::new`], counting requests in `webhook_requests_total` too.
    pub fn with_metrics(
        config: &Config,
        inbox: Arc<Inbox>,
        public_url: Url,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Hooks> {
        let receivers = config
            .receivers
            .iter()
            .filter_map(|(name, r)| match r {
                ReceiverConfig::Webhook(w) => Some((name, w)),
                _ => None,
            })
            .map(|(name, w)| {
                let gateway = w.gateway.as_ref().map(|g| g.get_ref().clone());
                let keys = ReceiverKeys {
                    inbound: crate::providers::inbound_route(&config.gateways, w),
                    gateway,
                    settings: w.clone(),
                };
                (name.clone(), keys)
            })
            .collect();
        for (name, receiver) in &config.receivers {
            if let Some(limit) = receiver.silence_limit() {
                inbox.watch_receiver(name, limit);
            }
        }
        Arc::new(Hooks {
            inbox,
            public_url,
            receivers,
            gateways: config.gateways.clone(),
            receiver_configs: config.receivers.clone(),
            counters: Counters::default(),
            metrics,
            started: std::time::Instant::now(),
            last_warned: AtomicU64::new(0),
        })
    }

    /// Receiver `name`, if it serves `route`.
    pub fn receiver(&self, name: &str, route: &Route) -> Option<&ReceiverKeys> {
        let json = crate::providers::json_route();
        self.receivers.get(name).filter(|keys| {
            keys.inbound == route || (route == json && keys.settings.json_secret.is_some())
        })
    }

    /// Receiver `name`'s settings, whatever its kind.
    pub fn receiver_config(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receiver_configs.get(name)
    }

    /// Whether event `id` of `route` is seen for the first time (and now
    /// remembered): a provider's retry of an event is taken once.
    pub fn first_delivery(&self, route: &Route, id: &str) -> bool {
        self.inbox
            .first_delivery(&format!("{}\u{0}{id}", route.name))
    }

    /// Answers an event taken before: 200, so the sender stops retrying, and
    /// counted (`webhook_requests_total{result="duplicate"}`).
    pub fn duplicate(&self, route: &Route) -> Response {
        self.counters.duplicate.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.webhook_request(route.name, "duplicate");
        }
        debug!(route = %route.name, "webhook event taken before: ignored");
        (StatusCode::OK, "event already taken").into_response()
    }

    /// Notes a sign of life from receiver `name` (a verified event).
    pub fn heard_from(&self, name: &str) {
        self.inbox.heard_from(name, Instant::now());
    }

    /// When receiver `name` last gave a sign of life (if it is watched).
    pub fn last_heard(&self, name: &str) -> Option<Instant> {
        self.inbox.last_heard(name)
    }

    /// Gateway `name`'s settings.
    pub fn gateway(&self, name: &str) -> Option<&GatewayConfig> {
        self.gateways.get(name)
    }

    /// The settings of the gateway whose account owns `receiver`'s number.
    pub fn gateway_of(&self, receiver: &ReceiverKeys) -> Option<&GatewayConfig> {
        receiver.gateway.as_deref().and_then(|g| self.gateway(g))
    }

    /// Hands an accepted inbound message to the inbox; how many runs it matched.
    pub fn arrived(
        &self,
        route: &Route,
        receiver: &str,
        text: &str,
        message_id: Option<&str>,
        at: Instant,
    ) -> usize {
        self.accepted(route);
        let arrival = Arrival {
            at,
            receiver: receiver.to_string(),
            message_id: message_id.map(str::to_string),
        };
        self.inbox.arrival(text, arrival)
    }

    /// Hands an accepted receipt to the run with token `run`; whether one waits.
    pub fn receipt(&self, route: &Route, run: &str, receipt: Receipt) -> bool {
        self.accepted(route);
        self.inbox.receipt(run, receipt)
    }

    /// Counts a request the route accepted.
    pub fn accepted(&self, route: &Route) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.webhook_request(route.name, "accepted");
        }
    }

    /// Refuses a request: counted, logged (at most one warning a second),
    /// answered with `status` and `why`.
    pub fn refuse(&self, route: &Route, status: StatusCode, why: &str) -> Response {
        let (counter, result) = match status {
            StatusCode::FORBIDDEN => (&self.counters.forbidden, "forbidden"),
            StatusCode::NOT_FOUND => (&self.counters.unmatched, "not_found"),
            StatusCode::PAYLOAD_TOO_LARGE => (&self.counters.too_large, "too_large"),
            _ => (&self.counters.malformed, "malformed"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.webhook_request(route.name, result);
        }
        // A refusal is worth a warning (a wrong public_url makes every callback
        // fail), but a flood of them must not become a flood of log lines: one a
        // second at most, the rest at debug; the metric counts them all.
        let second = self.started.elapsed().as_secs() + 1;
        let route = route.name;
        if self.last_warned.fetch_max(second, Ordering::Relaxed) < second {
            warn!(%route, status = status.as_u16(), "webhook refused: {why} (at most one such warning a second)");
        } else {
            debug!(%route, status = status.as_u16(), "webhook refused: {why}");
        }
        (status, why.to_string()).into_response()
    }

    /// The body, or the refusal of one that could not be read (too large).
    pub fn body(
        &self,
        route: &Route,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Bytes, Box<Response>> {
        body.map_err(|e| Box::new(self.refuse(route, e.status(), &e.body_text())))
    }

    /// The URL the provider called for `uri`: what its signature covers.
    pub fn called_url(&self, uri: &Uri) -> String {
        let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        join_public(&self.public_url, path_and_query)
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
    let counting = Arc::clone(&hooks);
    let routes = crate::providers::webhook_router(hooks);
    crate::server::limit_body(routes, BODY_LIMIT, move |path| {
        counting.counters.too_large.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &counting.metrics {
            m.webhook_request(route_name(path), "too_large");
        }
    })
}

/// The route label of a request path, for a refusal made before routing.
fn route_name(path: &str) -> &'static str {
    // The longest prefix: one route's may extend another's.
    crate::providers::ROUTES
        .iter()
        .filter(|r| path.starts_with(r.prefix()))
        .max_by_key(|r| r.prefix().len())
        .map_or("other", |r| r.name)
}

/// The `run` query parameter our callback URLs carry: the run's token.
pub fn run_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "run")
        .map(|(_, v)| v.into_owned())
}

/// Parses a form body; `None` if it is not UTF-8 form encoding.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    std::str::from_utf8(body).ok()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_fills_in_its_one_parameter() {
        let route = Route {
            name: "x",
            path: "/hooks/x/inbound/{receiver}",
            what: "X inbound",
        };
        assert_eq!(route.path_for("inbox"), "/hooks/x/inbound/inbox");
        assert_eq!(route.prefix(), "/hooks/x/inbound/");
    }

    #[test]
    fn every_path_is_told_by_its_own_route() {
        for route in crate::providers::ROUTES {
            assert_eq!(route_name(&route.path_for("x")), route.name);
        }
        assert_eq!(route_name("/elsewhere"), "other");
    }

    #[test]
    fn seen_once_forgets_only_the_oldest() {
        let mut seen = SeenOnce::default();
        assert!(seen.first_use("a"));
        assert!(!seen.first_use("a"));
        for i in 0..SeenOnce::KEPT {
            assert!(seen.first_use(&i.to_string()));
        }
        assert!(seen.first_use("a"), "the oldest is forgotten first");
        assert!(!seen.first_use(&(SeenOnce::KEPT - 1).to_string()));
        assert_eq!(seen.order.len(), SeenOnce::KEPT);
    }
}
