//! The configuration: one main TOML file plus one file per probe.
//!
//! Loading goes: parse (keeping every value's position) → expand `${VAR}` in
//! strings → deserialize with unknown keys rejected → apply `[defaults]` to each
//! probe → check cross-references. Every problem is reported, not just the
//! first, and each names its file, line and column.

mod expand;
pub mod probe_files;
pub mod reference;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use url::Url;

pub use expand::{ExpandError, expand};
pub use values::{E164, FlexBool, HumanDuration, JsonPathExpr, parse_duration};

use crate::mock_carrier::{Faults, LatencyModel, NumberConfig};
use crate::redact::Secret;
use crate::schedule::Schedule;
use crate::signing::VonageMethod;

/// The body sent when a probe sets none: the token is what the receiver matches.
pub const DEFAULT_BODY: &str = "sms-canary {probe} {token}";
/// Twilio's production API; `base_url` overrides it (e.g. to point at a mock).
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";
/// Vonage's SMS API.
pub const VONAGE_BASE_URL: &str = "https://rest.nexmo.com";

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main config file, as given.
    pub path: PathBuf,
    pub canary: Canary,
    pub defaults: Defaults,
    pub gateways: BTreeMap<String, GatewayConfig>,
    pub receivers: BTreeMap<String, ReceiverConfig>,
    /// Alert channels by name.
    pub alerts: BTreeMap<String, AlertConfig>,
    /// Every probe, sorted by name, with defaults applied.
    pub probes: Vec<Probe>,
}

impl Config {
    /// Where the canary's own alerts go: `[canary] alerts`, else every
    /// channel an enabled probe notifies, so whoever hears about a probe
    /// also hears when the canary stops checking it.
    pub fn canary_channels(&self) -> Vec<String> {
        match &self.canary.alerts {
            Some(channels) => channels.clone(),
            None => {
                let used: std::collections::BTreeSet<&String> = self
                    .probes
                    .iter()
                    .filter(|p| p.enabled)
                    .flat_map(|p| &p.alerts)
                    .collect();
                used.into_iter().cloned().collect()
            }
        }
    }
}

/// `[canary]`: settings of this sms-canary instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Canary {
    /// Where the state store lives; relative paths are relative to the config file.
    pub state_dir: PathBuf,
    /// The public listener: webhooks (`/hooks/...`) and nothing else. The
    /// one address meant to be reachable from the internet.
    pub listen: SocketAddr,
    /// The daemon's admin listener: `/metrics`, `/healthz`, `/readyz` and the
    /// run API. Keep it off the internet.
    pub admin_listen: SocketAddr,
    /// Host names (with or without a port) the run API answers to besides
    /// IP addresses and `localhost`, e.g. the name a reverse proxy forwards.
    pub admin_hosts: Vec<String>,
    /// How providers reach our webhooks. Defaults to `http://` + the bound listen address.
    #[serde(deserialize_with = "values::option_url")]
    pub public_url: Option<Url>,
    /// Label on metrics and alerts, so several instances can share one Alertmanager.
    pub instance: String,
    /// Globs of probe files, relative to the config file.
    pub probes: Vec<String>,
    /// Dead-man's switch: pinged (GET) after every cycle in which every run was good.
    pub heartbeat_url: Option<Secret>,
    /// Daemon: runs in flight at most.
    pub concurrency: usize,
    /// Daemon: the bearer token the run API requires of every caller. Unset,
    /// the run API refuses every request (403).
    pub api_token: Option<Secret>,
    /// Retries of alert notifications before they become dead letters.
    pub notify_retry: RetryPolicy,
    /// Channels for the canary's own alerts (the cost guard's budget spent,
    /// ...); unset, every channel an enabled probe notifies.
    pub alerts: Option<Vec<String>>,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            state_dir: PathBuf::from(".sms-canary"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9188)),
            admin_hosts: Vec::new(),
            public_url: None,
            instance: default_instance(),
            probes: vec!["probes/*.toml".to_string()],
            heartbeat_url: None,
            concurrency: 100,
            api_token: None,
            notify_retry: RetryPolicy {
                attempts: 10,
                initial: Duration::from_secs(5),
                factor: 3.0,
            },
            alerts: None,
        }
    }
}

impl Canary {
    /// The URL providers call: `public_url`, or `http://` + the address
    /// actually bound (which `listen = "…:0"` only knows once bound).
    pub fn public_url_for(&self, bound: SocketAddr) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            // A socket address always makes a valid http URL authority.
            Url::parse(&format!("http://{}", reachable(bound))).expect("socket address forms a URL")
        })
    }
}

/// The address a client on this host uses to reach a listener bound to
/// `bound`: an unspecified address (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match bound.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, bound.port()))
        }
        _ => bound,
    }
}

fn default_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_string())
}

