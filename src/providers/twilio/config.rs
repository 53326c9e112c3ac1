//! `kind = "twilio"` and `kind = "twilio-poll"`: their settings, how they
//! are checked, and how the configuration reference describes them.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;
use url::Url;

use crate::redact::Secret;
use crate::settings::{Key, Presence, REQUEST_TIMEOUT, Table, Type, poll_interval, toml_string};
use crate::values;

/// Twilio's production API; `base_url` overrides it (e.g. to point at a mock).
pub const BASE_URL: &str = "https://api.twilio.com";

/// `kind = "twilio"`: Twilio's Programmable Messaging REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioGatewayConfig {
    #[serde(deserialize_with = "account_sid")]
    pub account_sid: String,
    pub auth_token: Secret,
    #[serde(default = "base_url", deserialize_with = "values::url")]
    pub base_url: Url,
    /// Per-request timeout; a timeout is a transient error and is retried.
    #[serde(
        default = "values::request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

/// `kind = "twilio-poll"`: lists messages to the probe's `to` number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioPollConfig {
    /// A `twilio` or `mock` gateway: the account that owns the receiving number.
    pub gateway: Spanned<String>,
    /// Time between polls; also the resolution of the measured latency.
    #[serde(
        default = "values::poll_interval",
        deserialize_with = "values::duration::deserialize"
    )]
    pub interval: Duration,
}

fn base_url() -> Url {
    Url::parse(BASE_URL).expect("constant URL parses")
}

/// A Twilio account SID: "AC" and 32 hex digits.
fn account_sid<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s.len() == 34 && s.starts_with("AC") && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(s)
    } else {
        // Not quoted: an auth token pasted here by mistake would be printed.
        Err(de::Error::custom(format!(
            "invalid account_sid ({} characters): a Twilio account SID is \"AC\" and 32 hex digits",
            s.chars().count()
        )))
    }
}

/// The reference's tables of Twilio's kinds.
pub const TABLES: &[Table] = &[
    Table {
        id: "gateways.twilio",
        title: "[gateways.NAME] kind = \"twilio\"",
        kind: Some(("gateways", "twilio")),
        doc: "Twilio's Programmable Messaging API, or anything that speaks it (`sms-canary mock-carrier`).",
        keys: &[
            Key {
                name: "account_sid",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The account SID: \"AC\" and 32 hex digits.",
                example: Some(r#""AC00000000000000000000000000000000""#),
            },
            Key {
                name: "auth_token",
                ty: Type::Secret,
                presence: Presence::Required,
                doc: "The auth token; it also checks the signatures of Twilio's callbacks.",
                example: Some(r#""${TWILIO_AUTH_TOKEN}""#),
            },
            Key {
                name: "base_url",
                ty: Type::Url,
                presence: Presence::Default(|| toml_string(BASE_URL)),
                doc: "The API's base URL; point it at `sms-canary mock-carrier` to test.",
                example: Some(r#""http://127.0.0.1:4010""#),
            },
            REQUEST_TIMEOUT,
        ],
        exclusive: &[],
    },
    Table {
        id: "receivers.twilio-poll",
        title: "[receivers.NAME] kind = \"twilio-poll\"",
        kind: Some(("receivers", "twilio-poll")),
        doc: "Polls Twilio's message list for messages to the probe's number: for cron and CI, where nothing can reach us.",
        keys: &[
            Key {
                name: "gateway",
                ty: Type::String,
                presence: Presence::Required,
                doc: "A `twilio` or `mock` gateway (a name): the account that owns the receiving number.",
                example: Some(r#""sandbox""#),
            },
            Key {
                name: "interval",
                ty: Type::Duration,
                presence: Presence::Default(poll_interval),
                doc: "Time between polls; also the resolution of the measured latency.",
                example: None,
            },
        ],
        exclusive: &[],
    },
];
