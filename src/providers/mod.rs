//! The providers, one folder each, and the registry of their kinds.
//!
//! A provider's folder holds everything it means: its settings and their
//! checks, its gateway (submit, `doctor` check, error and receipt code
//! tables), its webhooks (routes defined once, parsing, signatures), its
//! poll receiver where it has one, and its mock-carrier emulation, which
//! keeps its own copy of the wire format and codes. This file is the only
//! place outside those folders that names a provider: every `kind` of
//! `[gateways]` and `[receivers]` is one variant here, and every dispatch on
//! them is an exhaustive `match` (no `_ =>`), so adding a provider is its
//! folder plus its lines here, and the compiler lists each one.
//!
//! The configuration loader depends on this module; nothing here depends
//! on the loader (a test over the imports keeps it so).

pub mod android;
pub mod http;
pub mod mock;
pub mod plivo;
pub mod smpp;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

pub use android::config::{AndroidGatewayConfig, AndroidReceiverConfig};
pub use http::config::{HttpGatewayConfig, HttpMethod, HttpPollConfig, ResponseRule};
pub use mock::MockGatewayConfig;
pub use plivo::config::PlivoGatewayConfig;
pub use smpp::config::{SmppGatewayConfig, SmppReceiverConfig};
pub use telnyx::config::TelnyxGatewayConfig;
pub use twilio::config::{TwilioGatewayConfig, TwilioPollConfig};
pub use vonage::config::VonageGatewayConfig;

use crate::gateway::Gateway;
use crate::mock_carrier::{Message, MockHandle, Shared};
use crate::net::CallError;
use crate::receiver::inbox::Inbox;
use crate::receiver::poll::Poller;
use crate::receiver::webhook::{Hooks, Route};
use crate::redact::Secret;
use crate::settings::Table;
use crate::values::{Invalid, JsonPathExpr};
/// A receiver that reports its own health (signs of life), as the body of
/// its config table, for tests outside the providers.
#[cfg(test)]
pub(crate) use android::config::EXAMPLE_RECEIVER as SELF_REPORTING_RECEIVER;

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
    /// Telnyx's Messaging API v2 (`POST /v2/messages`).
    Telnyx(TelnyxGatewayConfig),
    /// Plivo's Message API (`POST /v1/Account/{auth_id}/Message/`).
    Plivo(PlivoGatewayConfig),
    /// A phone running SMS Gateway for Android (`POST /message`).
    Android(AndroidGatewayConfig),
    /// An SMSC over SMPP 3.4 (a transceiver bind).
    Smpp(SmppGatewayConfig),
}

/// The gateway kinds, in the order the reference lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayKind {
    Mock,
    Twilio,
    Vonage,
    Http,
    Telnyx,
    Plivo,
    Android,
    Smpp,
}

impl GatewayKind {
    const ALL: &[GatewayKind] = &[
        GatewayKind::Mock,
        GatewayKind::Twilio,
        GatewayKind::Vonage,
        GatewayKind::Http,
        GatewayKind::Telnyx,
        GatewayKind::Plivo,
        GatewayKind::Android,
        GatewayKind::Smpp,
    ];

    fn name(self) -> &'static str {
        match self {
            GatewayKind::Mock => "mock",
            GatewayKind::Twilio => "twilio",
            GatewayKind::Vonage => "vonage",
            GatewayKind::Http => "http",
            GatewayKind::Telnyx => "telnyx",
            GatewayKind::Plivo => "plivo",
            GatewayKind::Android => "android",
            GatewayKind::Smpp => "smpp",
        }
    }
}

