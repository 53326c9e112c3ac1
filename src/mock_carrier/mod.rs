//! The mock SMS carrier, in-process or standalone: each provider's API as
//! that provider's folder emulates it, around one engine.
//!
//! It exists so the whole probe loop (submit, delivery receipt, arrival) can
//! run offline: in tests, in a user's CI, and on a first `check` before any
//! real credentials exist. Each provider's `mock.rs` (mounted through the
//! registry, [`crate::providers`]) speaks its wire format closely enough for
//! the provider's own SDK, with its own copy of the codes and shapes; the
//! engine here delivers after a configurable (seeded) latency with
//! sub-millisecond accuracy, has each callback signed the way its provider
//! signs it, can "own" numbers so that messages sent to them come back as
//! inbound messages, and fails on demand (seeded faults, set in config or at
//! run time through an admin API).
//!
//! Layout: [`latency`] (latency models and the seeded PRNG), `timer` (the
//! precise sleep deliveries wait on), `admin` (the `/_mock/` routes),
//! [`faults`] (injected failures), `delivery` (a message's lifecycle, its
//! receipts and inbound webhooks in its provider's format), [`standalone`]
//! (the `mock-carrier` command). This file holds the public API and the
//! state the others and the providers' emulations share.

pub mod faults;
pub mod latency;
pub mod standalone;

mod admin;
pub(crate) mod delivery;
mod timer;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::serve::ListenerExt as _;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::providers::{MockAccounts, MockState};
use crate::redact::Secret;

pub use crate::providers::InboundFormat;
pub use faults::{CodeFault, ErrorBurst, FaultError, Faults, Outage, RateLimit};
pub use latency::LatencyModel;
pub use standalone::{StandaloneArgs, run_standalone};

use faults::{FaultState, MessageFaults, SubmitFault};
use latency::Rng;

/// How long a graceful shutdown may wait for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the listener has no local address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("cannot set up the HTTP client for callbacks: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("invalid {flag}: {message}")]
    InvalidArgument { flag: &'static str, message: String },
    #[error("invalid mock carrier configuration: {0}")]
    InvalidConfig(String),
    #[error("the mock carrier's server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot wait for a shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct MockConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    /// Latency for messages to numbers without their own model.
    pub latency: LatencyModel,
    pub seed: u64,
    /// Behaviour by E.164 number, for messages sent *to* that number.
    pub numbers: BTreeMap<String, NumberConfig>,
    /// The accounts of the other providers' APIs the mock speaks (the first
    /// account is `account_sid` and `auth_token`).
    pub accounts: MockAccounts,
    /// Faults in force from the start; the admin API can change them.
    pub faults: Faults,
    /// When set, the admin API (`/_mock/...`) needs it as a bearer token.
    pub admin_token: Option<Secret>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            account_sid: DEFAULT_ACCOUNT_SID.to_string(),
            auth_token: Secret::new(DEFAULT_AUTH_TOKEN),
            latency: LatencyModel::default(),
            seed: 0,
            numbers: BTreeMap::new(),
            accounts: MockAccounts::default(),
            faults: Faults::default(),
            admin_token: None,
        }
    }
}

pub(crate) const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
pub(crate) const DEFAULT_AUTH_TOKEN: &str = "mock-auth-token";
/// Per-number behaviour, as embedded in the main config under
/// `[gateways.NAME.numbers."+15005550199"]`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    /// Overrides the global latency for messages to this number.
    pub latency: Option<LatencyModel>,
    /// Accepted, queued and sent, then silence: no receipt, no arrival.
    #[serde(default)]
    pub drop: bool,
    /// After the latency the message becomes `undelivered` with this error
    /// code (e.g. 30003), and never arrives.
    pub fail: Option<u32>,
    /// Messages to this number also arrive as inbound messages (listable).
    #[serde(default)]
    pub owned: bool,
    /// Where to POST the signed inbound-message webhook; implies `owned`.
    pub inbound_url: Option<String>,
    /// The inbound webhook's format. By default it follows the API the
    /// message was sent through, as a test of one provider expects.
    pub inbound_format: Option<InboundFormat>,
    /// The receipt says delivered, but the message never arrives.
    #[serde(default)]
    pub fake_dlr: bool,
    /// Extra copies of each delivered message the owned number receives.
    #[serde(default)]
    pub duplicates: u32,
    /// Extra deliveries of each inbound webhook, unchanged (the same
    /// event, the same id), as a provider re-sends an event whose answer it
    /// did not see.
    #[serde(default)]
    pub redeliveries: u32,
}

impl NumberConfig {
    pub(crate) fn is_owned(&self) -> bool {
        self.owned || self.inbound_url.is_some()
    }

