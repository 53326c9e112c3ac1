//! `kind = "mock"`: the bundled mock carrier, started in-process.
//!
//! The mock listens on a loopback port and is driven through the Twilio
//! gateway, so a sandbox probe exercises exactly the code path a real Twilio
//! probe does: HTTP submit, signed status callbacks, signed inbound webhooks.

use tokio::net::TcpListener;

use super::twilio::TwilioGateway;
use crate::config::MockGatewayConfig;
use crate::mock_carrier::{MockCarrier, MockConfig, MockHandle, NumberConfig};

/// A running in-process mock and the gateway that talks to it.
pub struct MockGateway {
    pub carrier: MockHandle,
    pub gateway: TwilioGateway,
}

/// What starting the mock checks, for loading the config.
pub fn check_config(config: &MockGatewayConfig) -> Result<(), crate::config::Invalid> {
    let numbers = config
        .numbers
        .iter()
        .map(|(n, b)| (n.as_str().to_string(), b.clone()))
        .collect();
    crate::mock_carrier::validate(&mock_config(config, numbers)).map_err(|e| {
        let message = e.to_string();
        let field = if message.contains("account sid") {
            "account_sid"
        } else if message.contains("auth token") {
            "auth_token"
        } else {
            "numbers"
        };
        crate::config::Invalid::new(field, message)
    })
}

/// Starts the mock for gateway `name`. `inbound` lists the numbers it owns and
/// the webhook, if any, each one's inbound messages are posted to (without one
/// they can still be listed, for polling receivers).
pub async fn start(
    name: &str,
    config: &MockGatewayConfig,
    inbound: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<MockGateway, String> {
    let mut numbers: std::collections::BTreeMap<String, NumberConfig> = config
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
    let mock_config = mock_config(config, numbers);
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("gateway `{name}`: cannot start the mock carrier: {e}"))?;
    let carrier = MockCarrier::start(mock_config, listener)
        .await
        .map_err(|e| format!("gateway `{name}`: cannot start the mock carrier: {e}"))?;
    let base =
        url::Url::parse(&carrier.base_url()).map_err(|e| format!("mock carrier URL: {e}"))?;
    let gateway = TwilioGateway::new(
        name,
        &base,
        &config.account_sid,
        config.auth_token.clone(),
        std::time::Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    Ok(MockGateway { carrier, gateway })
}

fn mock_config(
    config: &MockGatewayConfig,
    numbers: std::collections::BTreeMap<String, NumberConfig>,
) -> MockConfig {
    MockConfig {
        account_sid: config.account_sid.clone(),
        auth_token: config.auth_token.clone(),
        latency: config.latency.clone(),
        seed: config.seed,
        numbers,
        faults: config.faults.clone(),
        ..MockConfig::default()
    }
}