impl GatewayConfig {
    pub const KINDS: &'static [&'static str] = &[
        "mock", "twilio", "vonage", "http", "telnyx", "plivo", "android", "smpp",
    ];

    pub fn kind(&self) -> &'static str {
        self.kind_of().name()
    }

    fn kind_of(&self) -> GatewayKind {
        match self {
            GatewayConfig::Mock(_) => GatewayKind::Mock,
            GatewayConfig::Twilio(_) => GatewayKind::Twilio,
            GatewayConfig::Vonage(_) => GatewayKind::Vonage,
            GatewayConfig::Http(_) => GatewayKind::Http,
            GatewayConfig::Telnyx(_) => GatewayKind::Telnyx,
            GatewayConfig::Plivo(_) => GatewayKind::Plivo,
            GatewayConfig::Android(_) => GatewayKind::Android,
            GatewayConfig::Smpp(_) => GatewayKind::Smpp,
        }
    }

    /// Reads the settings of a gateway of `kind`; `None` for an unknown kind.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        let kind = GatewayKind::ALL.iter().find(|k| k.name() == kind)?;
        Some(match kind {
            GatewayKind::Mock => MockGatewayConfig::deserialize(de).map(GatewayConfig::Mock),
            GatewayKind::Twilio => TwilioGatewayConfig::deserialize(de).map(GatewayConfig::Twilio),
            GatewayKind::Vonage => VonageGatewayConfig::deserialize(de).map(GatewayConfig::Vonage),
            GatewayKind::Http => HttpGatewayConfig::deserialize(de).map(GatewayConfig::Http),
            GatewayKind::Telnyx => TelnyxGatewayConfig::deserialize(de).map(GatewayConfig::Telnyx),
            GatewayKind::Plivo => PlivoGatewayConfig::deserialize(de).map(GatewayConfig::Plivo),
            GatewayKind::Android => {
                AndroidGatewayConfig::deserialize(de).map(GatewayConfig::Android)
            }
            GatewayKind::Smpp => SmppGatewayConfig::deserialize(de).map(GatewayConfig::Smpp),
        })
    }

    /// What deserializing cannot see (templates, the mock's numbers); no
    /// HTTP client is built.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            GatewayConfig::Mock(m) => m.validate(),
            GatewayConfig::Twilio(_)
            | GatewayConfig::Vonage(_)
            | GatewayConfig::Telnyx(_)
            | GatewayConfig::Plivo(_) => Ok(()),
            GatewayConfig::Http(h) => h.validate(),
            GatewayConfig::Android(a) => a.validate(),
            GatewayConfig::Smpp(s) => s.validate(),
        }
    }

    /// The route where a number of this gateway's account has its inbound
    /// messages posted; `None` when the provider posts none we can verify.
    pub fn inbound_route(&self) -> Option<&'static Route> {
        match self {
            GatewayConfig::Mock(m) => match m.api {
                MockApi::Twilio => Some(&twilio::webhooks::INBOUND),
                MockApi::Smpp => None,
            },
            GatewayConfig::Twilio(_) => Some(&twilio::webhooks::INBOUND),
            GatewayConfig::Vonage(_) => Some(&vonage::webhooks::INBOUND),
            GatewayConfig::Telnyx(_) => Some(&telnyx::webhooks::INBOUND),
            GatewayConfig::Plivo(_) => Some(&plivo::webhooks::INBOUND),
            // Its phone receives through a receiver of its own kind; SMPP's
            // inbound messages come over the bind, to a receiver of kind "smpp".
            GatewayConfig::Http(_) | GatewayConfig::Android(_) | GatewayConfig::Smpp(_) => None,
        }
    }

    /// The route where this gateway's delivery receipts come in.
    pub fn receipt_route(&self) -> Option<&'static Route> {
        match self {
            GatewayConfig::Mock(m) => match m.api {
                MockApi::Twilio => Some(&twilio::webhooks::STATUS),
                MockApi::Smpp => None,
            },
            GatewayConfig::Twilio(_) => Some(&twilio::webhooks::STATUS),
            GatewayConfig::Vonage(_) => Some(&vonage::webhooks::RECEIPT),
            GatewayConfig::Telnyx(_) => Some(&telnyx::webhooks::STATUS),
            GatewayConfig::Plivo(_) => Some(&plivo::webhooks::STATUS),
            GatewayConfig::Android(_) => Some(&android::webhooks::RECEIPT),
            GatewayConfig::Http(_) | GatewayConfig::Smpp(_) => None,
        }
    }

    /// The events to register at the provider for the receipt route, when
    /// its URL is registered once instead of going with each message.
    pub fn receipt_events(&self) -> Option<&'static [&'static str]> {
        match self {
            GatewayConfig::Android(_) => Some(android::webhooks::RECEIPT_EVENTS),
            GatewayConfig::Mock(_)
            | GatewayConfig::Twilio(_)
            | GatewayConfig::Vonage(_)
            | GatewayConfig::Http(_)
            | GatewayConfig::Telnyx(_)
            | GatewayConfig::Plivo(_)
            | GatewayConfig::Smpp(_) => None,
        }
    }

    /// Builds the gateway. A `mock` is started instead ([`start_mock`]).
    /// `links` is where a gateway that receives over its own connection
    /// (SMPP) hands what arrives.
    pub fn build(&self, name: &str, links: &Links<'_>) -> Result<Box<dyn Gateway>, CallError> {
        Ok(match self {
            GatewayConfig::Mock(_) => {
                return Err(CallError::permanent(
                    "a mock gateway is started, not built (this is a bug)",
                ));
            }
            GatewayConfig::Twilio(t) => Box::new(twilio::gateway::TwilioGateway::new(
                name,
                &t.base_url,
                &t.account_sid,
                t.auth_token.clone(),
                t.request_timeout,
            )?),
            GatewayConfig::Vonage(v) => Box::new(vonage::gateway::VonageGateway::new(
                name,
                &v.base_url,
                &v.api_key,
                v.api_secret.clone(),
                v.request_timeout,
            )?),
            GatewayConfig::Http(h) => Box::new(http::gateway::HttpGateway::new(name, h)?),
            GatewayConfig::Telnyx(t) => Box::new(telnyx::gateway::TelnyxGateway::new(
                name,
                &t.base_url,
                t.api_key.clone(),
                t.messaging_profile_id.clone(),
                t.request_timeout,
            )?),
            GatewayConfig::Plivo(p) => Box::new(plivo::gateway::PlivoGateway::new(
                name,
                &p.base_url,
                &p.auth_id,
                p.auth_token.clone(),
                p.request_timeout,
            )?),
            GatewayConfig::Android(a) => Box::new(android::gateway::AndroidGateway::new(name, a)?),
            GatewayConfig::Smpp(s) => {
                let receiver = links.receivers.iter().find_map(|(r, config)| match config {
                    ReceiverConfig::Smpp(c) if c.gateway.get_ref() == name => Some(r.clone()),
                    ReceiverConfig::Smpp(_)
                    | ReceiverConfig::Android(_)
                    | ReceiverConfig::Webhook(_)
                    | ReceiverConfig::TwilioPoll(_)
                    | ReceiverConfig::HttpPoll(_) => None,
                });
                Box::new(smpp::gateway::SmppGateway::new(
                    name,
                    s,
                    Arc::clone(links.inbox),
                    receiver,
                ))
            }
        })
    }
}