    fn validate(&self, number: &str) -> Result<(), String> {
        if !is_phone_number(number) {
            return Err(format!("`{number}` is not an E.164 phone number"));
        }
        if let Some(latency) = &self.latency {
            latency.validate().map_err(|e| format!("{number}: {e}"))?;
        }
        if let Some(url) = &self.inbound_url {
            check_http_url(url).map_err(|e| format!("{number}: inbound_url {e}"))?;
        }
        Ok(())
    }
}

/// E.164 give or take the `+`: what the mock accepts as a To or From.
pub(crate) fn is_phone_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    let shown = crate::redact::redact_url(s);
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        Ok(_) => Err(format!("`{shown}` is not an http(s) URL")),
        Err(e) => Err(format!("`{shown}` is not a URL: {e}")),
    }
}

/// The mock's entry point; see [`MockCarrier::start`].
pub struct MockCarrier;

impl MockCarrier {
    /// Serves the mock on an already-bound listener (tests bind 127.0.0.1:0).
    pub async fn start(
        config: MockConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<MockHandle, MockError> {
        validate(&config)?;
        let addr = listener.local_addr().map_err(MockError::LocalAddr)?;
        let http = crate::trust::build_or_plain(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent(concat!(
                    "sms-canary-mock-carrier/",
                    env!("CARGO_PKG_VERSION")
                ))
                // Callbacks mostly go to loopback or a local network; a proxy
                // from the environment would only get in the way.
                .no_proxy()
        })
        .map_err(MockError::HttpClient)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            admin_token: config.admin_token,
            accounts: config.accounts,
            latency: config.latency,
            numbers: RwLock::new(config.numbers),
            rng: Mutex::new(Rng::new(config.seed)),
            faults: Mutex::new(FaultState::new(config.faults, config.seed)),
            store: Mutex::new(Store::default()),
            state: MockState::default(),
            http,
            stopped: stop_rx.clone(),
        });
        let app = crate::providers::mock_router(shared.clone())
            .merge(admin::router(shared.clone()))
            .fallback(crate::providers::mock_not_found)
            .layer(axum::middleware::from_fn(stamp_request));
        let mut stop = stop_rx;
        // Small responses must leave at once, not wait on Nagle's algorithm:
        // submit latency is one of the phases a probe measures.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the handle is gone: stop as well.
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
        });
        tracing::debug!(%addr, "mock carrier started");
        Ok(MockHandle {
            addr,
            listeners: Mutex::default(),
            shared,
            stop: stop_tx,
            server: Some(server),
        })
    }
}

pub(crate) fn validate(config: &MockConfig) -> Result<(), MockError> {
    let sid = &config.account_sid;
    // Real sids are "AC" + 32 hex digits; anything that fits in a path segment will do.
    if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MockError::InvalidConfig(format!(
            "account sid `{sid}` must be letters and digits only (like AC + 32 hex digits)"
        )));
    }
    if config.auth_token.is_empty() {
        return Err(MockError::InvalidConfig("the auth token is empty".into()));
    }
    if config
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(MockError::InvalidConfig(
            "the admin token is empty (leave it out for an open admin API)".into(),
        ));
    }
    config
        .latency
        .validate()
        .map_err(MockError::InvalidConfig)?;
    config
        .accounts
        .validate()
        .map_err(MockError::InvalidConfig)?;
    config
        .faults
        .validate()
        .map_err(|e| MockError::InvalidConfig(e.to_string()))?;
    for (number, behaviour) in &config.numbers {
        behaviour
            .validate(number)
            .map_err(MockError::InvalidConfig)?;
    }
    Ok(())
}

