//! `kind = "android"`: the settings of a phone running SMS Gateway for
//! Android, as a gateway and as a receiver, how they are checked, and how
//! the configuration reference describes them.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::redact::Secret;
use crate::settings::{Key, Presence, REQUEST_TIMEOUT, Table, Type, toml_duration, toml_string};
use crate::values::{self, Invalid};

/// The app's cloud relay; a phone's local server is `http://PHONE:8080`.
pub const BASE_URL: &str = "https://api.sms-gate.app/3rdparty/v1";

/// How long a receiving phone may go without a `system:ping` before it is
/// reported offline: the app pings every few minutes when asked to (its
/// "ping interval" setting), so ten minutes is two or three missed pings.
pub const PING_TIMEOUT: Duration = Duration::from_secs(600);

/// `[gateways.NAME] kind = "android"`: a phone that sends the probes' messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidGatewayConfig {
    /// The API user name (the app's local server or cloud credentials).
    pub username: String,
    pub password: Secret,
    /// The app's webhook signing key: checks the receipts' signatures.
    pub signing_key: Secret,
    #[serde(default = "base_url", deserialize_with = "values::url")]
    pub base_url: Url,
    /// The device to send with (the cloud relay's device id); receipts from
    /// another device are refused.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The ids of the webhooks registered for the receipts; when set,
    /// receipts from another webhook are refused.
    #[serde(default)]
    pub webhook_ids: Vec<String>,
    /// The SIM card to send from (1-3); unset, the phone's default.
    #[serde(default)]
    pub sim_number: Option<u8>,
    #[serde(
        default = "values::request_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub request_timeout: Duration,
}

impl AndroidGatewayConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_keys(
            &self.signing_key,
            self.device_id.as_deref(),
            &self.webhook_ids,
        )?;
        if self.username.trim().is_empty() {
            return Err(Invalid::new("username", "`username` must not be empty"));
        }
        if let Some(sim) = self.sim_number
            && !(1..=3).contains(&sim)
        {
            return Err(Invalid::new("sim_number", "`sim_number` must be 1, 2 or 3"));
        }
        Ok(())
    }
}

/// `[receivers.NAME] kind = "android"`: a phone that receives the probes'
/// messages and posts them to `{public_url}/hooks/android/NAME`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidReceiverConfig {
    /// The app's webhook signing key. Unsigned events are always refused.
    pub signing_key: Secret,
    /// The receiving phone's device id; when set, events from another
    /// device are refused.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The ids of the webhooks registered for this receiver; when set,
    /// events from another webhook are refused.
    #[serde(default)]
    pub webhook_ids: Vec<String>,
    /// How long the phone may stay silent (no `system:ping`, no message)
    /// before it is reported offline.
    #[serde(
        default = "ping_timeout",
        deserialize_with = "values::duration::deserialize"
    )]
    pub ping_timeout: Duration,
}

impl AndroidReceiverConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_keys(
            &self.signing_key,
            self.device_id.as_deref(),
            &self.webhook_ids,
        )?;
        if self.ping_timeout < Duration::from_secs(60) {
            return Err(Invalid::new(
                "ping_timeout",
                "`ping_timeout` must be at least 1m (the app pings every few minutes at most)",
            ));
        }
        Ok(())
    }
}

fn check_keys(
    signing_key: &Secret,
    device: Option<&str>,
    webhooks: &[String],
) -> Result<(), Invalid> {
    if signing_key.expose().trim().is_empty() {
        return Err(Invalid::new(
            "signing_key",
            "`signing_key` must not be empty: unsigned webhooks are refused",
        ));
    }
    if device.is_some_and(|d| d.trim().is_empty()) {
        return Err(Invalid::new(
            "device_id",
            "`device_id` must not be empty (leave it out)",
        ));
    }
    if webhooks.iter().any(|w| w.trim().is_empty()) {
        return Err(Invalid::new(
            "webhook_ids",
            "`webhook_ids` must not hold an empty id",
        ));
    }
    Ok(())
}

/// A receiver of this kind, as the body of its config table: for tests
/// elsewhere that need a receiver which reports its own health.
#[cfg(test)]
pub(crate) const EXAMPLE_RECEIVER: &str =
    "kind = \"android\"\nsigning_key = \"k\"\nping_timeout = \"10m\"\n";