/// Where gateways that receive over their own connection (SMPP) hand what
/// arrives: the inbox, credited to the receiver that names the gateway.
pub struct Links<'a> {
    pub inbox: &'a Arc<Inbox>,
    pub receivers: &'a BTreeMap<String, ReceiverConfig>,
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
    /// A phone running SMS Gateway for Android posts what it receives.
    Android(AndroidReceiverConfig),
    /// Inbound messages delivered on an SMPP gateway's bind.
    Smpp(SmppReceiverConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiverKind {
    Webhook,
    TwilioPoll,
    HttpPoll,
    Android,
    Smpp,
}

impl ReceiverKind {
    const ALL: &[ReceiverKind] = &[
        ReceiverKind::Webhook,
        ReceiverKind::TwilioPoll,
        ReceiverKind::HttpPoll,
        ReceiverKind::Android,
        ReceiverKind::Smpp,
    ];

    fn name(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::TwilioPoll => "twilio-poll",
            ReceiverKind::HttpPoll => "http-poll",
            ReceiverKind::Android => "android",
            ReceiverKind::Smpp => "smpp",
        }
    }
}

impl ReceiverConfig {
    pub const KINDS: &'static [&'static str] =
        &["webhook", "twilio-poll", "http-poll", "android", "smpp"];

    pub fn kind(&self) -> &'static str {
        match self {
            ReceiverConfig::Webhook(_) => ReceiverKind::Webhook,
            ReceiverConfig::TwilioPoll(_) => ReceiverKind::TwilioPoll,
            ReceiverConfig::HttpPoll(_) => ReceiverKind::HttpPoll,
            ReceiverConfig::Android(_) => ReceiverKind::Android,
            ReceiverConfig::Smpp(_) => ReceiverKind::Smpp,
        }
        .name()
    }

    /// Reads the settings of a receiver of `kind`; `None` for an unknown kind.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        let kind = ReceiverKind::ALL.iter().find(|k| k.name() == kind)?;
        Some(match kind {
            ReceiverKind::Webhook => {
                WebhookReceiverConfig::deserialize(de).map(ReceiverConfig::Webhook)
            }
            ReceiverKind::TwilioPoll => {
                TwilioPollConfig::deserialize(de).map(ReceiverConfig::TwilioPoll)
            }
            ReceiverKind::HttpPoll => HttpPollConfig::deserialize(de).map(ReceiverConfig::HttpPoll),
            ReceiverKind::Android => {
                AndroidReceiverConfig::deserialize(de).map(ReceiverConfig::Android)
            }
            ReceiverKind::Smpp => SmppReceiverConfig::deserialize(de).map(ReceiverConfig::Smpp),
        })
    }

    /// What deserializing cannot see; no HTTP client is built.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            ReceiverConfig::Webhook(_)
            | ReceiverConfig::TwilioPoll(_)
            | ReceiverConfig::Smpp(_) => Ok(()),
            ReceiverConfig::HttpPoll(h) => h.validate(),
            ReceiverConfig::Android(a) => a.validate(),
        }
    }

    /// True for receivers that need our webhook listener.
    pub fn is_webhook(&self) -> bool {
        match self {
            ReceiverConfig::Webhook(_) | ReceiverConfig::Android(_) => true,
            ReceiverConfig::TwilioPoll(_)
            | ReceiverConfig::HttpPoll(_)
            | ReceiverConfig::Smpp(_) => false,
        }
    }

    /// The gateway it names, if any.
    pub fn gateway(&self) -> Option<&Spanned<String>> {
        match self {
            ReceiverConfig::Webhook(w) => w.gateway.as_ref(),
            ReceiverConfig::TwilioPoll(p) => Some(&p.gateway),
            ReceiverConfig::Smpp(s) => Some(&s.gateway),
            ReceiverConfig::HttpPoll(_) | ReceiverConfig::Android(_) => None,
        }
    }

    /// The route of a receiver kind that has one of its own (not a
    /// `webhook`, whose route follows its gateway), and the events to
    /// register for it at the provider.
    pub fn own_route(&self) -> Option<(&'static Route, &'static [&'static str])> {
        match self {
            ReceiverConfig::Android(_) => Some((
                &android::webhooks::INBOUND,
                android::webhooks::INBOUND_EVENTS,
            )),
            ReceiverConfig::Webhook(_)
            | ReceiverConfig::TwilioPoll(_)
            | ReceiverConfig::HttpPoll(_)
            | ReceiverConfig::Smpp(_) => None,
        }
    }

    /// How long the receiving phone may stay silent before it counts as
    /// offline, for kinds whose receiver sends signs of life.
    pub fn silence_limit(&self) -> Option<std::time::Duration> {
        match self {
            ReceiverConfig::Android(a) => Some(a.ping_timeout),
            ReceiverConfig::Webhook(_)
            | ReceiverConfig::TwilioPoll(_)
            | ReceiverConfig::HttpPoll(_)
            | ReceiverConfig::Smpp(_) => None,
        }
    }

    /// Whether `gateway` can be the gateway it names: one whose provider
    /// signs inbound messages (a webhook), or whose messages can be listed.
    pub fn fits(&self, gateway: &GatewayConfig) -> bool {
        match self {
            ReceiverConfig::Webhook(_) => gateway.inbound_route().is_some(),
            ReceiverConfig::TwilioPoll(_) => twilio::webhooks::auth_token(gateway).is_some(),
            ReceiverConfig::HttpPoll(_) | ReceiverConfig::Android(_) => true,
            ReceiverConfig::Smpp(_) => match gateway {
                GatewayConfig::Smpp(_) => true,
                GatewayConfig::Mock(m) => m.api == MockApi::Smpp,
                GatewayConfig::Twilio(_)
                | GatewayConfig::Vonage(_)
                | GatewayConfig::Http(_)
                | GatewayConfig::Telnyx(_)
                | GatewayConfig::Plivo(_)
                | GatewayConfig::Android(_) => false,
            },
        }
    }

    /// For an error about a gateway that does not [`fit`](Self::fits): the
    /// gateway kinds that do, and what to do instead.
    pub fn fit_hint(&self) -> (&'static str, &'static str) {
        match self {
            ReceiverConfig::Webhook(_) => (
                "twilio, vonage, telnyx, plivo or mock (whose signatures it checks)",
                "for your own API's inbound messages, leave `gateway` out: the receiver then \
                 takes the JSON route, signed with `json_secret`",
            ),
            ReceiverConfig::TwilioPoll(_) => (
                "twilio or mock (whose API it polls)",
                "to poll your own API, use a receiver of kind = \"http-poll\"",
            ),
            ReceiverConfig::HttpPoll(_) | ReceiverConfig::Android(_) => ("any", ""),
            ReceiverConfig::Smpp(_) => (
                "smpp, or mock with api = \"smpp\" (on whose bind the messages arrive)",
                "for an HTTP provider's inbound messages, use a receiver of kind = \"webhook\"",
            ),
        }
    }

    /// The numbers of its probes that mock gateway `gateway` must own, if it
    /// takes the mock's messages: with the inbound URL for a webhook.
    pub fn takes_from_mock(&self, gateway: &str, probe_gateway: &str) -> Option<bool> {
        match self {
            ReceiverConfig::Webhook(_) => (probe_gateway == gateway).then_some(true),
            ReceiverConfig::TwilioPoll(t) => (t.gateway.get_ref() == gateway).then_some(false),
            ReceiverConfig::Smpp(s) => (s.gateway.get_ref() == gateway).then_some(false),
            ReceiverConfig::HttpPoll(_) | ReceiverConfig::Android(_) => None,
        }
    }
}

