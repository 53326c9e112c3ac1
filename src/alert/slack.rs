//! Slack: a Block Kit message, through an incoming webhook or, with a bot
//! token, Slack's `chat.postMessage`.
//!
//! The message leads with the headline, then the facts an on-call person
//! needs to act without opening anything else (probe, outcome, severity,
//! latency against threshold, provider code and message id, the route and
//! the masked destination, since when it fails, the last good run), the
//! reason and what the run got to, the findings, buttons for the runbook and
//! the dashboard, and the correlation ids to trace the failure through every
//! system. A plain-text `text` carries the same content for notifications
//! and clients that do not render blocks.
//!
//! An incoming webhook posts each notice as a new message. With a bot token
//! the API answers with the message's `ts`, which the outbox keeps, so a
//! reminder or resolve is posted in the thread of the notice that told the
//! firing. The webhook URL and the token are credentials: they never appear
//! in an error or a log line.

use serde_json::{Value, json};

use super::channel::{Channel, ChannelError, deliver, http_client};
use super::{Notification, Transition};
use crate::config::{Invalid, SlackConfig};
use crate::net::BoxFuture;
use crate::redact::Secret;

/// Block Kit limits: a header's text, a field's text, a section's text,
/// fields per section, a button's text.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;
const FIELDS_MAX: usize = 10;
const BUTTON_MAX: usize = 75;

pub struct SlackChannel {
    name: String,
    to: Target,
    client: reqwest::Client,
}

/// Where messages go.
enum Target {
    Webhook(url::Url),
    Bot {
        post_message: url::Url,
        token: Secret,
        channel: String,
    },
}

impl SlackChannel {
    pub fn new(name: &str, config: &SlackConfig) -> Result<SlackChannel, ChannelError> {
        let to = check_config(config).map_err(|e| e.in_channel(name))?;
        let url = match &to {
            Target::Webhook(url) => url.clone(),
            Target::Bot { post_message, .. } => post_message.clone(),
        };
        Ok(SlackChannel {
            name: name.to_string(),
            client: http_client(&url)?,
            to,
        })
    }

    fn who(&self) -> String {
        format!("Slack (alerts.{})", self.name)
    }

    /// `chat.postMessage`: Slack answers 200 with `{"ok": false, "error"}`
    /// for most refusals, so the body decides, and a `ts` comes back.
    async fn post(
        &self,
        n: &Notification,
        thread: Option<&str>,
    ) -> Result<Option<String>, ChannelError> {
        let Target::Bot {
            post_message,
            token,
            channel,
        } = &self.to
        else {
            unreachable!("post is only called for a bot target");
        };
        let mut body = payload(n);
        body["channel"] = json!(channel);
        if let Some(ts) = thread {
            body["thread_ts"] = json!(ts);
            // A resolve is also shown in the channel, not only in the thread.
            if n.transition == Transition::Resolved {
                body["reply_broadcast"] = json!(true);
            }
        }
        let response = self
            .client
            .post(post_message.clone())
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| super::channel::transport_error(&e, &self.who()))?;
        let status = response.status();
        let retry_after = crate::net::retry_after(response.headers());
        let read = crate::net::read_body(response, 64 * 1024).await;
        if !status.is_success() {
            return Err(super::channel::classify_status(
                status,
                retry_after,
                &read.bytes,
                &self.who(),
            ));
        }
        let answer: Value = serde_json::from_slice(&read.bytes).unwrap_or(Value::Null);
        if answer["ok"] == true {
            return Ok(answer["ts"].as_str().map(str::to_string));
        }
        let error = answer["error"].as_str().unwrap_or("no `ok` in the answer");
        // Slack's own words for what will not change by retrying.
        let permanent = [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "missing_scope",
            "invalid_blocks",
            "msg_too_long",
        ];
        let reason = format!("{} refused the message: {error}", self.who());
        Err(if permanent.contains(&error) {
            ChannelError::permanent(reason)
        } else {
            ChannelError::transient(reason)
        })
    }
}