/// A running mock. Dropping it stops the server and every pending delivery.
pub struct MockHandle {
    addr: SocketAddr,
    /// The protocols it serves besides HTTP, each on its own port.
    listeners: Mutex<Vec<(&'static str, SocketAddr)>>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl MockHandle {
    /// `http://IP:PORT`, to use as the base URL of every API it speaks.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it serves `protocol` (a provider's own, besides HTTP), if it does.
    pub fn listener(&self, protocol: &str) -> Option<SocketAddr> {
        lock(&self.listeners)
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    /// The protocols it serves besides HTTP, and where.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        lock(&self.listeners).clone()
    }

    /// Records that `protocol` is served at `addr`; false if it already was.
    pub(crate) fn add_listener(&self, protocol: &'static str, addr: SocketAddr) -> bool {
        let mut listeners = lock(&self.listeners);
        if listeners.iter().any(|(p, _)| *p == protocol) {
            return false;
        }
        listeners.push((protocol, addr));
        true
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The accounts of the APIs it speaks (e.g. to configure a gateway with
    /// their public keys).
    pub fn accounts(&self) -> &MockAccounts {
        &self.shared.accounts
    }

    /// Whether the admin API needs a token.
    pub fn has_admin_token(&self) -> bool {
        self.shared.admin_token.is_some()
    }

    /// Registers or replaces a number's behaviour; messages created from now
    /// on see it (messages already accepted keep the behaviour they had).
    pub fn set_number(&self, number: &str, behaviour: NumberConfig) {
        if let Err(e) = behaviour.validate(number) {
            tracing::warn!("mock carrier: ignoring number registration: {e}");
            return;
        }
        write(&self.shared.numbers).insert(number.to_string(), behaviour);
    }

    /// Replaces the faults in force, like `POST /_mock/faults`; invalid
    /// faults are logged and ignored (see [`MockHandle::try_set_faults`]).
    pub fn set_faults(&self, faults: Faults) {
        if let Err(e) = self.try_set_faults(faults) {
            tracing::warn!("mock carrier: ignoring faults: {e}");
        }
    }

    /// Replaces the faults in force, or says why they are invalid.
    pub fn try_set_faults(&self, faults: Faults) -> Result<(), FaultError> {
        faults.validate()?;
        lock(&self.shared.faults).set(faults);
        Ok(())
    }

    /// The faults in force now, with what is left of their counts.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).current()
    }

    /// Stops accepting requests, lets open ones finish (for a few seconds at
    /// most) and cancels pending deliveries.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("mock carrier server stopped with an error: {e}"),
                Ok(Err(e)) => tracing::warn!("mock carrier server task failed: {e}"),
                Err(_) => server.abort(),
            }
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// What the routes and the delivery tasks share.
pub(crate) struct Shared {
    pub(crate) account_sid: String,
    pub(crate) auth_token: Secret,
    pub(crate) admin_token: Option<Secret>,
    pub(crate) accounts: MockAccounts,
    latency: LatencyModel,
    numbers: RwLock<BTreeMap<String, NumberConfig>>,
    rng: Mutex<Rng>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) store: Mutex<Store>,
    /// What the providers' emulations keep besides messages (a credit).
    pub(crate) state: MockState,
    /// One client for every callback, so connections are pooled.
    pub(crate) http: reqwest::Client,
    /// Becomes true when the handle stops the mock.
    pub(crate) stopped: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn number(&self, number: &str) -> NumberConfig {
        read(&self.numbers).get(number).cloned().unwrap_or_default()
    }

    /// Draws in message order from one generator, so a seed replays.
    pub(crate) fn sample_latency(&self, behaviour: &NumberConfig) -> Duration {
        let model = behaviour.latency.as_ref().unwrap_or(&self.latency);
        model.sample(&mut lock(&self.rng))
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Whether a submit is refused by an outage, burst or rate limit.
    pub(crate) fn request_fault(&self) -> Option<SubmitFault> {
        lock(&self.faults).on_request()
    }

    /// Whether a valid submit is refused with a provider error code.
    pub(crate) fn code_fault(&self) -> Option<u32> {
        lock(&self.faults).on_valid_submit()
    }

    /// The fault decisions for a message just accepted.
    pub(crate) fn message_faults(&self) -> MessageFaults {
        lock(&self.faults).on_message()
    }

    /// Forgets every message and fault, and refills every credit.
    pub(crate) fn reset(&self) {
        self.store().clear();
        lock(&self.faults).set(Faults::default());
        self.state.reset();
    }
}

// A panic elsewhere while holding a lock must not take the mock down with it:
// the data under these locks stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    OutboundApi,
    Inbound,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::OutboundApi => "outbound-api",
            Direction::Inbound => "inbound",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Queued,
    Sent,
    Delivered,
    Undelivered,
    Received,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Undelivered => "undelivered",
            Status::Received => "received",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Position in the store; creation order, which is also list order.
    pub(crate) seq: usize,
    pub(crate) sid: String,
    /// The API it was submitted through (for inbound: its outbound's).
    pub(crate) api: InboundFormat,
    pub(crate) direction: Direction,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) body: String,
    pub(crate) status: Status,
    pub(crate) error_code: Option<u32>,
    pub(crate) date_created: DateTime<Utc>,
    pub(crate) date_updated: DateTime<Utc>,
    pub(crate) date_sent: Option<DateTime<Utc>>,
    /// Where the provider posts receipts for it (its status callback).
    pub(crate) status_callback: Option<String>,
    pub(crate) correlation_id: Option<String>,
    /// The client's own reference, echoed in answers and receipts.
    pub(crate) client_ref: Option<String>,
}

