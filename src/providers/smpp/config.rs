//! `kind = "smpp"`: the settings of an SMPP gateway and receiver, how they
//! are checked, and how the configuration reference describes them.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::redact::Secret;
use crate::settings::{Key, Presence, Table, Type, toml_duration};
use crate::values::{self, Invalid};

/// `kind = "smpp"`: an SMSC reached over SMPP 3.4, bound as a transceiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppGatewayConfig {
    /// The SMSC, `host:port`.
    pub address: String,
    pub system_id: String,
    pub password: Secret,
    #[serde(default)]
    pub system_type: String,
    /// How often the bind is checked with `enquire_link`.
    #[serde(
        default = "enquire_link",
        deserialize_with = "values::duration::deserialize"
    )]
    pub enquire_link: Duration,
    /// How long the bind and each request wait for the SMSC's answer.
    #[serde(
        default = "values::request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

fn enquire_link() -> Duration {
    Duration::from_secs(30)
}

impl SmppGatewayConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let (host, port) = self.address.rsplit_once(':').unwrap_or(("", ""));
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(Invalid::new(
                "address",
                format!(
                    "`{}` is not host:port (e.g. \"smsc.example.com:2775\")",
                    self.address
                ),
            ));
        }
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            return Err(Invalid::new(
                "system_id",
                "must be 1 to 15 characters (SMPP's limit)",
            ));
        }
        if self.password.expose().len() > 8 {
            return Err(Invalid::new(
                "password",
                "is longer than 8 characters (SMPP's limit)",
            ));
        }
        if self.system_type.len() > 12 {
            return Err(Invalid::new(
                "system_type",
                "is longer than 12 characters (SMPP's limit)",
            ));
        }
        if self.enquire_link < Duration::from_secs(1) {
            return Err(Invalid::new("enquire_link", "must be at least 1s"));
        }
        Ok(())
    }
}

/// `kind = "smpp"` receiver: inbound messages the SMSC delivers over the
/// named gateway's bind (`deliver_sm`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppReceiverConfig {
    /// The SMPP gateway whose bind the inbound messages arrive on.
    pub gateway: Spanned<String>,
}

fn enquire_link_default() -> String {
    toml_duration(enquire_link())
}

/// The reference's tables of SMPP's kinds.
pub const TABLES: &[Table] = &[
    Table {
        id: "gateways.smpp",
        title: "[gateways.NAME] kind = \"smpp\"",
        kind: Some(("gateways", "smpp")),
        doc: "An SMSC over SMPP 3.4, bound as a transceiver over TCP (no TLS). One bind per gateway is shared by the probes of a process, checked with `enquire_link` and bound again with backoff when lost. Messages go as GSM-7 (`data_coding` 0) or UCS-2 (8) by content, long ones concatenated; receipts come back as `deliver_sm` on the same bind.",
        keys: &[
            Key {
                name: "address",
                ty: Type::Address,
                presence: Presence::Required,
                doc: "The SMSC, `host:port`; `sms-canary mock-carrier --smpp-listen` serves one.",
                example: Some(r#""127.0.0.1:2775""#),
            },
            Key {
                name: "system_id",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The account's system_id (at most 15 characters).",
                example: Some(r#""sms-canary""#),
            },
            Key {
                name: "password",
                ty: Type::Secret,
                presence: Presence::Required,
                doc: "The bind password (at most 8 characters).",
                example: Some(r#""${SMPP_PASSWORD}""#),
            },
            Key {
                name: "system_type",
                ty: Type::String,
                presence: Presence::Default(|| crate::settings::toml_string("")),
                doc: "The system_type some SMSCs ask for.",
                example: None,
            },
            Key {
                name: "enquire_link",
                ty: Type::Duration,
                presence: Presence::Default(enquire_link_default),
                doc: "How often the bind is checked; an unanswered check counts the bind as lost.",
                example: None,
            },
            Key {
                name: "request_timeout",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(values::request_timeout())),
                doc: "How long the bind and each submit wait for the SMSC's answer; a timeout is a transient error and is retried.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "receivers.smpp",
        title: "[receivers.NAME] kind = \"smpp\"",
        kind: Some(("receivers", "smpp")),
        doc: "Inbound messages the SMSC delivers (`deliver_sm`) on an SMPP gateway's bind, matched by token; long ones are put back together.",
        keys: &[Key {
            name: "gateway",
            ty: Type::String,
            presence: Presence::Required,
            doc: "The `kind = \"smpp\"` gateway whose bind they arrive on.",
            example: Some(r#""smsc""#),
        }],
        exclusive: &[],
    },
];