/// `kind = "webhook"`: inbound messages posted to us by the provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiverConfig {
    /// The gateway whose account owns the receiving number: it picks the one
    /// provider route served (its provider's) and only its credentials
    /// check inbound signatures. Unset: the receiver serves only the JSON
    /// route, signed with `json_secret`.
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

pub(crate) fn json_signature_header() -> String {
    "X-Signature-256".to_string()
}

pub(crate) fn json_body_path() -> JsonPathExpr {
    JsonPathExpr::parse("$.body").expect("constant path parses")
}

fn yes() -> bool {
    true
}

/// Builds the poller of a polling receiver (`None` for a webhook).
/// `mock_urls` are the base URLs of the in-process mocks already started.
pub fn build_poller(
    receiver: &ReceiverConfig,
    gateways: &BTreeMap<String, GatewayConfig>,
    mock_urls: &[(String, Url)],
) -> Result<Option<Box<dyn Poller>>, CallError> {
    Ok(match receiver {
        ReceiverConfig::Webhook(_) | ReceiverConfig::Android(_) | ReceiverConfig::Smpp(_) => None,
        ReceiverConfig::HttpPoll(h) => Some(Box::new(http::poll::HttpPoller::new(h)?)),
        ReceiverConfig::TwilioPoll(t) => {
            let account = t.gateway.get_ref();
            let (base, sid, token) = match gateways.get(account) {
                Some(GatewayConfig::Twilio(g)) => {
                    (g.base_url.clone(), &g.account_sid, &g.auth_token)
                }
                Some(GatewayConfig::Mock(m)) => {
                    let url = mock_urls
                        .iter()
                        .find(|(n, _)| n == account)
                        .map(|(_, u)| u.clone())
                        .ok_or_else(|| {
                            CallError::permanent(format!("mock `{account}` was not started"))
                        })?;
                    (url, &m.account_sid, &m.auth_token)
                }
                Some(
                    other @ (GatewayConfig::Vonage(_)
                    | GatewayConfig::Http(_)
                    | GatewayConfig::Telnyx(_)
                    | GatewayConfig::Plivo(_)
                    | GatewayConfig::Android(_)
                    | GatewayConfig::Smpp(_)),
                ) => {
                    return Err(CallError::permanent(format!(
                        "gateway `{account}` is of kind {}",
                        other.kind()
                    )));
                }
                None => {
                    return Err(CallError::permanent(format!(
                        "no gateway named `{account}`"
                    )));
                }
            };
            Some(Box::new(twilio::poll::TwilioPoller::new(
                &base,
                sid,
                token.clone(),
                t.interval,
            )?))
        }
    })
}

