//! `doctor`: preflight checks that send no SMS.
//!
//! The config loads; each gateway accepts its credentials through a read-only
//! call its provider offers (an account fetch, a balance, your API's health URL);
//! the webhook listener can bind; each polling receiver's endpoint answers;
//! every probe has an alert channel and each channel answers (a request it
//! does not act on, an SMTP session up to authentication); the state store
//! opens, passes its quick check and takes a write; each receiving phone
//! that reports its health was heard from (as the daemon recorded it)
//! within its `ping_timeout`.
//! Problems here are what would otherwise surface as a failed probe at 3 am.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use url::Url;

use crate::config::{Config, GatewayConfig, ReceiverConfig};
use crate::gateway::Gateway;
use crate::receiver::poll::Watch;
use crate::receiver::webhook::join_public;
use crate::wiring::{build_gateway, build_poller};

/// How long one preflight call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Fail,
    /// Nothing to check (e.g. an HTTP gateway without `health_url`).
    Skip,
}

/// The check of a receiving phone's signs of life: the daemon's preflight
/// leaves it out (the daemon watches the phone and alerts on it itself).
pub const PHONE_CHECK: &str = "phone";

/// One line of the doctor's table.
#[derive(Debug, Clone)]
pub struct Item {
    pub check: &'static str,
    pub subject: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// Runs every preflight check. `listen` overrides `[canary] listen`.
pub async fn doctor(config: &Config, listen: Option<SocketAddr>) -> Vec<Item> {
    let mut items = vec![Item {
        check: "config",
        subject: config.path.display().to_string(),
        verdict: Verdict::Ok,
        detail: format!(
            "{} probe(s), {} gateway(s), {} receiver(s)",
            config.probes.len(),
            config.gateways.len(),
            config.receivers.len()
        ),
    }];
    let mut mocks = Vec::new();
    let mut mock_urls = Vec::new();
    for (name, gateway) in &config.gateways {
        let subject = format!("{name} ({})", gateway.kind());
        let built: Result<Box<dyn Gateway>, String> = match gateway {
            GatewayConfig::Mock(m) => match crate::providers::start_mock(
                name,
                m,
                Vec::new(),
                &crate::providers::Links {
                    inbox: &crate::receiver::inbox::Inbox::new(),
                    receivers: &config.receivers,
                },
            )
            .await
            {
                Ok(started) => {
                    if let Ok(url) = Url::parse(&started.carrier.base_url()) {
                        mock_urls.push((name.clone(), url));
                    }
                    mocks.push(started.carrier);
                    Ok(started.gateway)
                }
                Err(e) => Err(e),
            },
            _ => build_gateway(config, name, &crate::receiver::inbox::Inbox::new())
                .map_err(|e| e.to_string()),
        };
        let (verdict, detail) = match built {
            Err(e) => (Verdict::Fail, e),
            Ok(g) => match tokio::time::timeout(CALL_TIMEOUT, g.preflight()).await {
                Err(_) => (Verdict::Fail, "no answer within 15s".to_string()),
                Ok(Ok(Some(detail))) => (Verdict::Ok, detail),
                Ok(Ok(None)) => (
                    Verdict::Skip,
                    "no read-only call to make (set health_url to check it)".into(),
                ),
                Ok(Err(e)) => (Verdict::Fail, e.masked().to_string()),
            },
        };
        items.push(Item {
            check: "gateway",
            subject,
            verdict,
            detail,
        });
    }
    if config.receivers.values().any(ReceiverConfig::is_webhook) {
        items.push(listener(config, listen).await);
    }
    for (name, receiver) in &config.receivers {
        if let Some(limit) = receiver.silence_limit() {
            items.push(phone(config, name, limit).await);
        }
        if receiver.is_webhook() {
            continue;
        }
        items.push(poll(config, name, receiver, &mock_urls).await);
    }
    for m in mocks {
        m.shutdown().await;
    }
    items.push(alerts(config));
    for (name, channel) in &config.alerts {
        items.push(channel_reach(name, channel).await);
    }
    items.push(store(config).await);
    items
}

/// An alert channel answers, without being sent anything a person sees.
async fn channel_reach(name: &str, config: &crate::config::AlertConfig) -> Item {
    let subject = format!("{name} ({})", config.kind());
    let (verdict, detail) = match crate::alert::build_channel(name, config) {
        Err(e) => (Verdict::Fail, e.reason),
        Ok(channel) => match tokio::time::timeout(CALL_TIMEOUT, channel.reach()).await {
            Err(_) => (Verdict::Fail, "no answer within 15s".to_string()),
            Ok(Ok(detail)) => (Verdict::Ok, detail),
            Ok(Err(e)) => (Verdict::Fail, e.reason),
        },
    };
    Item {
        check: "channel",
        subject,
        verdict,
        detail,
    }
}

/// Every enabled probe notifies someone, or says it means not to.
fn alerts(config: &Config) -> Item {
    let forgotten: Vec<&str> = config
        .probes
        .iter()
        .filter(|p| p.alerts_forgotten())
        .map(|p| p.name.as_str())
        .collect();
    let (verdict, detail) = if forgotten.is_empty() {
        let channels = config.alerts.len();
        (
            Verdict::Ok,
            format!("every enabled probe names its channels ({channels} configured)"),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "no alert channel for {}: their alerts would go nowhere (set `alerts = [...]` \
                 in the probe or [defaults], or `alerts = []` in the probe to mean it)",
                forgotten.join(", ")
            ),
        )
    };
    Item {
        check: "alerts",
        subject: "probes".into(),
        verdict,
        detail,
    }
}

