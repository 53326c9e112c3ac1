//! `kind = "mock"`: the bundled mock carrier, started in-process on a
//! loopback port: its settings, how they are checked, and starting it.
//!
//! The registry ([`crate::providers`]) pairs the started carrier with the
//! client of the provider API it speaks, so a sandbox probe exercises
//! exactly the code path a real probe does: HTTP submit, signed status
//! callbacks, signed inbound webhooks.

use std::collections::BTreeMap;

use serde::Deserialize;
use tokio::net::TcpListener;

use crate::mock_carrier::{
    Faults, LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig,
};
use crate::redact::Secret;
use crate::values::{E164, Invalid};

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
    /// The protocol probes reach it through.
    #[serde(default)]
    pub api: super::MockApi,
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

impl MockGatewayConfig {
    /// What starting the mock checks, without starting it.
    pub fn validate(&self) -> Result<(), Invalid> {
        let numbers = self
            .numbers
            .iter()
            .map(|(n, b)| (n.as_str().to_string(), b.clone()))
            .collect();
        crate::mock_carrier::validate(&self.carrier_config(numbers)).map_err(|e| {
            let message = e.to_string();
            let field = if message.contains("account sid") {
                "account_sid"
            } else if message.contains("auth token") {
                "auth_token"
            } else {
                "numbers"
            };
            Invalid::new(field, message)
        })
    }

    fn carrier_config(&self, numbers: BTreeMap<String, NumberConfig>) -> MockConfig {
        MockConfig {
            account_sid: self.account_sid.clone(),
            auth_token: self.auth_token.clone(),
            latency: self.latency.clone(),
            seed: self.seed,
            numbers,
            faults: self.faults.clone(),
            ..MockConfig::default()
        }
    }
}

/// Starts the mock for gateway `name`. `inbound` lists the numbers it owns and
/// the webhook, if any, each one's inbound messages are posted to (without one
/// they can still be listed, for polling receivers).
pub async fn start(
    name: &str,
    config: &MockGatewayConfig,
    inbound: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<MockHandle, String> {
    let mut numbers: BTreeMap<String, NumberConfig> = config
        .numbers
        .iter()
        .map(|(n, b)| (n.as_str().to_string(), b.clone()))
        .collect();
    for (number, url) in inbound {
        let entry = numbers.entry(number).or_default();
        entry.owned = true;
        if entry.inbound_url.is_none() {
            entry.inbound_url = url;
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("gateway `{name}`: cannot start the mock carrier: {e}"))?;
    MockCarrier::start(config.carrier_config(numbers), listener)
        .await
        .map_err(|e| format!("gateway `{name}`: cannot start the mock carrier: {e}"))
}