/// The inbound route a webhook receiver serves: its gateway's provider's,
/// or the JSON route of your own system when it names no such gateway.
pub fn inbound_route(
    gateways: &BTreeMap<String, GatewayConfig>,
    receiver: &WebhookReceiverConfig,
) -> &'static Route {
    receiver
        .gateway
        .as_ref()
        .and_then(|g| gateways.get(g.get_ref()))
        .and_then(GatewayConfig::inbound_route)
        .unwrap_or(json_route())
}

/// The route of your own system's JSON webhook.
pub fn json_route() -> &'static Route {
    &http::webhooks::JSON
}

/// Every webhook route, of every provider.
pub const ROUTES: &[&Route] = &[
    &twilio::webhooks::INBOUND,
    &twilio::webhooks::STATUS,
    &vonage::webhooks::INBOUND,
    &vonage::webhooks::RECEIPT,
    &telnyx::webhooks::INBOUND,
    &telnyx::webhooks::STATUS,
    &plivo::webhooks::INBOUND,
    &plivo::webhooks::STATUS,
    &android::webhooks::INBOUND,
    &android::webhooks::RECEIPT,
    &http::webhooks::JSON,
];

/// Every provider's webhook routes, served together.
pub fn webhook_router(hooks: Arc<Hooks>) -> Router {
    twilio::webhooks::router(Arc::clone(&hooks))
        .merge(vonage::webhooks::router(Arc::clone(&hooks)))
        .merge(telnyx::webhooks::router(Arc::clone(&hooks)))
        .merge(plivo::webhooks::router(Arc::clone(&hooks)))
        .merge(android::webhooks::router(Arc::clone(&hooks)))
        .merge(http::webhooks::router(hooks))
}

