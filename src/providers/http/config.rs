//! `kind = "http"` and `kind = "http-poll"`: the settings of your own SMS
//! API, how they are checked, and how the configuration reference describes
//! them. Checking builds no HTTP client: it parses the templates and fills
//! them in with sample values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::redact::Secret;
use crate::settings::{
    HEADERS, Key, Presence, REQUEST_TIMEOUT, Table, Type, poll_interval, toml_string,
};
use crate::values::{self, Invalid, JsonPathExpr};

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
        default = "values::request_timeout",
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
        default = "values::poll_interval",
        deserialize_with = "values::duration::deserialize"
    )]
    pub interval: Duration,
    #[serde(
        default = "values::request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

impl HttpGatewayConfig {
    /// What building the gateway checks (templates, headers, the body),
    /// without building it: the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Invalid> {
        super::gateway::Parts::parse(self).map(|_| ())
    }
}

impl HttpPollConfig {
    /// What building the poller checks, without building it.
    pub fn validate(&self) -> Result<(), Invalid> {
        super::poll::Parts::parse(self).map(|_| ())
    }
}

/// The reference's tables of the kinds of your own API.
pub const TABLES: &[Table] = &[
    Table {
        id: "gateways.http",
        title: "[gateways.NAME] kind = \"http\"",
        kind: Some(("gateways", "http")),
        doc: "Your own HTTP SMS API, described by templates and rules rather than code. Templates take `{{to}}`, `{{from}}`, `{{body}}` and `{{correlation_id}}`, escaped for where they appear (URL, JSON string, form field).",
        keys: &[
            Key {
                name: "url",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The submit URL, a template.",
                example: Some(r#""https://sms.example.com/v1/messages""#),
            },
            Key {
                name: "method",
                ty: Type::Choice(&["GET", "POST", "PUT"]),
                presence: Presence::Default(|| {
                    toml_string(format!("{:?}", HttpMethod::default()).to_uppercase())
                }),
                doc: "The HTTP method.",
                example: None,
            },
            HEADERS,
            Key {
                name: "body",
                ty: Type::String,
                presence: Presence::Unset("no body, unless `form` is set"),
                doc: "A JSON body template, sent as `application/json` unless a header says otherwise.",
                example: Some(r#"'{"to":"{{to}}","from":"{{from}}","text":"{{body}}"}'"#),
            },
            Key {
                name: "form",
                ty: Type::Map(&Type::String),
                presence: Presence::Unset("no form"),
                doc: "Form fields (templates), sent as `application/x-www-form-urlencoded`; instead of `body`.",
                example: Some(r#"{ to = "{{to}}", text = "{{body}}" }"#),
            },
            Key {
                name: "message_id",
                ty: Type::JsonPath,
                presence: Presence::Unset("the run keeps no provider message id"),
                doc: "Where the message id is in a successful response.",
                example: Some(r#""$.id""#),
            },
            Key {
                name: "permanent",
                ty: Type::List(&Type::Table("rule")),
                presence: Presence::Unset("by status: 3xx, and 4xx other than 408 and 429"),
                doc: "Responses that mean \"do not retry\" (checked first): the run ends `rejected`.",
                example: None,
            },
            Key {
                name: "transient",
                ty: Type::List(&Type::Table("rule")),
                presence: Presence::Unset("by status: 5xx, 408 and 429 (and timeouts)"),
                doc: "Responses that mean \"retry\".",
                example: None,
            },
            Key {
                name: "health_url",
                ty: Type::Url,
                presence: Presence::Unset(
                    "`doctor` has no read-only call to make for this gateway",
                ),
                doc: "A read-only URL `doctor` calls to check reachability and credentials.",
                example: Some(r#""https://sms.example.com/v1/health""#),
            },
            REQUEST_TIMEOUT,
        ],
        exclusive: &[("body", "form")],
    },
    Table {
        id: "rule",
        title: "permanent / transient = [{ … }]",
        kind: None,
        doc: "A rule classifies a response of an `http` gateway; it matches when every condition it sets holds. It needs `status`, `json`, or both.",
        keys: &[
            Key {
                name: "status",
                ty: Type::Int {
                    min: 0,
                    max: u16::MAX as u64,
                },
                presence: Presence::Unset("any status"),
                doc: "The HTTP status code.",
                example: Some("402"),
            },
            Key {
                name: "json",
                ty: Type::JsonPath,
                presence: Presence::Unset("the body is not looked at"),
                doc: "A JSONPath into the response body…",
                example: Some(r#""$.error.code""#),
            },
            Key {
                name: "equals",
                ty: Type::Any,
                presence: Presence::Unset("the path must exist and not be null"),
                doc: "…and the value it must equal; needs `json`.",
                example: Some(r#""NO_CREDIT""#),
            },
            Key {
                name: "reason",
                ty: Type::String,
                presence: Presence::Unset(
                    "\"the gateway refused the message\" (or \"could not take it now\") and what matched",
                ),
                doc: "The plain-words reason reported when this rule matches.",
                example: Some(r#""account has no credit""#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "receivers.http-poll",
        title: "[receivers.NAME] kind = \"http-poll\"",
        kind: Some(("receivers", "http-poll")),
        doc: "Polls your own API for inbound messages and finds them by JSONPath.",
        keys: &[
            Key {
                name: "url",
                ty: Type::String,
                presence: Presence::Required,
                doc: "URL template: `{{to}}`, `{{since}}` (RFC 3339), `{{since_unix}}`, `{{correlation_id}}`.",
                example: Some(r#""https://sms.example.com/v1/inbound?to={{to}}&since={{since}}""#),
            },
            HEADERS,
            Key {
                name: "messages",
                ty: Type::JsonPath,
                presence: Presence::Required,
                doc: "Selects the messages in the response.",
                example: Some(r#""$.messages[*]""#),
            },
            Key {
                name: "body",
                ty: Type::JsonPath,
                presence: Presence::Unset("the selected values are the texts themselves"),
                doc: "The text of one message, relative to it.",
                example: Some(r#""$.text""#),
            },
            Key {
                name: "id",
                ty: Type::JsonPath,
                presence: Presence::Unset("messages are told apart by their text"),
                doc: "A message's id, relative to it, so it is looked at once.",
                example: Some(r#""$.id""#),
            },
            Key {
                name: "interval",
                ty: Type::Duration,
                presence: Presence::Default(poll_interval),
                doc: "Time between polls; also the resolution of the measured latency.",
                example: None,
            },
            REQUEST_TIMEOUT,
        ],
        exclusive: &[],
    },
];
