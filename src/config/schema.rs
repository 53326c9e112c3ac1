//! The configuration's types: what each table holds once loaded, with its
//! defaults. `[gateways]` and `[receivers]` are the providers' registry
//! ([`crate::providers`]); the loader is [`super::load`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::providers::{GatewayConfig, ReceiverConfig};
use crate::redact::Secret;
use crate::schedule::Schedule;
use crate::values::{self, E164, FlexBool, HumanDuration};

/// The body sent when a probe sets none: the token is what the receiver matches.
pub const DEFAULT_BODY: &str = "sms-canary {probe} {token}";

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
    /// A PostgreSQL store shared by a fleet (`postgres://...`); unset, the
    /// SQLite store in `state_dir`.
    pub store: Option<crate::store::PgDsn>,
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
    /// Where operators reach the daemon's status page (the admin listener,
    /// usually through an internal proxy): alerts then link to the probe's
    /// page there. Unset, alerts carry no such link, since the admin address
    /// itself is usually loopback only.
    #[serde(deserialize_with = "values::option_url")]
    pub status_url: Option<Url>,
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
    /// How long raw runs are kept; older ones live on in the hourly rollups.
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub retention: Duration,
    /// How long the hourly rollups are kept.
    #[serde(deserialize_with = "values::duration::deserialize")]
    pub rollup_retention: Duration,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            state_dir: PathBuf::from(".sms-canary"),
            store: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9188)),
            admin_hosts: Vec::new(),
            public_url: None,
            status_url: None,
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
            retention: Duration::from_secs(30 * 86_400),
            rollup_retention: Duration::from_secs(400 * 86_400),
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

pub(super) fn subject_prefix() -> String {
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
    /// What the probe stands for (`country = "DE"`, `carrier = "..."`):
    /// the status page groups probes by them.
    pub labels: BTreeMap<String, String>,
}

impl Probe {
    /// Its labels as one line, `carrier=Telekom · country=DE`; empty without.
    pub fn labels_line(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" · ")
    }

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
pub(super) struct RawProbe {
    pub(super) name: Spanned<String>,
    pub(super) gateway: Spanned<String>,
    pub(super) receiver: Spanned<String>,
    pub(super) from: E164,
    pub(super) to: E164,
    #[serde(default)]
    pub(super) enabled: Option<FlexBool>,
    #[serde(default, deserialize_with = "values::option_schedule")]
    pub(super) schedule: Option<Schedule>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub(super) threshold: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub(super) retry: Option<RetryPolicy>,
    #[serde(default)]
    pub(super) failure_threshold: Option<u32>,
    #[serde(default)]
    pub(super) success_threshold: Option<u32>,
    #[serde(default)]
    pub(super) reminder: Option<HumanDuration>,
    #[serde(default, deserialize_with = "values::duration::option::body")]
    pub(super) body: Option<String>,
    #[serde(default)]
    pub(super) alerts: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) alert_on_permanent: Option<bool>,
    #[serde(default, deserialize_with = "values::option_link_template")]
    pub(super) runbook_url: Option<String>,
    #[serde(default, deserialize_with = "values::option_link_template")]
    pub(super) dashboard_url: Option<String>,
    #[serde(default)]
    pub(super) labels: Option<Spanned<BTreeMap<String, String>>>,
}

/// The main file, less `[gateways]` and `[receivers]` (dispatched on `kind` by hand
/// so that errors inside them keep their positions).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMain {
    #[serde(default)]
    pub(super) canary: Canary,
    #[serde(default)]
    pub(super) defaults: Option<Spanned<Defaults>>,
}
