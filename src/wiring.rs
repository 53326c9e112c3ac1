//! Wiring: the gateways, pollers and in-process mock carriers a set of
//! probes use, built from the config through the providers' registry. Used
//! by `check`, the daemon and `doctor`.

use std::sync::Arc;

use url::Url;

use crate::check::CheckError;
use crate::config::{Config, GatewayConfig, Probe};
use crate::gateway::Gateway;
use crate::mock_carrier::MockHandle;
use crate::providers;
use crate::receiver::inbox::Inbox;
use crate::receiver::poll::Poller;
use crate::receiver::webhook::join_public;

/// Webhook receivers need our listener, and so do in-process mocks (their
/// receipts are local). Real gateways' receipts are only asked for when
/// `public_url` says how the provider can reach us.
pub(crate) fn needs_listener(config: &Config, probes: &[&Probe]) -> bool {
    probes.iter().any(|p| {
        let gateway = &config.gateways[&p.gateway];
        config.receivers[&p.receiver].is_webhook()
            || matches!(gateway, GatewayConfig::Mock(_))
            || (config.canary.public_url.is_some() && gateway.receipt_route().is_some())
    })
}

/// The gateways, pollers and in-process mock carriers a set of probes use.
pub(crate) struct Setup {
    gateways: Vec<(String, Box<dyn Gateway>)>,
    pollers: Vec<(String, Box<dyn Poller>)>,
    mocks: Vec<MockHandle>,
}

impl Setup {
    pub(crate) async fn start(
        config: &Config,
        probes: &[&Probe],
        public_url: Option<&Url>,
        inbox: &Arc<Inbox>,
    ) -> Result<Setup, CheckError> {
        let mut setup = Setup {
            gateways: Vec::new(),
            pollers: Vec::new(),
            mocks: Vec::new(),
        };
        let mut mock_urls: Vec<(String, Url)> = Vec::new();
        // Mocks first: polling receivers on a mock need its URL.
        for (name, gateway) in &config.gateways {
            let GatewayConfig::Mock(m) = gateway else {
                continue;
            };
            let owned = owned_numbers(config, probes, name, public_url);
            let used = probes.iter().any(|p| &p.gateway == name) || !owned.is_empty();
            if !used {
                continue;
            }
            let links = providers::Links {
                inbox,
                receivers: &config.receivers,
            };
            let started = providers::start_mock(name, m, owned, &links)
                .await
                .map_err(CheckError::Gateway)?;
            let base = Url::parse(&started.carrier.base_url())
                .map_err(|e| CheckError::Gateway(e.to_string()))?;
            mock_urls.push((name.clone(), base));
            setup.mocks.push(started.carrier);
            setup.gateways.push((name.clone(), started.gateway));
        }
        for probe in probes {
            if !setup.gateways.iter().any(|(n, _)| n == &probe.gateway) {
                let gateway = build_gateway(config, &probe.gateway, inbox)?;
                setup.gateways.push((probe.gateway.clone(), gateway));
            }
            if !setup.pollers.iter().any(|(n, _)| n == &probe.receiver)
                && let Some(poller) = build_poller(config, &probe.receiver, &mock_urls)?
            {
                setup.pollers.push((probe.receiver.clone(), poller));
            }
        }
        Ok(setup)
    }

    pub(crate) fn gateway(&self, name: &str) -> &dyn Gateway {
        // Setup::start builds one for every selected probe's gateway.
        let found = self.gateways.iter().find(|(n, _)| n == name);
        found
            .map(|(_, g)| g.as_ref())
            .expect("gateway built for each selected probe")
    }

    pub(crate) fn poller<'a>(&'a self, receiver: &'a str) -> Option<(&'a str, &'a dyn Poller)> {
        self.pollers
            .iter()
            .find(|(n, _)| n == receiver)
            .map(|(n, p)| (n.as_str(), p.as_ref()))
    }

    pub(crate) async fn shutdown(self) {
        // Gateways first: a bind to an in-process mock unbinds while it still listens.
        futures_util::future::join_all(self.gateways.iter().map(|(_, g)| g.close())).await;
        for m in self.mocks {
            m.shutdown().await;
        }
    }
}

/// The numbers mock `gateway` must own: the `to` of probes whose arrivals it
/// delivers, with the inbound webhook URL when the receiver is a webhook.
fn owned_numbers(
    config: &Config,
    probes: &[&Probe],
    gateway: &str,
    public_url: Option<&Url>,
) -> Vec<(String, Option<String>)> {
    let route = config.gateways[gateway].inbound_route();
    probes
        .iter()
        .filter_map(|p| {
            let webhook = config.receivers[&p.receiver].takes_from_mock(gateway, &p.gateway)?;
            let url = match (webhook, public_url, route) {
                (true, Some(u), Some(route)) => Some(join_public(u, &route.path_for(&p.receiver))),
                _ => None,
            };
            Some((p.to.as_str().to_string(), url))
        })
        .collect()
}

/// Builds gateway `name` (not a mock: those are started); a gateway that
/// receives over its own connection hands what arrives to `inbox`.
pub(crate) fn build_gateway(
    config: &Config,
    name: &str,
    inbox: &Arc<Inbox>,
) -> Result<Box<dyn Gateway>, CheckError> {
    let links = providers::Links {
        inbox,
        receivers: &config.receivers,
    };
    config.gateways[name]
        .build(name, &links)
        .map_err(|e| CheckError::Gateway(format!("gateway `{name}`: {e}")))
}

/// Builds the poller of receiver `receiver`, if it polls.
pub(crate) fn build_poller(
    config: &Config,
    receiver: &str,
    mock_urls: &[(String, Url)],
) -> Result<Option<Box<dyn Poller>>, CheckError> {
    providers::build_poller(&config.receivers[receiver], &config.gateways, mock_urls)
        .map_err(|e| CheckError::Gateway(format!("receiver `{receiver}`: {e}")))
}