/// The state store opens, passes SQLite's quick check and takes a write:
/// what every run and notification needs.
async fn store(config: &Config) -> Item {
    let dir = config.canary.state_dir.clone();
    let subject = dir.join(crate::store::DB_FILE).display().to_string();
    let checked = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open(&dir)?;
        store.quick_check()?;
        store.touch(chrono::Utc::now())?;
        Ok::<_, crate::store::StoreError>(())
    })
    .await;
    let (verdict, detail) = match checked {
        Ok(Ok(())) => (
            Verdict::Ok,
            "opens, passes its quick check, writable".to_string(),
        ),
        Ok(Err(e)) => (Verdict::Fail, e.to_string()),
        Err(e) => (Verdict::Fail, e.to_string()),
    };
    Item {
        check: "store",
        subject,
        verdict,
        detail,
    }
}

/// A receiving phone was heard from (a ping, a message) within its limit,
/// as the daemon recorded it in the store.
async fn phone(config: &Config, name: &str, limit: Duration) -> Item {
    let dir = config.canary.state_dir.clone();
    let who = name.to_string();
    let heard =
        tokio::task::spawn_blocking(move || crate::store::Store::open(&dir)?.last_heard(&who))
            .await;
    let now = chrono::Utc::now();
    let wait = humantime::format_duration(limit);
    let (verdict, detail) = match heard {
        Ok(Ok(Some(at))) => {
            let ago = (now - at).to_std().unwrap_or_default();
            let shown = humantime::format_duration(Duration::from_secs(ago.as_secs()));
            if ago <= limit {
                (Verdict::Ok, format!("last heard {shown} ago"))
            } else {
                (
                    Verdict::Fail,
                    format!(
                        "offline since {}: nothing heard for {shown}, over its ping_timeout of {wait}                          (is the phone on and the app running, with its system:ping webhook registered?)",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                )
            }
        }
        Ok(Ok(None)) => (
            Verdict::Fail,
            "never heard from: register its system:ping and sms:received webhooks and run the              daemon, which records every sign of life"
                .to_string(),
        ),
        Ok(Err(e)) => (Verdict::Fail, format!("cannot read when it was heard: {e}")),
        Err(e) => (Verdict::Fail, e.to_string()),
    };
    Item {
        check: PHONE_CHECK,
        subject: format!("{name} ({})", config.receivers[name].kind()),
        verdict,
        detail,
    }
}

async fn listener(config: &Config, listen: Option<SocketAddr>) -> Item {
    let addr = listen.unwrap_or(config.canary.listen);
    let (verdict, detail) = match TcpListener::bind(addr).await {
        Ok(_) => {
            let public = config.canary.public_url_for(addr);
            (
                Verdict::Ok,
                format!(
                    "can bind; providers must reach {}",
                    join_public(&public, "/hooks/…")
                ),
            )
        }
        Err(e) => (
            Verdict::Fail,
            format!("cannot bind: {e} (is the daemon running?)"),
        ),
    };
    Item {
        check: "listener",
        subject: addr.to_string(),
        verdict,
        detail,
    }
}

async fn poll(
    config: &Config,
    name: &str,
    receiver: &ReceiverConfig,
    mock_urls: &[(String, Url)],
) -> Item {
    let subject = format!("{name} ({})", receiver.kind());
    let Some(probe) = config.probes.iter().find(|p| p.receiver == name) else {
        return Item {
            check: "receiver",
            subject,
            verdict: Verdict::Skip,
            detail: "no probe uses it".into(),
        };
    };
    let poller = match build_poller(config, name, mock_urls) {
        Ok(Some(p)) => p,
        Ok(None) => {
            // It takes what its gateway's connection delivers: the gateway's
            // check above covers it.
            let detail = receiver
                .gateway()
                .map(|g| format!("arrives over gateway `{}`, checked above", g.get_ref()))
                .unwrap_or_default();
            return Item {
                check: "receiver",
                subject,
                verdict: Verdict::Skip,
                detail,
            };
        }
        Err(e) => {
            return Item {
                check: "receiver",
                subject,
                verdict: Verdict::Fail,
                detail: e.to_string(),
            };
        }
    };
    let watch = Watch {
        to: probe.to.clone(),
        since: chrono::Utc::now(),
        correlation_id: "doctor".into(),
    };
    let (verdict, detail) = match tokio::time::timeout(CALL_TIMEOUT, poller.poll(&watch)).await {
        Err(_) => (Verdict::Fail, "no answer within 15s".to_string()),
        Ok(Ok(found)) => (
            Verdict::Ok,
            format!(
                "answers ({} message(s) listed for {})",
                found.len(),
                probe.to.masked()
            ),
        ),
        Ok(Err(e)) => (Verdict::Fail, e.masked().to_string()),
    };
    Item {
        check: "receiver",
        subject,
        verdict,
        detail,
    }
}

/// The table `doctor` prints.
pub fn render(items: &[Item]) -> String {
    let w = items.iter().map(|i| i.subject.len()).max().unwrap_or(0);
    let mut out = String::new();
    for item in items {
        let verdict = match item.verdict {
            Verdict::Ok => "ok",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        let _ = writeln!(
            out,
            "{:<8}  {:<w$}  {verdict:<4}  {}",
            item.check, item.subject, item.detail
        );
    }
    let failed = items.iter().filter(|i| i.verdict == Verdict::Fail).count();
    let _ = writeln!(
        out,
        "{}",
        if failed == 0 {
            "all checks passed".to_string()
        } else {
            format!("{failed} check(s) failed")
        }
    );
    out
}

/// 0 when nothing failed, 2 otherwise (a preflight failure is critical).
pub fn exit_code(items: &[Item]) -> u8 {
    if items.iter().any(|i| i.verdict == Verdict::Fail) {
        2
    } else {
        0
    }
}
