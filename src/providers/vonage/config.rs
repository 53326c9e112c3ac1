//! `kind = "vonage"`: its settings and how the configuration reference
//! describes them.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::signature::SignatureMethod;
use crate::redact::Secret;
use crate::settings::{Key, Presence, REQUEST_TIMEOUT, Table, Type, toml_string};
use crate::values;

/// Vonage's SMS API.
pub const BASE_URL: &str = "https://rest.nexmo.com";

/// `kind = "vonage"`: Vonage's SMS API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageGatewayConfig {
    pub api_key: String,
    pub api_secret: Secret,
    #[serde(default = "base_url", deserialize_with = "values::url")]
    pub base_url: Url,
    /// The account's signature secret: when set, receipts and inbound messages
    /// must carry a valid `sig`.
    #[serde(default)]
    pub signature_secret: Option<Secret>,
    #[serde(default)]
    pub signature_method: SignatureMethod,
    #[serde(
        default = "values::request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

fn base_url() -> Url {
    Url::parse(BASE_URL).expect("constant URL parses")
}

/// The reference's table of Vonage's kind.
pub const TABLES: &[Table] = &[Table {
    id: "gateways.vonage",
    title: "[gateways.NAME] kind = \"vonage\"",
    kind: Some(("gateways", "vonage")),
    doc: "Vonage's SMS API (`POST /sms/json`).",
    keys: &[
        Key {
            name: "api_key",
            ty: Type::String,
            presence: Presence::Required,
            doc: "The account's API key.",
            example: Some(r#""mockkey""#),
        },
        Key {
            name: "api_secret",
            ty: Type::Secret,
            presence: Presence::Required,
            doc: "The account's API secret.",
            example: Some(r#""${VONAGE_API_SECRET}""#),
        },
        Key {
            name: "base_url",
            ty: Type::Url,
            presence: Presence::Default(|| toml_string(BASE_URL)),
            doc: "The API's base URL.",
            example: Some(r#""http://127.0.0.1:4010""#),
        },
        Key {
            name: "signature_secret",
            ty: Type::Secret,
            presence: Presence::Unset("callbacks are not signed"),
            doc: "The account's signature secret: when set, receipts and inbound messages must carry a valid `sig`.",
            example: Some(r#""${VONAGE_SIGNATURE_SECRET}""#),
        },
        Key {
            name: "signature_method",
            ty: Type::Choice(&["md5hash", "md5", "sha1", "sha256", "sha512"]),
            presence: Presence::Default(|| {
                toml_string(format!("{:?}", SignatureMethod::default()).to_lowercase())
            }),
            doc: "How the account signs, as set in Vonage's dashboard next to the secret.",
            example: Some(r#""sha256""#),
        },
        REQUEST_TIMEOUT,
    ],
    exclusive: &[],
}];
