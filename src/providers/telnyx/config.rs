//! `kind = "telnyx"`: its settings, how they are checked, and how the
//! configuration reference describes them.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::signature::PublicKey;
use crate::redact::Secret;
use crate::settings::{Key, Presence, REQUEST_TIMEOUT, Table, Type, toml_string};
use crate::values;

/// Telnyx's API v2; `base_url` overrides it (e.g. to point at a mock).
pub const BASE_URL: &str = "https://api.telnyx.com/v2";

/// `kind = "telnyx"`: Telnyx's Messaging API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelnyxGatewayConfig {
    /// The API key (`Authorization: Bearer`).
    pub api_key: Secret,
    /// The account's public key (base64): checks the Ed25519 signatures of
    /// its webhooks, receipts and inbound messages alike.
    pub public_key: PublicKey,
    /// The messaging profile to send with; unset, the `from` number's own.
    #[serde(default)]
    pub messaging_profile_id: Option<String>,
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

/// The reference's table of Telnyx's kind.
pub const TABLES: &[Table] = &[Table {
    id: "gateways.telnyx",
    title: "[gateways.NAME] kind = \"telnyx\"",
    kind: Some(("gateways", "telnyx")),
    doc: "Telnyx's Messaging API v2 (`POST /v2/messages`). Receipts (`message.sent`, `message.finalized`) and inbound messages (`message.received`) come by webhook, signed with Ed25519 and checked against the account's public key.",
    keys: &[
        Key {
            name: "api_key",
            ty: Type::Secret,
            presence: Presence::Required,
            doc: "The API key, sent as a bearer token.",
            example: Some(r#""${TELNYX_API_KEY}""#),
        },
        Key {
            name: "public_key",
            ty: Type::String,
            presence: Presence::Required,
            doc: "The account's public key, base64 (32 bytes), as the portal shows it: it checks every webhook's signature. `sms-canary mock-carrier` prints its own.",
            example: Some(super::mock::DEFAULT_PUBLIC_KEY_TOML),
        },
        Key {
            name: "messaging_profile_id",
            ty: Type::String,
            presence: Presence::Unset("the messaging profile of the `from` number"),
            doc: "The messaging profile to send with.",
            example: Some(r#""40017f8e-49bd-4f16-9e3d-ef103f916228""#),
        },
        Key {
            name: "base_url",
            ty: Type::Url,
            presence: Presence::Default(|| toml_string(BASE_URL)),
            doc: "The API's base URL, `/v2` included; point it at `sms-canary mock-carrier` (`http://127.0.0.1:4010/v2`) to test.",
            example: Some(r#""http://127.0.0.1:4010/v2""#),
        },
        REQUEST_TIMEOUT,
    ],
    exclusive: &[],
}];