fn base_url() -> Url {
    Url::parse(BASE_URL).expect("constant URL parses")
}

fn ping_timeout() -> Duration {
    PING_TIMEOUT
}

const SIGNING_KEY: Key = Key {
    name: "signing_key",
    ty: Type::Secret,
    presence: Presence::Required,
    doc: "The app's webhook signing key (Settings → Webhooks → Signing Key): every event must carry `X-Signature`, the hex HMAC-SHA256 of the body followed by `X-Timestamp`, at most 5 minutes old.",
    example: Some(r#""${ANDROID_SIGNING_KEY}""#),
};

const DEVICE_ID: Key = Key {
    name: "device_id",
    ty: Type::String,
    presence: Presence::Unset("events from any device are taken"),
    doc: "The phone's device id (the event's `deviceId`); events from another device are refused.",
    example: Some(r#""ffffffffceb0b1db""#),
};

const WEBHOOK_IDS: Key = Key {
    name: "webhook_ids",
    ty: Type::List(&Type::String),
    presence: Presence::Unset("events from any webhook are taken"),
    doc: "The ids the app gave the webhooks registered for this (the event's `webhookId`); events from another webhook are refused.",
    example: Some(r#"["LreFUt-Z3sSq0JufY9uWB"]"#),
};

/// The reference's tables of the Android kinds.
pub const TABLES: &[Table] = &[
    Table {
        id: "gateways.android",
        title: "[gateways.NAME] kind = \"android\"",
        kind: Some(("gateways", "android")),
        doc: "A phone running SMS Gateway for Android sends the messages, through the app's API (`POST /message`, Basic auth) on the phone's local server or the cloud relay. Receipts (`sms:sent`, `sms:delivered`, `sms:failed`) come by the webhooks registered in the app, at `{public_url}/hooks/android/receipt/NAME`, signed with the signing key.",
        keys: &[
            Key {
                name: "username",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The API user name the app shows (local server or cloud).",
                example: Some(r#""sms""#),
            },
            Key {
                name: "password",
                ty: Type::Secret,
                presence: Presence::Required,
                doc: "The API password the app shows.",
                example: Some(r#""${ANDROID_PASSWORD}""#),
            },
            SIGNING_KEY,
            Key {
                name: "base_url",
                ty: Type::Url,
                presence: Presence::Default(|| toml_string(BASE_URL)),
                doc: "The API's base URL: the cloud relay, or the phone's local server (`http://192.168.1.20:8080`); point it at `sms-canary mock-carrier` (`http://127.0.0.1:4010`) to test.",
                example: Some(r#""http://192.168.1.20:8080""#),
            },
            Key {
                name: "device_id",
                ty: Type::String,
                presence: Presence::Unset(
                    "the account's device the relay picks; receipts from any device",
                ),
                doc: "The device to send with (the cloud relay's device id); receipts from another device are refused.",
                example: Some(r#""ffffffffceb0b1db""#),
            },
            WEBHOOK_IDS,
            Key {
                name: "sim_number",
                ty: Type::Int { min: 1, max: 3 },
                presence: Presence::Unset("the phone's default SIM"),
                doc: "The SIM card to send from.",
                example: Some("1"),
            },
            REQUEST_TIMEOUT,
        ],
        exclusive: &[],
    },
    Table {
        id: "receivers.android",
        title: "[receivers.NAME] kind = \"android\"",
        kind: Some(("receivers", "android")),
        doc: "A phone running SMS Gateway for Android receives the messages and posts its `sms:received` and `system:ping` events to `{public_url}/hooks/android/NAME` (register both with the app's `POST /webhooks`). Each event is checked (signature, 5-minute window, device, webhook) and taken once by its id, however often the app retries it. A phone silent for `ping_timeout` is reported offline: `doctor` fails and the daemon raises its own alert.",
        keys: &[
            SIGNING_KEY,
            DEVICE_ID,
            WEBHOOK_IDS,
            Key {
                name: "ping_timeout",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(PING_TIMEOUT)),
                doc: "How long the phone may send nothing (no `system:ping`, no message) before it counts as offline; set the app's ping interval well below it.",
                example: None,
            },
        ],
        exclusive: &[],
    },
];