/// What is wrong with a Slack channel's settings, found at load: a webhook
/// URL, or a bot token with a channel. The parse error never quotes the
/// input (the URL holds a credential).
fn check_config(config: &SlackConfig) -> Result<Target, Invalid> {
    match (&config.webhook_url, &config.bot_token) {
        (Some(url), None) => {
            let url = url::Url::parse(url.expose()).map_err(|e| {
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
            Ok(Target::Webhook(url))
        }
        (None, Some(token)) => {
            let channel = config
                .channel
                .clone()
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| {
                    Invalid::new("bot_token", "`bot_token` needs a `channel` to post to")
                })?;
            super::channel::check_http_url("api_url", &config.api_url)?;
            let post_message = crate::net::join_base(&config.api_url, "chat.postMessage")
                .map_err(|e| Invalid::new("api_url", e.reason))?;
            Ok(Target::Bot {
                post_message,
                token: token.clone(),
                channel,
            })
        }
        (Some(_), Some(_)) => Err(Invalid::new(
            "bot_token",
            "set either `webhook_url` or `bot_token` (with `channel`), not both",
        )),
        (None, None) => Err(Invalid::new(
            "webhook_url",
            "set `webhook_url` (an incoming webhook), or `bot_token` and `channel`",
        )),
    }
}

/// The settings check of [`crate::alert::channel::check_config`].
pub(crate) fn check(config: &SlackConfig) -> Result<(), Invalid> {
    check_config(config).map(|_| ())
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
        Box::pin(async move { self.send_in_thread(notification, None).await.map(|_| ()) })
    }

    fn reach(&self) -> BoxFuture<'_, Result<String, ChannelError>> {
        Box::pin(async move {
            match &self.to {
                // A GET posts nothing: Slack answers it (400 or 405) if the
                // hook exists, 404 or 410 if it was revoked.
                Target::Webhook(url) => {
                    super::channel::reach_http(self.client.get(url.clone()), &self.who()).await
                }
                // auth.test: checks the token, posts nothing.
                Target::Bot {
                    post_message,
                    token,
                    ..
                } => {
                    let url = post_message
                        .join("auth.test")
                        .map_err(|e| ChannelError::permanent(e.to_string()))?;
                    let response = self
                        .client
                        .post(url)
                        .bearer_auth(token.expose())
                        .send()
                        .await
                        .map_err(|e| super::channel::transport_error(&e, &self.who()))?;
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    if answer["ok"] == true {
                        Ok(format!("{} accepts the bot token", self.who()))
                    } else {
                        Err(ChannelError::permanent(format!(
                            "{} refused the bot token: {}",
                            self.who(),
                            answer["error"].as_str().unwrap_or("no `ok` in the answer")
                        )))
                    }
                }
            }
        })
    }

    fn send_in_thread<'a>(
        &'a self,
        notification: &'a Notification,
        thread: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, ChannelError>> {
        Box::pin(async move {
            match &self.to {
                Target::Webhook(url) => {
                    let request = self.client.post(url.clone()).json(&payload(notification));
                    deliver(request, &self.who()).await.map(|()| None)
                }
                Target::Bot { .. } => self.post(notification, thread).await,
            }
        })
    }
}

/// The message: `blocks` plus the plain-text fallback `text`. No attachment
/// colours: they are legacy, and the headline already says how bad.
pub fn payload(n: &Notification) -> Value {
    let field = |label: &str, value: &str| {
        json!({
            "type": "mrkdwn",
            "text": truncate(&format!("*{label}*\n{}", escape(value)), FIELD_MAX),
        })
    };
    let section = |label: &str, value: &str| {
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&format!("*{label}*\n{}", escape(value)), SECTION_MAX)},
        })
    };
    let facts = n.facts();
    // The long ones get a section of their own; the short ones share one.
    let long = ["Reason", "Run", "Finding", "Correlation ids"];
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&n.headline(), HEADER_MAX)},
    })];
    let mut fields = Vec::new();
    if !n.is_about_canary() {
        fields.push(field("Probe", &n.probe));
        fields.push(field("Outcome", &n.outcome.to_string()));
        fields.push(field("Severity", n.severity.as_str()));
    }
    for (label, value) in &facts {
        // Links are buttons; the instance and the time go in the context.
        if long.contains(label) || matches!(*label, "Runbook" | "Dashboard" | "Instance" | "Time") {
            continue;
        }
        fields.push(field(label, value));
    }
    if n.reason.is_none() && n.transition == Transition::Resolved {
        blocks.push(section("Resolved", "The SMS round trip works again."));
    }
    for (label, value) in facts
        .iter()
        .filter(|(l, _)| long.contains(l) && *l != "Correlation ids")
    {
        blocks.push(section(label, value));
    }
    for chunk in fields.chunks(FIELDS_MAX) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    let buttons: Vec<Value> = n
        .links
        .iter()
        .filter(|l| l.url.starts_with("https://") || l.url.starts_with("http://"))
        .map(|l| {
            json!({
                "type": "button",
                "text": {"type": "plain_text", "text": truncate(&l.label, BUTTON_MAX)},
                "url": l.url,
            })
        })
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    let ids = if n.correlation_ids.is_empty() {
        "none".to_string()
    } else {
        n.correlation_ids
            .iter()
            .map(|id| format!("`{}`", escape(id)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(&format!("Correlation ids: {ids} | {} | {}", escape(&n.instance), super::time(n.at)), SECTION_MAX)}],
    }));
    json!({"text": n.text(), "blocks": blocks})
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
