//! Slack: a Block Kit message POSTed to an incoming webhook.
//!
//! The message leads with the headline, then the facts an on-call person
//! needs to act without opening anything else (probe, outcome, severity,
//! latency against threshold, provider code, instance), the reason, and the
//! correlation ids to trace the failure through every system. A plain-text
//! `text` carries the same content for notifications and clients that do not
//! render blocks. The webhook URL is itself the credential, so it never
//! appears in an error or a log line.

use serde_json::{Value, json};

use super::Notification;
use super::channel::{Channel, ChannelError, deliver, http_client};
use crate::config::{Invalid, SlackConfig};
use crate::net::BoxFuture;

/// Block Kit limits: a header's text, a field's text, a section's text.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;

pub struct SlackChannel {
    name: String,
    url: url::Url,
    client: reqwest::Client,
}

impl SlackChannel {
    pub fn new(name: &str, config: &SlackConfig) -> Result<SlackChannel, ChannelError> {
        let url = check_config(config).map_err(|e| e.in_channel(name))?;
        Ok(SlackChannel {
            name: name.to_string(),
            client: http_client(&url)?,
            url,
        })
    }
}

/// What is wrong with a Slack channel's settings, found at load. The parse
/// error never quotes the input (the URL holds a credential).
pub(crate) fn check_config(config: &SlackConfig) -> Result<url::Url, Invalid> {
    let url = url::Url::parse(config.webhook_url.expose()).map_err(|e| {
        Invalid::new(
            "webhook_url",
            format!("webhook_url is not a valid URL: {e}"),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
        return Err(Invalid::new(
            "webhook_url",
            "webhook_url must be an https:// URL (Slack's incoming-webhook URL)",
        ));
    }
    Ok(url)
}

impl Channel for SlackChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url.clone())
                .json(&payload(notification));
            deliver(request, &format!("Slack (alerts.{})", self.name)).await
        })
    }
}

/// The webhook body: `blocks` plus the plain-text fallback `text`. No
/// attachment colours: they are legacy, and the headline already says how bad.
pub fn payload(n: &Notification) -> Value {
    let latency = n
        .latency_ms
        .map_or_else(|| "no arrival".to_string(), |l| format!("{l:.0} ms"));
    let field = |label: &str, value: &str| {
        json!({
            "type": "mrkdwn",
            "text": truncate(&format!("*{label}*\n{}", escape(value)), FIELD_MAX),
        })
    };
    let reason = match (&n.reason, n.transition) {
        (Some(reason), _) => escape(reason),
        (None, super::Transition::Resolved) => "The SMS round trip works again.".to_string(),
        (None, _) => "(no reason given)".to_string(),
    };
    let ids = if n.correlation_ids.is_empty() {
        "none".to_string()
    } else {
        n.correlation_ids
            .iter()
            .map(|id| format!("`{}`", escape(id)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut context = format!("Correlation ids: {ids}");
    if let Some(since) = n.firing_since {
        context.push_str(&format!(" | Firing since {}", since.to_rfc3339()));
    }
    context.push_str(&format!(" | {}", n.at.to_rfc3339()));
    json!({
        "text": n.text(),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(&n.headline(), HEADER_MAX)},
            },
            {
                "type": "section",
                "fields": [
                    field("Probe", &n.probe),
                    field("Outcome", &n.outcome.to_string()),
                    field("Severity", n.severity.as_str()),
                    field("Latency", &format!("{latency} (threshold {:.0} ms)", n.threshold_ms)),
                    field("Provider code", n.code.as_deref().unwrap_or("none")),
                    field("Instance", &n.instance),
                ],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(&format!("*Reason*\n{reason}"), SECTION_MAX)},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": truncate(&context, SECTION_MAX)}],
            },
        ],
    })
}

/// Slack's mrkdwn treats `<`, `>` and `&` as control characters (links,
/// mentions); a provider's error text must show as written, not ping `@here`.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts to Slack's limits (counted in characters) rather than having the whole
/// message refused with `invalid_blocks`.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_truncates() {
        assert_eq!(escape("<!here> a&b"), "&lt;!here&gt; a&amp;b");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate(&"é".repeat(10), 5).chars().count(), 5);
    }
}