/// `[defaults]`: what a probe gets for every setting it leaves out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// When the daemon runs probes: `every 5m` or a cron expression.
    #[serde(deserialize_with = "values::schedule")]
    pub schedule: Schedule,
    /// How long a run waits for its message before calling it lost.
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub timeout: Duration,
    /// Latency above this is `slow` (a warning).
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub threshold: Duration,
    /// Retries of transient submit errors.
    pub retry: RetryPolicy,
    /// Consecutive failed runs before an alert fires.
    pub failure_threshold: u32,
    /// Consecutive good runs before a firing alert resolves.
    pub success_threshold: u32,
    /// Re-notify this often while an alert fires; "0s" never.
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub reminder: Duration,
    /// Cost guard: messages per day across all probes.
    pub max_messages_per_day: u32,
    /// SMS body template: `{probe}`, `{token}` (required) and `{correlation_id}`.
    #[serde(deserialize_with = "values::duration::body")]
    pub body: String,
    /// Alert channels of probes that name none.
    pub alerts: Vec<String>,
    /// A permanent gateway refusal (`rejected`) fires at once.
    pub alert_on_permanent: bool,
    /// Links shown in alerts: templates with `{probe}` and `{correlation_id}`.
    #[serde(deserialize_with = "values::option_link_template")]
    pub runbook_url: Option<String>,
    #[serde(deserialize_with = "values::option_link_template")]
    pub dashboard_url: Option<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            schedule: Schedule::Every(Duration::from_secs(300)),
            timeout: Duration::from_secs(120),
            threshold: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            failure_threshold: 2,
            success_threshold: 1,
            reminder: Duration::from_secs(3600),
            max_messages_per_day: 500,
            body: DEFAULT_BODY.to_string(),
            alerts: Vec::new(),
            alert_on_permanent: true,
            runbook_url: None,
            dashboard_url: None,
        }
    }
}

/// Exponential backoff for transient submit errors, inside the run's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default, try_from = "RawRetry")]
pub struct RetryPolicy {
    /// Submit attempts in all, the first one included.
    pub attempts: u32,
    /// Wait before the second attempt.
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub initial: Duration,
    /// Each further wait is the previous one times this.
    pub factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial: Duration::from_secs(1),
            factor: 3.0,
        }
    }
}

/// `retry = {..}` as written; checked on the way into [`RetryPolicy`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(
        default = "default_initial",
        deserialize_with = "values::duration::deserialize"
    )]
    initial: Duration,
    #[serde(default = "default_factor")]
    factor: f64,
}

fn default_attempts() -> u32 {
    RetryPolicy::default().attempts
}
fn default_initial() -> Duration {
    RetryPolicy::default().initial
}
fn default_factor() -> f64 {
    RetryPolicy::default().factor
}

impl TryFrom<RawRetry> for RetryPolicy {
    type Error = String;

    fn try_from(r: RawRetry) -> Result<Self, String> {
        if r.attempts == 0 {
            return Err("retry: attempts must be at least 1 (the first try counts)".to_string());
        }
        if !(r.factor.is_finite() && r.factor >= 1.0) {
            return Err(format!(
                "retry: factor must be a number of at least 1.0, got {}",
                r.factor
            ));
        }
        Ok(RetryPolicy {
            attempts: r.attempts,
            initial: r.initial,
            factor: r.factor,
        })
    }
}

impl RetryPolicy {
    /// The wait before attempt `n + 1` (n counts from 1), before any Retry-After.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        self.initial.mul_f64(self.factor.powi(exp).min(1e6))
    }
}

/// `[gateways.NAME]`: where probes submit messages. One variant per `kind`.
#[derive(Debug, Clone)]
pub enum GatewayConfig {
    /// The bundled mock carrier, run in-process.
    Mock(MockGatewayConfig),
    /// Twilio's REST API (or anything speaking it, such as `sms-canary mock-carrier`).
    Twilio(TwilioGatewayConfig),
    /// Vonage's SMS API (`POST /sms/json`).
    Vonage(VonageGatewayConfig),
    /// Your own HTTP SMS API, described by templates and rules.
    Http(HttpGatewayConfig),
}

impl GatewayConfig {
    pub const KINDS: &'static [&'static str] = &["mock", "twilio", "vonage", "http"];

    pub fn kind(&self) -> &'static str {
        match self {
            GatewayConfig::Mock(_) => "mock",
            GatewayConfig::Twilio(_) => "twilio",
            GatewayConfig::Vonage(_) => "vonage",
            GatewayConfig::Http(_) => "http",
        }
    }

    /// The auth token that signs this gateway's Twilio-style callbacks, if any.
    pub fn twilio_auth_token(&self) -> Option<&Secret> {
        match self {
            GatewayConfig::Mock(m) => Some(&m.auth_token),
            GatewayConfig::Twilio(t) => Some(&t.auth_token),
            _ => None,
        }
    }

    /// The secret and method that sign this gateway's Vonage-style callbacks, if set.
    pub fn vonage_signature(&self) -> Option<(&Secret, VonageMethod)> {
        match self {
            GatewayConfig::Vonage(v) => {
                v.signature_secret.as_ref().map(|s| (s, v.signature_method))
            }
            _ => None,
        }
    }
}

/// `kind = "mock"`: the bundled mock carrier, started in-process on a loopback port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockGatewayConfig {
    #[serde(default = "mock_account_sid")]
    pub account_sid: String,
    #[serde(default = "mock_auth_token")]
    pub auth_token: Secret,
    /// Delivery latency: "800ms", or `{ uniform = [..] }`, `{ lognormal = {..} }`.
    #[serde(default = "mock_latency")]
    pub latency: LatencyModel,
    /// Seed of the latency model, so a run's latencies are reproducible.
    #[serde(default)]
    pub seed: u64,
    /// Per-number behaviour: latency, `drop`, `fail` (receipt error code),
    /// `fake_dlr`, `duplicates`.
    #[serde(default)]
    pub numbers: BTreeMap<E164, NumberConfig>,
    /// Injected failures: error bursts, rate limits, outages, provider codes,
    /// drop / duplicate / fake-receipt rates (see the mock carrier's docs).
    #[serde(default, deserialize_with = "valid_faults")]
    pub faults: Faults,
}

