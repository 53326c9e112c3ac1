//! Alert channels: where a [`Notification`] goes once the state machine has
//! decided to tell people.
//!
//! A channel delivers one notification and classifies a failure as transient
//! (the outbox retries it with backoff) or permanent (dead-lettered at once,
//! since retrying a revoked token or a refused address cannot help). Channels
//! never retry by themselves, so that every attempt is counted and logged by
//! the outbox. A channel is one file here plus one variant of
//! [`AlertConfig`]. The HTTP helpers shared by the webhook-style channels
//! live here too, so that they all classify answers the same way.

use std::time::Duration;

use super::Notification;
use crate::config::{AlertConfig, Invalid};
use crate::net::BoxFuture;
#[cfg(test)]
use crate::net::ErrorClass;

/// A failed delivery: transient ones are retried by the outbox, permanent ones dead-lettered at once.
pub type ChannelError = crate::net::CallError;

/// A place to send notifications to.
pub trait Channel: Send + Sync {
    /// The channel's name in the config (`[alerts.NAME]`).
    fn name(&self) -> &str;

    /// The channel's `kind`: "slack", "email", "webhook" or "alertmanager".
    fn kind(&self) -> &'static str;

    /// Delivers one notification. Delivery is at least once: receivers dedupe by `notification.id`.
    fn send<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Delivers one notification as a follow-up of an earlier message of
    /// this channel (`thread`: the reference that delivery returned), and
    /// returns this message's own reference, for the notices that follow
    /// it. Only channels whose API threads by a reference it hands out
    /// (Slack's `ts`) do more than [`Channel::send`]; mail threads by the
    /// notification's own ids.
    /// Checks that the channel can be reached, without sending anything a
    /// person would see (`doctor`): a request the receiver answers without
    /// acting on it, or an SMTP session up to authentication. `Ok` says what
    /// answered.
    fn reach(&self) -> BoxFuture<'_, Result<String, ChannelError>>;

    fn send_in_thread<'a>(
        &'a self,
        notification: &'a Notification,
        thread: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, ChannelError>> {
        let _ = thread;
        Box::pin(async move { self.send(notification).await.map(|()| None) })
    }
}

/// Builds the channel configured as `[alerts.NAME]`.
///
/// Everything that can be checked without sending (URLs, addresses, header
/// names) is checked here, so that a bad config fails at start-up with a
/// permanent error rather than at the first alert.
pub fn build(name: &str, config: &AlertConfig) -> Result<Box<dyn Channel>, ChannelError> {
    Ok(match config {
        AlertConfig::Slack(c) => Box::new(super::slack::SlackChannel::new(name, c)?),
        AlertConfig::Email(c) => Box::new(super::email::EmailChannel::new(name, c)?),
        AlertConfig::Webhook(c) => Box::new(super::webhook::WebhookChannel::new(name, c)?),
        AlertConfig::Alertmanager(c) => {
            Box::new(super::alertmanager::AlertmanagerChannel::new(name, c)?)
        }
    })
}

/// What is wrong with a channel's settings, found when the config loads
/// (so `validate` refuses it with its file and line), by the same checks
/// that building the channel makes.
pub fn check_config(config: &AlertConfig) -> Result<(), Invalid> {
    match config {
        AlertConfig::Slack(c) => super::slack::check(c),
        AlertConfig::Email(c) => super::email::check_config(c).map(|_| ()),
        AlertConfig::Webhook(c) => super::webhook::check_config(c).map(|_| ()),
        AlertConfig::Alertmanager(c) => super::alertmanager::check_config(c).map(|_| ()),
    }
}

/// An http(s) URL with a host: a URL like `localhost:9093` parses, with
/// `localhost` as its scheme, and would fail only when an alert is sent.
pub(crate) fn check_http_url(field: &'static str, url: &url::Url) -> Result<(), Invalid> {
    if matches!(url.scheme(), "https" | "http") && url.has_host() {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "{field} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9093"
            ),
        ))
    }
}

impl Invalid {
    /// The error of building channel `name` from this setting.
    pub(crate) fn in_channel(self, name: &str) -> ChannelError {
        ChannelError::permanent(format!("alerts.{name}: {}", self.message))
    }
}