/// The providers' tables of the configuration reference.
pub const TABLES: &[&[Table]] = &[
    twilio::config::TABLES,
    vonage::config::TABLES,
    http::config::TABLES,
    telnyx::config::TABLES,
    plivo::config::TABLES,
    android::config::TABLES,
    smpp::config::TABLES,
];

/// A running in-process mock and the client of the API it speaks.
pub struct MockGateway {
    pub carrier: MockHandle,
    pub gateway: Box<dyn Gateway>,
}

/// The protocol probes reach an in-process mock through (`api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MockApi {
    /// Its HTTP API as Twilio's, with signed webhooks.
    #[default]
    Twilio,
    /// Its SMSC: receipts and inbound messages over the bind.
    Smpp,
}

impl MockApi {
    pub const NAMES: &'static [&'static str] = &["twilio", "smpp"];
}

/// Starts mock gateway `name` (see [`mock::start`]) with a client of the
/// API it is reached through (`api`): Twilio's, or an SMPP bind (which
/// hands what arrives on it to `links`).
pub async fn start_mock(
    name: &str,
    config: &MockGatewayConfig,
    inbound: impl IntoIterator<Item = (String, Option<String>)>,
    links: &Links<'_>,
) -> Result<MockGateway, String> {
    let carrier = mock::start(name, config, inbound).await?;
    if config.api == MockApi::Smpp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("gateway `{name}`: cannot start the mock SMSC: {e}"))?;
        let addr = smpp::mock::listen(&carrier, listener)
            .map_err(|e| format!("gateway `{name}`: cannot start the mock SMSC: {e}"))?;
        let account = smpp::mock::Account::default();
        let bind = SmppGatewayConfig {
            address: addr.to_string(),
            system_id: account.system_id,
            password: account.password,
            system_type: String::new(),
            enquire_link: std::time::Duration::from_secs(30),
            request_timeout: std::time::Duration::from_secs(10),
        };
        let gateway = GatewayConfig::Smpp(bind)
            .build(name, links)
            .map_err(|e| e.to_string())?;
        return Ok(MockGateway { carrier, gateway });
    }
    let base = Url::parse(&carrier.base_url()).map_err(|e| format!("mock carrier URL: {e}"))?;
    let gateway = twilio::gateway::TwilioGateway::new(
        name,
        &base,
        &config.account_sid,
        config.auth_token.clone(),
        std::time::Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    Ok(MockGateway {
        carrier,
        gateway: Box::new(gateway),
    })
}