fn valid_faults<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Faults, D::Error> {
    let faults = Faults::deserialize(d)?;
    faults.validate().map_err(serde::de::Error::custom)?;
    Ok(faults)
}

fn mock_account_sid() -> String {
    crate::mock_carrier::MockConfig::default().account_sid
}
fn mock_auth_token() -> Secret {
    crate::mock_carrier::MockConfig::default().auth_token
}
fn mock_latency() -> LatencyModel {
    crate::mock_carrier::MockConfig::default().latency
}

/// `kind = "twilio"`: Twilio's Programmable Messaging REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioGatewayConfig {
    #[serde(deserialize_with = "values::twilio_account_sid")]
    pub account_sid: String,
    pub auth_token: Secret,
    #[serde(default = "twilio_base_url", deserialize_with = "values::url")]
    pub base_url: Url,
    /// Per-request timeout; a timeout is a transient error and is retried.
    #[serde(
        default = "request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

/// `kind = "vonage"`: Vonage's SMS API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageGatewayConfig {
    pub api_key: String,
    pub api_secret: Secret,
    #[serde(default = "vonage_base_url", deserialize_with = "values::url")]
    pub base_url: Url,
    /// The account's signature secret: when set, receipts and inbound messages
    /// must carry a valid `sig`.
    #[serde(default)]
    pub signature_secret: Option<Secret>,
    #[serde(default)]
    pub signature_method: VonageMethod,
    #[serde(
        default = "request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

fn vonage_base_url() -> Url {
    Url::parse(VONAGE_BASE_URL).expect("constant URL parses")
}

/// `kind = "http"`: your own SMS API.
///
/// Templates take `{{to}}`, `{{from}}`, `{{body}}` and `{{correlation_id}}`,
/// escaped for where they appear (URL, JSON string, form field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGatewayConfig {
    /// The submit URL (a template).
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    /// Request headers; values may be templates and are treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// A JSON body template (sent as `application/json` unless a header says otherwise).
    #[serde(default)]
    pub body: Option<String>,
    /// Form fields (templates), sent as `application/x-www-form-urlencoded`.
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
    /// Where the message id is in a successful response, e.g. "$.id".
    #[serde(default)]
    pub message_id: Option<JsonPathExpr>,
    /// Responses that mean "do not retry" (checked first).
    #[serde(default)]
    pub permanent: Vec<ResponseRule>,
    /// Responses that mean "retry".
    #[serde(default)]
    pub transient: Vec<ResponseRule>,
    /// A read-only URL `doctor` calls to check reachability and credentials.
    #[serde(default, deserialize_with = "values::option_url")]
    pub health_url: Option<Url>,
    #[serde(
        default = "request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
    Put,
}

/// Classifies a response: it matches when every condition it sets holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRule")]
pub struct ResponseRule {
    /// HTTP status code.
    pub status: Option<u16>,
    /// A JSONPath into the response body…
    pub json: Option<JsonPathExpr>,
    /// …and the value it must equal (if unset: the path must exist and not be null).
    pub equals: Option<serde_json::Value>,
    /// The plain-words reason reported when this rule matches.
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    status: Option<u16>,
    json: Option<JsonPathExpr>,
    equals: Option<serde_json::Value>,
    reason: Option<String>,
}

impl TryFrom<RawRule> for ResponseRule {
    type Error = String;

    fn try_from(r: RawRule) -> Result<Self, String> {
        if r.status.is_none() && r.json.is_none() {
            return Err("a rule needs `status`, `json` (with optional `equals`), or both".into());
        }
        if r.equals.is_some() && r.json.is_none() {
            return Err("`equals` needs `json`: the path whose value it compares".into());
        }
        Ok(ResponseRule {
            status: r.status,
            json: r.json,
            equals: r.equals,
            reason: r.reason,
        })
    }
}

fn twilio_base_url() -> Url {
    Url::parse(TWILIO_BASE_URL).expect("constant URL parses")
}
fn request_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `[receivers.NAME]`: where probes see their messages arrive.
#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    /// Provider webhooks posted to `{public_url}/hooks/...`.
    Webhook(WebhookReceiverConfig),
    /// Polls Twilio's message list: for cron and CI, where nothing reaches us.
    TwilioPoll(TwilioPollConfig),
    /// Polls your own API for inbound messages.
    HttpPoll(HttpPollConfig),
}

impl ReceiverConfig {
    pub const KINDS: &'static [&'static str] = &["webhook", "twilio-poll", "http-poll"];

    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Webhook(_) => "webhook",
            ReceiverConfig::TwilioPoll(_) => "twilio-poll",
            ReceiverConfig::HttpPoll(_) => "http-poll",
        }
    }

    /// True for receivers that need our webhook listener.
    pub fn is_webhook(&self) -> bool {
        matches!(self, ReceiverConfig::Webhook(_))
    }
}

/// `kind = "twilio-poll"`: lists messages to the probe's `to` number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioPollConfig {
    /// A `twilio` or `mock` gateway: the account that owns the receiving number.
    pub gateway: Spanned<String>,
    /// Time between polls; also the resolution of the measured latency.
    #[serde(
        default = "poll_interval",
        deserialize_with = "values::duration::deserialize"
    )]
    pub interval: Duration,
}