/// How long one delivery attempt may take. Short, because the outbox retries
/// and a hung receiver must not hold up the notifications queued behind it.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client of the webhook-style channels.
///
/// Redirects are not followed: reqwest would turn a redirected POST into a
/// GET without the body, and a 2xx from wherever that lands would count as
/// delivered while nobody was told.
pub(crate) fn http_client(url: &url::Url) -> Result<reqwest::Client, ChannelError> {
    let builder = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sms-canary/", env!("CARGO_PKG_VERSION")));
    crate::trust::build(builder, crate::trust::may_call_https([url.as_str()])).map_err(|e| {
        ChannelError::permanent(format!(
            "cannot build HTTP client: {}",
            crate::trust::describe(&e)
        ))
    })
}

/// Sends `request` and classifies the answer; `who` names the receiver in
/// errors ("Slack", "webhook `ops`").
pub(crate) async fn deliver(
    request: reqwest::RequestBuilder,
    who: &str,
) -> Result<(), ChannelError> {
    let response = request.send().await.map_err(|e| transport_error(&e, who))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = crate::net::retry_after(response.headers());
    // The body says why (Slack: `invalid_token`, `channel_not_found`); a
    // failure to read it must not hide the status, so it is best effort.
    let body = crate::net::read_body(response, ERROR_BODY_BYTES).await;
    Err(classify_status(status, retry_after, &body.bytes, who))
}

/// Asks `url` with `request` (a HEAD or GET nobody acts on): any HTTP answer
/// means the receiver is there, except those that say the endpoint is gone
/// (404, 410) or refuses our credentials (401, 403).
pub(crate) async fn reach_http(
    request: reqwest::RequestBuilder,
    who: &str,
) -> Result<String, ChannelError> {
    let response = request.send().await.map_err(|e| transport_error(&e, who))?;
    let status = response.status();
    match status.as_u16() {
        401 | 403 => Err(ChannelError::permanent(format!(
            "{who} refused our credentials (HTTP {status})"
        ))),
        404 | 410 => Err(ChannelError::permanent(format!(
            "{who} answered HTTP {status}: the URL is wrong or was revoked"
        ))),
        _ => Ok(format!("{who} answered (HTTP {})", status.as_u16())),
    }
}

/// How much of an error answer is read: its start says why.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// The error for a non-2xx answer: 408, 429 and 5xx are worth retrying; any
/// other answer (bad payload, revoked token, deleted channel, a redirect)
/// will be the same next time.
pub(crate) fn classify_status(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    who: &str,
) -> ChannelError {
    let code = status.as_u16();
    let detail = crate::net::snippet(body);
    if code == 429 {
        let mut e = ChannelError::transient(format!("{who} is rate limiting (429): {detail}"));
        e.retry_after = retry_after;
        e
    } else if code == 408 || status.is_server_error() {
        let mut e = ChannelError::transient(format!("{who} failed ({code}): {detail}"));
        // 503 may carry Retry-After too; honour it when given.
        e.retry_after = retry_after;
        e
    } else if status.is_redirection() {
        ChannelError::permanent(format!(
            "{who} answered with a redirect ({code}); configure the final URL"
        ))
    } else {
        ChannelError::permanent(format!("{who} refused the notification ({code}): {detail}"))
    }
}

/// A request that got no HTTP answer: always transient, and never with
/// the URL (a Slack webhook URL is a credential).
pub(crate) fn transport_error(e: &reqwest::Error, who: &str) -> ChannelError {
    crate::net::transport_error(e, who)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn class(code: u16) -> ErrorClass {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
        classify_status(status, None, b"", "test").class
    }

    #[test]
    fn statuses_map_to_classes() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(code), ErrorClass::Transient, "{code}");
        }
        for code in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(class(code), ErrorClass::Permanent, "{code}");
        }
    }

    #[test]
    fn retry_after_is_kept_on_429_and_body_is_quoted() {
        let e = classify_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(7)),
            b"rate_limited",
            "Slack",
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert!(e.reason.contains("rate_limited"), "{}", e.reason);
        let e = classify_status(StatusCode::FORBIDDEN, None, b"invalid_token", "Slack");
        assert!(e.reason.contains("403") && e.reason.contains("invalid_token"));
    }
}