/// A provider API the mock carrier speaks: which API a message came in
/// through, and which shape its inbound webhook takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundFormat {
    Twilio,
    Vonage,
    Telnyx,
    Plivo,
    Android,
}

impl InboundFormat {
    pub const ALL: &[InboundFormat] = &[
        InboundFormat::Twilio,
        InboundFormat::Vonage,
        InboundFormat::Telnyx,
        InboundFormat::Plivo,
        InboundFormat::Android,
    ];
    pub const NAMES: &[&str] = &["twilio", "vonage", "telnyx", "plivo", "android"];

    pub fn as_str(self) -> &'static str {
        match self {
            InboundFormat::Twilio => "twilio",
            InboundFormat::Vonage => "vonage",
            InboundFormat::Telnyx => "telnyx",
            InboundFormat::Plivo => "plivo",
            InboundFormat::Android => "android",
        }
    }

    /// A new message id, as this API makes them.
    pub(crate) fn new_id(self) -> String {
        match self {
            InboundFormat::Twilio => twilio::mock::new_message_sid(),
            InboundFormat::Vonage => vonage::mock::new_vonage_id(),
            InboundFormat::Telnyx => telnyx::mock::new_id(),
            InboundFormat::Plivo => plivo::mock::new_uuid(),
            InboundFormat::Android => android::mock::new_id(),
        }
    }

    /// The receipt this API sends for `m` in its current state, if any.
    pub(crate) fn receipt_request(self, shared: &Shared, m: &Message) -> Option<reqwest::Request> {
        match self {
            InboundFormat::Twilio => twilio::mock::receipt_request(shared, m),
            InboundFormat::Vonage => vonage::mock::receipt_request(shared, m),
            InboundFormat::Telnyx => telnyx::mock::receipt_request(shared, m),
            InboundFormat::Plivo => plivo::mock::receipt_request(shared, m),
            InboundFormat::Android => android::mock::receipt_request(shared, m),
        }
    }

    /// The inbound-message webhook this API posts for `m` to `url`.
    pub(crate) fn inbound_request(
        self,
        shared: &Shared,
        m: &Message,
        url: &str,
        at: DateTime<Utc>,
    ) -> Option<reqwest::Request> {
        match self {
            InboundFormat::Twilio => twilio::mock::inbound_request(shared, m, url),
            InboundFormat::Vonage => vonage::mock::inbound_request(shared, m, url, at),
            InboundFormat::Telnyx => telnyx::mock::inbound_request(shared, m, url, at),
            InboundFormat::Plivo => plivo::mock::inbound_request(shared, m, url),
            InboundFormat::Android => android::mock::inbound_request(shared, m, url, at),
        }
    }

    /// A message's state in this API's own words.
    pub(crate) fn status_word(self, m: &Message) -> &'static str {
        match self {
            InboundFormat::Twilio => m.status.as_str(),
            InboundFormat::Vonage => vonage::mock::status_word(m.direction, m.status),
            InboundFormat::Telnyx => telnyx::mock::status_word(m.direction, m.status),
            InboundFormat::Plivo => plivo::mock::status_word(m.direction, m.status, m.error_code),
            InboundFormat::Android => android::mock::status_word(m.direction, m.status),
        }
    }
}