/// `kind = "http-poll"`: GETs your own API and finds messages by JSONPath.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPollConfig {
    /// URL template: `{{to}}`, `{{since}}` (RFC 3339), `{{since_unix}}`, `{{correlation_id}}`.
    pub url: String,
    /// Request headers (values are treated as secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Selects the messages in the response, e.g. "$.messages[*]".
    pub messages: JsonPathExpr,
    /// The text of one message, relative to it, e.g. "$.text". Unset: the
    /// selected values are the texts themselves.
    #[serde(default)]
    pub body: Option<JsonPathExpr>,
    /// A message's id, relative to it, so it is looked at once.
    #[serde(default)]
    pub id: Option<JsonPathExpr>,
    #[serde(
        default = "poll_interval",
        deserialize_with = "values::duration::deserialize"
    )]
    pub interval: Duration,
    #[serde(
        default = "request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

fn poll_interval() -> Duration {
    Duration::from_secs(2)
}

/// `kind = "webhook"`: inbound messages posted to us by the provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiverConfig {
    /// The gateway whose account owns the receiving number: it picks the one
    /// provider route served (Twilio for `twilio` and `mock`, Vonage for
    /// `vonage`) and only its credentials check inbound signatures. Unset:
    /// the receiver serves only the JSON route, signed with `json_secret`.
    #[serde(default)]
    pub gateway: Option<Spanned<String>>,
    /// Refuse unsigned or badly signed webhooks (403). On by default.
    #[serde(default = "yes")]
    pub verify_signatures: bool,
    /// Key of the generic JSON route's HMAC-SHA256 signature.
    #[serde(default)]
    pub json_secret: Option<Secret>,
    /// Header carrying the JSON route's signature (`sha256=<hex>`).
    #[serde(default = "json_signature_header")]
    pub json_signature_header: String,
    /// Where the message text is in a JSON webhook body.
    #[serde(default = "json_body_path")]
    pub json_body: JsonPathExpr,
}

fn json_signature_header() -> String {
    "X-Signature-256".to_string()
}

fn json_body_path() -> JsonPathExpr {
    JsonPathExpr::parse("$.body").expect("constant path parses")
}

fn yes() -> bool {
    true
}

/// `[alerts.NAME]`: where notifications go. One variant per `kind`.
#[derive(Debug, Clone)]
pub enum AlertConfig {
    Slack(SlackConfig),
    Email(EmailConfig),
    Webhook(WebhookAlertConfig),
    Alertmanager(AlertmanagerConfig),
}

impl AlertConfig {
    pub const KINDS: &'static [&'static str] = &["slack", "email", "webhook", "alertmanager"];

    pub fn kind(&self) -> &'static str {
        match self {
            AlertConfig::Slack(_) => "slack",
            AlertConfig::Email(_) => "email",
            AlertConfig::Webhook(_) => "webhook",
            AlertConfig::Alertmanager(_) => "alertmanager",
        }
    }
}

/// `kind = "slack"`: an incoming webhook, or a bot token and a channel
/// (Slack's `chat.postMessage`, which lets a resolve thread under the
/// notice that told the firing).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (it embeds a credential, so it is a secret).
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// A bot token (`xoxb-…`) with `chat:write`, instead of a webhook.
    #[serde(default)]
    pub bot_token: Option<Secret>,
    /// With `bot_token`: the channel to post to (`#ops` or its id).
    #[serde(default)]
    pub channel: Option<String>,
    /// Slack's Web API, for `bot_token` (a test points it at a local server).
    #[serde(default = "slack_api")]
    pub api_url: Url,
}

fn slack_api() -> Url {
    Url::parse("https://slack.com/api/").expect("constant URL parses")
}

/// `kind = "email"`: mail over SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host:port` (plain, or STARTTLS with `?tls=required`),
    /// `smtps://host:port` (TLS); credentials as `user:password@`.
    pub smtp_url: Secret,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "subject_prefix")]
    pub subject_prefix: String,
}

fn subject_prefix() -> String {
    "[sms-canary]".to_string()
}

/// `kind = "webhook"`: a JSON POST, optionally HMAC-SHA256 signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAlertConfig {
    #[serde(deserialize_with = "values::url")]
    pub url: Url,
    /// Signs the body: header `X-Signature-256: sha256=<hex>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// `kind = "alertmanager"`: Prometheus Alertmanager's API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    #[serde(deserialize_with = "values::url")]
    pub url: Url,
    /// Extra labels on every alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One probe, from its own file, with `[defaults]` applied.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    pub gateway: String,
    pub receiver: String,
    pub from: E164,
    pub to: E164,
    pub enabled: bool,
    pub schedule: Schedule,
    pub timeout: Duration,
    pub threshold: Duration,
    pub retry: RetryPolicy,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub reminder: Duration,
    pub body: String,
    /// Alert channels to notify.
    pub alerts: Vec<String>,
    /// The probe file names its channels itself (`alerts = []` included):
    /// an empty list is then meant, not forgotten.
    pub alerts_explicit: bool,
    pub alert_on_permanent: bool,
    /// Where to act on its alerts: link templates with `{probe}` and
    /// `{correlation_id}`, rendered by [`Probe::links`].
    pub runbook_url: Option<String>,
    pub dashboard_url: Option<String>,
}

impl Probe {
    /// The links its alerts carry, rendered for the run `correlation_id`.
    pub fn links(&self, correlation_id: &str) -> Vec<(&'static str, String)> {
        [
            ("Runbook", &self.runbook_url),
            ("Dashboard", &self.dashboard_url),
        ]
        .into_iter()
        .filter_map(|(label, template)| {
            let url = values::render_link(template.as_deref()?, &self.name, correlation_id);
            Some((label, url))
        })
        .collect()
    }

    /// An enabled probe whose alerts go nowhere without anyone having said so.
    pub fn alerts_forgotten(&self) -> bool {
        self.enabled && self.alerts.is_empty() && !self.alerts_explicit
    }
}