/// Every message the mock has seen, outbound and inbound, in creation order.
#[derive(Default)]
pub(crate) struct Store {
    messages: Vec<Message>,
    by_sid: HashMap<String, usize>,
}

impl Store {
    /// Stores `message` with its `seq` set, and returns that copy.
    pub(crate) fn insert(&mut self, mut message: Message) -> Message {
        message.seq = self.messages.len();
        self.by_sid.insert(message.sid.clone(), message.seq);
        self.messages.push(message.clone());
        message
    }

    pub(crate) fn get(&self, sid: &str) -> Option<&Message> {
        self.by_sid.get(sid).and_then(|&i| self.messages.get(i))
    }

    /// Applies `change` and returns the updated copy.
    pub(crate) fn update(
        &mut self,
        sid: &str,
        change: impl FnOnce(&mut Message),
    ) -> Option<Message> {
        let i = *self.by_sid.get(sid)?;
        let message = self.messages.get_mut(i)?;
        change(message);
        Some(message.clone())
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().rev()
    }

    /// Deliveries still pending for a cleared message find it gone and stop.
    pub(crate) fn clear(&mut self) {
        self.messages.clear();
        self.by_sid.clear();
    }
}

/// When the request reached us, before its body was read: the delivery
/// latency is measured from here.
#[derive(Clone, Copy)]
pub(crate) struct ReceivedAt(pub(crate) Instant);

impl ReceivedAt {
    pub(crate) fn of(request: &axum::extract::Request) -> Instant {
        request
            .extensions()
            .get::<ReceivedAt>()
            .map_or_else(Instant::now, |r| r.0)
    }
}

const CORRELATION_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-correlation-id");

/// Stamps the arrival time and echoes `X-Correlation-ID`, so a probe's id
/// shows up on both sides of every exchange.
async fn stamp_request(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.extensions_mut().insert(ReceivedAt(Instant::now()));
    let correlation = request.headers().get(&CORRELATION_HEADER).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = correlation {
        response.headers_mut().insert(CORRELATION_HEADER, id);
    }
    response
}

/// The `X-Correlation-ID` a request carries.
pub(crate) fn correlation_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_config_from_toml() {
        let n: NumberConfig = toml::from_str(
            r#"
            latency = { uniform = ["10ms", "20ms"] }
            fail = 30003
            inbound_url = "http://127.0.0.1:9187/hooks/json/inbox"
            "#,
        )
        .unwrap();
        assert_eq!(n.fail, Some(30003));
        assert!(!n.drop && !n.owned && n.is_owned());
        assert_eq!(
            n.latency,
            Some(LatencyModel::Uniform {
                min: Duration::from_millis(10),
                max: Duration::from_millis(20)
            })
        );
        let e = toml::from_str::<NumberConfig>("dropped = true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `dropped`"), "{e}");
        assert_eq!(
            toml::from_str::<NumberConfig>("").unwrap(),
            NumberConfig::default()
        );
        let n: NumberConfig = toml::from_str(
            r#"
            fake_dlr = true
            duplicates = 2
            "#,
        )
        .unwrap();
        assert!(n.fake_dlr);
        assert_eq!(n.duplicates, 2);
        for api in InboundFormat::ALL {
            let n: NumberConfig =
                toml::from_str(&format!("inbound_format = \"{}\"", api.as_str())).unwrap();
            assert_eq!(n.inbound_format, Some(*api));
        }
        assert!(toml::from_str::<NumberConfig>("inbound_format = \"pigeon\"").is_err());
    }

    #[test]
    fn phone_numbers() {
        assert!(is_phone_number("+15005550006"));
        assert!(is_phone_number("15005550006"));
        assert!(!is_phone_number("+0123"));
        assert!(!is_phone_number("+1"));
        assert!(!is_phone_number("+1500555000612345"));
        assert!(!is_phone_number("+1 500 555"));
        assert!(!is_phone_number("hello"));
    }

    #[test]
    fn default_config_is_valid() {
        let c = MockConfig::default();
        assert_eq!(c.account_sid, format!("AC{}", "0".repeat(32)));
        assert_eq!(c.auth_token.expose(), "mock-auth-token");
        assert!(validate(&c).is_ok());
        let mut bad = c.clone();
        bad.numbers.insert("nope".into(), NumberConfig::default());
        assert!(validate(&bad).is_err());
        let mut bad = c.clone();
        bad.faults.fake_dlr_rate = 2.0;
        let e = validate(&bad).unwrap_err().to_string();
        assert!(e.contains("fake_dlr_rate"), "{e}");
    }
}