/// Every provider API of the mock carrier, served together.
pub(crate) fn mock_router(shared: Arc<Shared>) -> Router {
    twilio::mock::router(Arc::clone(&shared))
        .merge(vonage::mock::router(Arc::clone(&shared)))
        .merge(telnyx::mock::router(Arc::clone(&shared)))
        .merge(plivo::mock::router(Arc::clone(&shared)))
        .merge(android::mock::router(shared))
}

/// What the mock answers on a path no API serves (Twilio's 404 shape).
pub(crate) async fn mock_not_found(request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    twilio::mock::not_found(request).await.into_response()
}

/// The mock carrier's accounts of the APIs that have their own (the first
/// API's account is the mock's `account_sid` and `auth_token`).
#[derive(Debug, Clone, Default)]
pub struct MockAccounts {
    pub vonage: vonage::mock::Account,
    pub telnyx: telnyx::mock::Account,
    pub plivo: plivo::mock::Account,
    pub android: android::mock::Account,
    pub smpp: smpp::mock::Account,
}

impl MockAccounts {
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.vonage.validate()?;
        self.telnyx.validate()?;
        self.plivo.validate()?;
        self.android.validate()?;
        self.smpp.validate()
    }

    /// What the standalone mock says at start of each account, besides its address.
    pub fn announce(&self) -> Vec<String> {
        vec![telnyx::mock::announce(&self.telnyx)]
    }
}

/// Starts the standalone mock's listeners for protocols other than HTTP
/// (SMPP with `--smpp-listen`).
pub(crate) async fn start_mock_listeners(
    mock: &MockHandle,
    args: &MockArgs,
) -> Result<(), crate::mock_carrier::MockError> {
    if let Some(addr) = &args.smpp.smpp_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| crate::mock_carrier::MockError::Bind {
                addr: addr.clone(),
                source,
            })?;
        smpp::mock::listen(mock, listener)?;
    }
    Ok(())
}

/// What the mock's emulations keep besides messages; reset with them.
#[derive(Debug, Default)]
pub(crate) struct MockState {
    pub(crate) vonage: vonage::mock::Credit,
    /// The webhooks registered with the emulated phone.
    pub(crate) android: android::mock::Webhooks,
}

impl MockState {
    pub(crate) fn reset(&self) {
        self.vonage.reset();
        self.android.reset();
    }
}

/// The standalone mock's flags for each provider's account.
#[derive(clap::Args, Debug)]
pub struct MockArgs {
    #[command(flatten)]
    pub vonage: vonage::mock::Args,
    #[command(flatten)]
    pub telnyx: telnyx::mock::Args,
    #[command(flatten)]
    pub plivo: plivo::mock::Args,
    #[command(flatten)]
    pub android: android::mock::Args,
    #[command(flatten)]
    pub smpp: smpp::mock::Args,
}

impl MockArgs {
    /// The accounts, or the flag at fault and why.
    pub(crate) fn accounts(&self) -> Result<MockAccounts, (&'static str, String)> {
        Ok(MockAccounts {
            vonage: self.vonage.account()?,
            telnyx: self.telnyx.account()?,
            plivo: self.plivo.account()?,
            android: self.android.account()?,
            smpp: self.smpp.account()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_once_each_in_order() {
        let gateways: Vec<&str> = GatewayKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(gateways, GatewayConfig::KINDS);
        let receivers: Vec<&str> = ReceiverKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(receivers, ReceiverConfig::KINDS);
        let apis: Vec<&str> = InboundFormat::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(apis, InboundFormat::NAMES);
        let mut unique = apis.clone();
        unique.dedup();
        assert_eq!(apis, unique);
    }

    #[test]
    fn route_names_and_prefixes_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.name, b.name);
                // One prefix may extend another (`/hooks/x/` and
                // `/hooks/x/receipt/`): a path is told by the longest.
                assert_ne!(a.prefix(), b.prefix());
            }
        }
    }
}