/// A probe file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: Spanned<String>,
    gateway: Spanned<String>,
    receiver: Spanned<String>,
    from: E164,
    to: E164,
    #[serde(default)]
    enabled: Option<FlexBool>,
    #[serde(default, deserialize_with = "values::option_schedule")]
    schedule: Option<Schedule>,
    #[serde(default)]
    timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    threshold: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    failure_threshold: Option<u32>,
    #[serde(default)]
    success_threshold: Option<u32>,
    #[serde(default)]
    reminder: Option<HumanDuration>,
    #[serde(default, deserialize_with = "values::duration::option::body")]
    body: Option<String>,
    #[serde(default)]
    alerts: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    alert_on_permanent: Option<bool>,
    #[serde(default, deserialize_with = "values::option_link_template")]
    runbook_url: Option<String>,
    #[serde(default, deserialize_with = "values::option_link_template")]
    dashboard_url: Option<String>,
}

/// The main file, less `[gateways]` and `[receivers]` (dispatched on `kind` by hand
/// so that errors inside them keep their positions).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMain {
    #[serde(default)]
    canary: Canary,
    #[serde(default)]
    defaults: Option<Spanned<Defaults>>,
}

/// A setting that deserialized but does not work, found by building what
/// uses it (templates, the mock carrier): `field` is the key to point at.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

/// One problem in the configuration, with where it is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", file.display())]
    At {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
}

/// Everything wrong with a configuration, one error a line.
#[derive(Debug, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors for one file, turning byte spans into line and column.
struct Sink<'a> {
    file: &'a Path,
    text: &'a str,
    errors: &'a mut Vec<ConfigError>,
}

impl Sink<'_> {
    fn at(&mut self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        let message = message.into();
        match span {
            Some(span) => {
                let (line, column) = line_col(self.text, span.start);
                self.errors.push(ConfigError::At {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    message,
                });
            }
            None => self.errors.push(ConfigError::File {
                file: self.file.to_path_buf(),
                message,
            }),
        }
    }

    fn toml(&mut self, e: toml::de::Error) {
        self.at(e.span(), de_message(&e));
    }
}

