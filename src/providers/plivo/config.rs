//! `kind = "plivo"`: its settings, how they are checked, and how the
//! configuration reference describes them.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use url::Url;

use crate::redact::Secret;
use crate::settings::{Key, Presence, REQUEST_TIMEOUT, Table, Type, toml_string};
use crate::values;

/// Plivo's API; `base_url` overrides it (e.g. to point at a mock).
pub const BASE_URL: &str = "https://api.plivo.com";

/// `kind = "plivo"`: Plivo's Message API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlivoGatewayConfig {
    /// The Auth ID (`MA…` or `SA…`): the Basic user, and part of every path.
    #[serde(deserialize_with = "auth_id")]
    pub auth_id: String,
    /// The Auth Token: the Basic password, and the key of Plivo's webhook signatures.
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

fn base_url() -> Url {
    Url::parse(BASE_URL).expect("constant URL parses")
}

/// An Auth ID: letters and digits (it goes into every URL path).
fn auth_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        // Not quoted: an auth token pasted here by mistake would be printed.
        Err(de::Error::custom(format!(
            "invalid auth_id ({} characters): a Plivo Auth ID is letters and digits, like MA followed by 18 more",
            s.chars().count()
        )))
    }
}

/// The reference's table of Plivo's kind.
pub const TABLES: &[Table] = &[Table {
    id: "gateways.plivo",
    title: "[gateways.NAME] kind = \"plivo\"",
    kind: Some(("gateways", "plivo")),
    doc: "Plivo's Message API (`POST /v1/Account/{auth_id}/Message/`). Status callbacks and inbound messages come by webhook, signed by Plivo with the Auth Token (signature V3, or V2).",
    keys: &[
        Key {
            name: "auth_id",
            ty: Type::String,
            presence: Presence::Required,
            doc: "The Auth ID (letters and digits, `MA…` or `SA…`).",
            example: Some(r#""MAMOCKPLIVOACCOUNT00""#),
        },
        Key {
            name: "auth_token",
            ty: Type::Secret,
            presence: Presence::Required,
            doc: "The Auth Token; it also checks the signatures of Plivo's callbacks.",
            example: Some(r#""${PLIVO_AUTH_TOKEN}""#),
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
}];
