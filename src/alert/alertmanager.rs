//! Prometheus Alertmanager: alerts POSTed to its API v2 (`/api/v2/alerts`).
//!
//! Alertmanager identifies an alert by its label set, so the labels hold only
//! what is stable for the life of an alert (alertname, probe, instance,
//! severity, configured labels) and everything else goes in annotations.
//! Firing notices and reminders set `endsAt` a few hours ahead: Alertmanager
//! resolves an alert by itself once `endsAt` passes, so each reminder pushes
//! it further out, and a canary that died cannot leave an alert firing for
//! ever. A resolved notice sets `endsAt` to its own time, which is how a
//! client tells Alertmanager that an alert is over.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::channel::{Channel, ChannelError, deliver, http_client};
use super::{Notification, Severity, Transition};
use crate::config::{AlertmanagerConfig, Invalid};
use crate::net::BoxFuture;

/// The `alertname` label of every alert we post.
pub const ALERT_NAME: &str = "SmsCanaryProbeFailing";

/// How long a firing alert stays firing in Alertmanager without news from us.
/// Four reminders at the default hourly `reminder`: a missed reminder or two
/// (outbox backlog, restart) does not flap the alert, yet a canary that is
/// gone for good does not leave it firing for days. A probe whose `reminder`
/// is longer than this (or zero, never) will see the alert auto-resolve in
/// Alertmanager between notices.
pub const FIRING_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(4);

/// One element of the `POST /api/v2/alerts` body (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

pub struct AlertmanagerChannel {
    name: String,
    endpoint: url::Url,
    labels: BTreeMap<String, String>,
    client: reqwest::Client,
}

impl AlertmanagerChannel {
    pub fn new(
        name: &str,
        config: &AlertmanagerConfig,
    ) -> Result<AlertmanagerChannel, ChannelError> {
        let endpoint = check_config(config).map_err(|e| e.in_channel(name))?;
        Ok(AlertmanagerChannel {
            name: name.to_string(),
            client: http_client(&endpoint)?,
            endpoint,
            labels: config.labels.clone(),
        })
    }

    /// The alerts to post for `n`.
    ///
    /// Usually one. When the notice is critical a second one resolves the
    /// same alert at warning severity: severity is a label, so an alert that
    /// escalated from slow (warning) to lost (critical) is a new alert to
    /// Alertmanager, and the warning one would otherwise stay firing until its
    /// `endsAt`. Resolving an alert that never fired notifies nobody.
    pub fn alerts(&self, n: &Notification) -> Vec<PostableAlert> {
        // Configured labels first: ours identify the alert and must win.
        let mut labels = self.labels.clone();
        labels.insert("alertname".into(), ALERT_NAME.into());
        labels.insert("probe".into(), n.probe.clone());
        labels.insert("instance".into(), n.instance.clone());
        labels.insert("severity".into(), n.severity.as_str().into());

        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), n.headline());
        annotations.insert("description".to_string(), n.text());
        if let Some(reason) = &n.reason {
            annotations.insert("reason".to_string(), reason.clone());
        }
        if let Some(code) = &n.code {
            annotations.insert("code".to_string(), code.clone());
        }
        annotations.insert("correlation_ids".to_string(), n.correlation_ids.join(", "));

        let starts_at = n.firing_since.unwrap_or(n.at).min(n.at);
        let ends_at = match n.transition {
            Transition::Resolved => n.at,
            // Saturates instead of panicking on a corrupt far-future time.
            Transition::Firing | Transition::Reminder => {
                n.at.checked_add_signed(FIRING_TTL).unwrap_or(n.at)
            }
        };
        let alert = PostableAlert {
            labels,
            annotations,
            starts_at,
            ends_at,
        };
        let mut alerts = vec![alert.clone()];
        if n.severity == Severity::Critical {
            let mut warning = alert;
            warning
                .labels
                .insert("severity".into(), Severity::Warning.as_str().into());
            warning.ends_at = n.at;
            alerts.push(warning);
        }
        alerts
    }
}

/// What is wrong with an Alertmanager channel's settings, found at load;
/// the alerts endpoint when nothing is. It keeps a path prefix
/// (Alertmanager behind a proxy at `/alertmanager`).
pub(crate) fn check_config(config: &AlertmanagerConfig) -> Result<url::Url, Invalid> {
    super::channel::check_http_url("url", &config.url)?;
    crate::net::join_base(&config.url, "api/v2/alerts").map_err(|e| Invalid::new("url", e.reason))
}

impl Channel for AlertmanagerChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn send<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.endpoint.clone())
                .json(&self.alerts(notification));
            deliver(request, &format!("Alertmanager (alerts.{})", self.name)).await
        })
    }

    fn reach(&self) -> BoxFuture<'_, Result<String, ChannelError>> {
        // The status endpoint of the same API version: read-only.
        let status = self
            .endpoint
            .join("status")
            .unwrap_or_else(|_| self.endpoint.clone());
        let request = self.client.get(status);
        Box::pin(async move {
            super::channel::reach_http(request, &format!("Alertmanager (alerts.{})", self.name))
                .await
        })
    }
}