/// A deserialization error's message, with `{field}` (see
/// [`crate::redact::EMPTY_SECRET`]) replaced by the path of the key it is
/// about, which the TOML error knows but shows only in its long form.
fn de_message(e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    if !message.contains("{field}") {
        return message.to_string();
    }
    let mut bare = e.clone();
    bare.set_input(None);
    let long = bare.to_string();
    let path = long
        .lines()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or("this secret");
    message.replace("{field}", path)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Largest main config file read.
const MAX_MAIN_BYTES: u64 = 16 << 20;

/// Reads a config file; text that is not UTF-8 is refused at the first bad byte.
fn read_text(path: &Path, limit: u64) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let failed = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Bounded: the file may be a pipe (`--config <(...)`) or grow while read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() as u64 > limit {
        return Err(ConfigError::File {
            file: path.to_path_buf(),
            message: format!("larger than {limit} bytes: not a config file"),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        // The prefix up to the bad byte is valid UTF-8 by definition.
        let before = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let (line, column) = line_col(&before, valid);
        ConfigError::At {
            file: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8 text (save the file as UTF-8)".to_string(),
        }
    })
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Loads the config at `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Loads with an explicit environment, so tests need not touch the process's.
    pub fn load_with_env(path: &Path, env: Env<'_>) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let text = read_text(path, MAX_MAIN_BYTES).map_err(|e| ConfigErrors(vec![e]))?;
        let main = parse_main(path, &text, env, &mut errors);
        let Some((raw, gateways, receivers, alerts, declared)) = main else {
            return Err(ConfigErrors(errors));
        };
        let (defaults, defaults_span) = match raw.defaults {
            Some(d) => (d.get_ref().clone(), Some(d.span())),
            None => (Defaults::default(), None),
        };
        let mut config = Config {
            path: path.to_path_buf(),
            canary: raw.canary,
            defaults,
            gateways,
            receivers,
            alerts,
            probes: Vec::new(),
        };
        let base = path.parent().unwrap_or(Path::new(""));
        config.canary.state_dir = base.join(&config.canary.state_dir);
        {
            let mut sink = Sink {
                file: path,
                text: &text,
                errors: &mut errors,
            };
            check_canary(&config.canary, &declared, &mut sink);
            check_defaults(&config.defaults, defaults_span, &mut sink);
            check_receivers(&config, &declared, &mut sink);
        }
        config.probes = load_probes(&config, &declared, base, env, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }
}

type MainParts = (
    RawMain,
    BTreeMap<String, GatewayConfig>,
    BTreeMap<String, ReceiverConfig>,
    BTreeMap<String, AlertConfig>,
    Declared,
);

/// Every gateway and receiver name written in the file, including those that
/// failed to parse, so that one broken table does not also make every
/// reference to it an error.
#[derive(Debug, Default)]
struct Declared {
    gateways: BTreeSet<String>,
    receivers: BTreeSet<String>,
    alerts: BTreeSet<String>,
    /// Line and column of `[canary] probes`, for errors in its globs.
    probes_at: Option<(usize, usize)>,
    /// Where `[canary] admin_listen` is written.
    admin_listen_span: Option<std::ops::Range<usize>>,
}

fn parse_main(
    path: &Path,
    text: &str,
    env: Env<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<MainParts> {
    let mut sink = Sink {
        file: path,
        text,
        errors,
    };
    let mut root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    expand_table(root.get_mut(), env, &mut sink);
    if sink.errors.len() > before {
        return None;
    }
    let canary_key_at = |key: &str| match root.get_ref().get("canary").map(|c| c.get_ref()) {
        Some(DeValue::Table(canary)) => canary.get(key).map(|p| p.span()),
        _ => None,
    };
    let probes_at = canary_key_at("probes").map(|span| line_col(text, span.start));
    let canary_alerts_at = canary_key_at("alerts");
    let heartbeat_url_at = canary_key_at("heartbeat_url");
    let admin_listen_span = canary_key_at("admin_listen");
    let gateways_value = root.get_mut().remove("gateways");
    let receivers_value = root.get_mut().remove("receivers");
    let alerts_value = root.get_mut().remove("alerts");
    let raw = match RawMain::deserialize(toml::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            sink.toml(e);
            RawMain::default()
        }
    };
    let mut declared = Declared {
        probes_at,
        admin_listen_span,
        ..Declared::default()
    };
    let gateways = parse_kinds(
        gateways_value,
        "gateways",
        GatewayConfig::KINDS,
        &mut sink,
        &mut declared.gateways,
        |kind, value| {
            let de = ValueDeserializer::from(value);
            Ok(match kind {
                "mock" => GatewayConfig::Mock(MockGatewayConfig::deserialize(de)?),
                "twilio" => GatewayConfig::Twilio(TwilioGatewayConfig::deserialize(de)?),
                "vonage" => GatewayConfig::Vonage(VonageGatewayConfig::deserialize(de)?),
                _ => GatewayConfig::Http(HttpGatewayConfig::deserialize(de)?),
            })
        },
        |gateway| match gateway {
            GatewayConfig::Http(h) => crate::gateway::http::HttpGateway::check_config(h),
            GatewayConfig::Mock(m) => crate::gateway::mock::check_config(m),
            _ => Ok(()),
        },
    );
    let receivers = parse_kinds(
        receivers_value,
        "receivers",
        ReceiverConfig::KINDS,
        &mut sink,
        &mut declared.receivers,
        |kind, value| {
            let de = ValueDeserializer::from(value);
            Ok(match kind {
                "webhook" => ReceiverConfig::Webhook(WebhookReceiverConfig::deserialize(de)?),
                "twilio-poll" => ReceiverConfig::TwilioPoll(TwilioPollConfig::deserialize(de)?),
                _ => ReceiverConfig::HttpPoll(HttpPollConfig::deserialize(de)?),
            })
        },
        |receiver| match receiver {
            ReceiverConfig::HttpPoll(h) => crate::receiver::http_poll::HttpPoller::check_config(h),
            _ => Ok(()),
        },
    );
    let alerts = parse_kinds(
        alerts_value,
        "alerts",
        AlertConfig::KINDS,
        &mut sink,
        &mut declared.alerts,
        |kind, value| {
            let de = ValueDeserializer::from(value);
            Ok(match kind {
                "slack" => AlertConfig::Slack(SlackConfig::deserialize(de)?),
                "email" => AlertConfig::Email(EmailConfig::deserialize(de)?),
                "webhook" => AlertConfig::Webhook(WebhookAlertConfig::deserialize(de)?),
                _ => AlertConfig::Alertmanager(AlertmanagerConfig::deserialize(de)?),
            })
        },
        crate::alert::channel::check_config,
    );
    for name in &raw
        .defaults
        .as_ref()
        .map(|d| d.get_ref().alerts.clone())
        .unwrap_or_default()
    {
        if !declared.alerts.contains(name) {
            sink.at(
                raw.defaults.as_ref().map(|d| d.span()),
                format!(
                    "[defaults] alerts: no alert channel named `{name}` (known: {})",
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    if let Some(url) = &raw.canary.heartbeat_url {
        let usable = Url::parse(url.expose())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !usable {
            // The URL itself is not quoted: a ping URL is often a credential.
            sink.at(
                heartbeat_url_at,
                "[canary] heartbeat_url must be an http:// or https:// URL with a host",
            );
        }
    }
    for name in raw.canary.alerts.iter().flatten() {
        if !declared.alerts.contains(name) {
            sink.at(
                canary_alerts_at.clone(),
                format!(
                    "[canary] alerts: no alert channel named `{name}` (known: {})",
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    Some((raw, gateways, receivers, alerts, declared))
}

/// Parses `[SECTION.NAME]` tables whose `kind` picks the type to deserialize.
fn parse_kinds<T>(
    value: Option<Spanned<DeValue<'_>>>,
    section: &str,
    kinds: &[&str],
    sink: &mut Sink<'_>,
    declared: &mut BTreeSet<String>,
    build: impl Fn(&str, Spanned<DeValue<'_>>) -> Result<T, toml::de::Error>,
    check: impl Fn(&T) -> Result<(), Invalid>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        sink.at(
            Some(span),
            format!("`{section}` must be a table of named tables, e.g. [{section}.NAME]"),
        );
        return out;
    };
    for (name, entry) in table {
        let entry_span = entry.span();
        let name = name.into_inner().into_owned();
        declared.insert(name.clone());
        let DeValue::Table(mut fields) = entry.into_inner() else {
            sink.at(
                Some(entry_span),
                format!("`{section}.{name}` must be a table"),
            );
            continue;
        };
        let kind = match fields.remove("kind") {
            Some(kind) => match kind.get_ref().as_str() {
                Some(k) if kinds.contains(&k) => k.to_string(),
                _ => {
                    sink.at(
                        Some(kind.span()),
                        format!(
                            "`{section}.{name}`: unknown kind, expected one of: {}",
                            kinds.join(", ")
                        ),
                    );
                    continue;
                }
            },
            None => {
                sink.at(
                    Some(entry_span),
                    format!(
                        "`{section}.{name}`: missing `kind` (one of: {})",
                        kinds.join(", ")
                    ),
                );
                continue;
            }
        };
        let field_spans: BTreeMap<String, std::ops::Range<usize>> = fields
            .iter()
            .map(|(key, value)| (key.get_ref().to_string(), value.span()))
            .collect();
        match build(
            &kind,
            Spanned::new(entry_span.clone(), DeValue::Table(fields)),
        ) {
            Ok(parsed) => {
                if let Err(e) = check(&parsed) {
                    let span = field_spans.get(e.field).cloned().unwrap_or(entry_span);
                    sink.at(Some(span), format!("`{section}.{name}`: {}", e.message));
                }
                out.insert(name, parsed);
            }
            Err(e) => {
                let message = format!("`{section}.{name}`: {}", de_message(&e));
                sink.at(e.span(), message);
            }
        }
    }
    out
}

/// Expands `${VAR}` in every string of a parsed table, in place.
fn expand_table(table: &mut DeTable<'_>, env: Env<'_>, sink: &mut Sink<'_>) {
    for (_, value) in table.iter_mut() {
        expand_value(value, env, sink);
    }
}

fn expand_value(value: &mut Spanned<DeValue<'_>>, env: Env<'_>, sink: &mut Sink<'_>) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => match expand(s, env) {
            Ok(expanded) => *s = std::borrow::Cow::Owned(expanded),
            Err(e) => sink.at(Some(span), e.to_string()),
        },
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                expand_value(item, env, sink);
            }
        }
        DeValue::Table(t) => expand_table(t, env, sink),
        _ => {}
    }
}

fn check_canary(c: &Canary, declared: &Declared, sink: &mut Sink<'_>) {
    if c.admin_listen == c.listen && c.listen.port() != 0 {
        sink.at(
            declared.admin_listen_span.clone(),
            format!(
                "[canary] admin_listen must differ from listen ({}): the public listener serves only webhooks, the admin one /metrics, health and the run API",
                c.listen
            ),
        );
    }
}

fn check_defaults(d: &Defaults, span: Option<std::ops::Range<usize>>, sink: &mut Sink<'_>) {
    if d.timeout.is_zero() {
        sink.at(span.clone(), "[defaults] timeout must be greater than 0");
    }
    if d.threshold > d.timeout {
        sink.at(
            span,
            threshold_message("[defaults] ", d.threshold, d.timeout),
        );
    }
}

fn threshold_message(prefix: &str, threshold: Duration, timeout: Duration) -> String {
    format!(
        "{prefix}threshold ({}) exceeds timeout ({}): a message slower than the threshold would already count as lost",
        humantime::format_duration(threshold),
        humantime::format_duration(timeout)
    )
}

fn check_receivers(config: &Config, declared: &Declared, sink: &mut Sink<'_>) {
    for (name, receiver) in &config.receivers {
        // Which gateway kinds a receiver can be bound to, and what to do
        // when it is bound to another.
        type Fits = fn(&GatewayConfig) -> bool;
        let (gateway, wanted, fits, otherwise): (&Spanned<String>, Fits, &str, &str) =
            match receiver {
                ReceiverConfig::Webhook(w) => match &w.gateway {
                    Some(g) => (
                        g,
                        |g| {
                            g.twilio_auth_token().is_some() || matches!(g, GatewayConfig::Vonage(_))
                        },
                        "twilio, vonage or mock (whose signatures it checks)",
                        "for your own API's inbound messages, leave `gateway` out: the receiver then takes \
                     the JSON route, signed with `json_secret`",
                    ),
                    None => continue,
                },
                ReceiverConfig::TwilioPoll(p) => (
                    &p.gateway,
                    |g| g.twilio_auth_token().is_some(),
                    "twilio or mock (whose API it polls)",
                    "to poll your own API, use a receiver of kind = \"http-poll\"",
                ),
                ReceiverConfig::HttpPoll(_) => continue,
            };
        match config.gateways.get(gateway.get_ref()) {
            Some(g) if wanted(g) => {}
            Some(g) => sink.at(
                Some(gateway.span()),
                format!(
                    "receiver `{name}` ({}): gateway `{}` is of kind {}, which does not fit: \
                     a {} receiver needs a gateway of kind {fits}; {otherwise}",
                    receiver.kind(),
                    gateway.get_ref(),
                    g.kind(),
                    receiver.kind(),
                ),
            ),
            None if declared.gateways.contains(gateway.get_ref()) => {}
            None => sink.at(
                Some(gateway.span()),
                format!(
                    "receiver `{name}`: no gateway named `{}` (known: {})",
                    gateway.get_ref(),
                    known(config.gateways.keys())
                ),
            ),
        }
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

fn load_probes(
    config: &Config,
    declared: &Declared,
    base: &Path,
    env: Env<'_>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Probe> {
    let mut found = probe_files::Found::default();
    for pattern in &config.canary.probes {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        if let Err(e) = probe_files::find(&full, &mut found) {
            let message = format!("[canary] probes: bad glob \"{pattern}\": {e}");
            errors.push(match declared.probes_at {
                Some((line, column)) => ConfigError::At {
                    file: config.path.clone(),
                    line,
                    column,
                    message,
                },
                None => ConfigError::File {
                    file: config.path.clone(),
                    message,
                },
            });
        }
    }
    errors.extend(found.errors.into_iter().map(|e| ConfigError::File {
        file: e.path,
        message: e.message,
    }));
    let files: BTreeSet<PathBuf> = found.files.into_iter().collect();
    let mut probes: Vec<Probe> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match read_text(&file, probe_files::MAX_FILE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut sink = Sink {
            file: &file,
            text: &text,
            errors,
        };
        if let Some(probe) = parse_probe(&file, &text, config, declared, env, &mut sink, &seen) {
            seen.insert(probe.name.clone(), file.clone());
            probes.push(probe);
        }
    }
    probes.sort_by(|a, b| a.name.cmp(&b.name));
    probes
}

fn parse_probe(
    file: &Path,
    text: &str,
    config: &Config,
    declared: &Declared,
    env: Env<'_>,
    sink: &mut Sink<'_>,
    seen: &BTreeMap<String, PathBuf>,
) -> Option<Probe> {
    let mut root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    expand_table(root.get_mut(), env, sink);
    if sink.errors.len() > before {
        return None;
    }
    let raw = match RawProbe::deserialize(toml::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            sink.toml(e);
            return None;
        }
    };
    let before = sink.errors.len();
    let name = raw.name.get_ref().clone();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        sink.at(
            Some(raw.name.span()),
            format!(
                "probe name \"{name}\": use 1 to 64 of a-z, 0-9, `-` and `_` (it appears in URLs and metric labels)"
            ),
        );
    } else if let Some(other) = seen.get(&name) {
        sink.at(
            Some(raw.name.span()),
            format!("probe `{name}` is already defined in {}", other.display()),
        );
    }
    if !declared.gateways.contains(raw.gateway.get_ref()) {
        sink.at(
            Some(raw.gateway.span()),
            format!(
                "no gateway named `{}` (known: {})",
                raw.gateway.get_ref(),
                known(declared.gateways.iter())
            ),
        );
    }
    if !declared.receivers.contains(raw.receiver.get_ref()) {
        sink.at(
            Some(raw.receiver.span()),
            format!(
                "no receiver named `{}` (known: {})",
                raw.receiver.get_ref(),
                known(declared.receivers.iter())
            ),
        );
    }
    // The mock delivers to its own receiver only: any other refuses its
    // signature, so every run would end `lost`.
    if let (Some(GatewayConfig::Mock(_)), Some(ReceiverConfig::Webhook(w))) = (
        config.gateways.get(raw.gateway.get_ref()),
        config.receivers.get(raw.receiver.get_ref()),
    ) && w.gateway.as_ref().map(|g| g.get_ref()) != Some(raw.gateway.get_ref())
    {
        sink.at(
            Some(raw.receiver.span()),
            format!(
                "receiver `{receiver}` does not take mock `{gateway}`'s messages: a webhook receiver accepts only its own gateway's signed requests; set gateway = \"{gateway}\" in [receivers.{receiver}]",
                receiver = raw.receiver.get_ref(),
                gateway = raw.gateway.get_ref()
            ),
        );
    }
    let d = &config.defaults;
    let timeout = raw.timeout.as_ref().map_or(d.timeout, |t| t.get_ref().0);
    let threshold = raw
        .threshold
        .as_ref()
        .map_or(d.threshold, |t| t.get_ref().0);
    if timeout.is_zero() {
        sink.at(
            raw.timeout.as_ref().map(|t| t.span()),
            "timeout must be greater than 0",
        );
    }
    if threshold > timeout {
        // Point at whichever of the two this file sets; both may come from [defaults].
        let span = raw
            .threshold
            .as_ref()
            .or(raw.timeout.as_ref())
            .map_or(raw.name.span(), |s| s.span());
        sink.at(Some(span), threshold_message("", threshold, timeout));
    }
    if raw.from == raw.to {
        sink.at(
            Some(raw.name.span()),
            "`from` and `to` are the same number: the probe would text itself",
        );
    }
    let probe = Probe {
        name,
        file: file.to_path_buf(),
        gateway: raw.gateway.into_inner(),
        receiver: raw.receiver.into_inner(),
        from: raw.from,
        to: raw.to,
        enabled: raw.enabled.is_none_or(|b| b.0),
        schedule: raw.schedule.unwrap_or_else(|| d.schedule.clone()),
        timeout,
        threshold,
        retry: raw.retry.unwrap_or(d.retry),
        failure_threshold: raw.failure_threshold.unwrap_or(d.failure_threshold),
        success_threshold: raw.success_threshold.unwrap_or(d.success_threshold),
        reminder: raw.reminder.map_or(d.reminder, |r| r.0),
        body: raw.body.unwrap_or_else(|| d.body.clone()),
        alerts: match &raw.alerts {
            Some(names) => names.iter().map(|n| n.get_ref().clone()).collect(),
            None => d.alerts.clone(),
        },
        alerts_explicit: raw.alerts.is_some(),
        alert_on_permanent: raw.alert_on_permanent.unwrap_or(d.alert_on_permanent),
        runbook_url: raw.runbook_url.clone().or_else(|| d.runbook_url.clone()),
        dashboard_url: raw
            .dashboard_url
            .clone()
            .or_else(|| d.dashboard_url.clone()),
    };
    for name in raw.alerts.iter().flatten() {
        if !declared.alerts.contains(name.get_ref()) {
            sink.at(
                Some(name.span()),
                format!(
                    "no alert channel named `{}` (known: {})",
                    name.get_ref(),
                    known(declared.alerts.iter())
                ),
            );
        }
    }
    (sink.errors.len() == before).then_some(probe)
}
