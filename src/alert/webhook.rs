//! Generic webhook: the [`Notification`] itself, POSTed as JSON.
//!
//! The body is the notification's serde form, the same stable contract the
//! outbox stores, so a receiver can deserialize it with the same type. When a
//! `secret` is configured the exact body bytes are signed (`X-Signature-256:
//! sha256=<hex HMAC-SHA256>`, as GitHub does), so the receiver can tell our
//! alerts from forged ones. `X-SMS-Canary-Notification-ID` repeats the id in a
//! header, so a receiver can drop a redelivery before parsing the body.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::Notification;
use super::channel::{Channel, ChannelError, deliver, http_client};
use crate::config::{Invalid, WebhookAlertConfig};
use crate::net::BoxFuture;
use crate::redact::Secret;

/// Carries `notification.id`, for deduplication by the receiver.
pub const NOTIFICATION_ID_HEADER: &str = "X-SMS-Canary-Notification-ID";
/// Carries `sha256=<hex>` over the body when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Signature-256";

pub struct WebhookChannel {
    name: String,
    url: url::Url,
    secret: Option<Secret>,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl WebhookChannel {
    pub fn new(name: &str, config: &WebhookAlertConfig) -> Result<WebhookChannel, ChannelError> {
        let headers = check_config(config).map_err(|e| e.in_channel(name))?;
        Ok(WebhookChannel {
            name: name.to_string(),
            url: config.url.clone(),
            secret: config.secret.clone(),
            headers,
            client: http_client(&config.url)?,
        })
    }

    /// The body and headers of one delivery; the signature covers exactly
    /// these bytes, so they are serialized once and sent as they are.
    fn request(&self, n: &Notification) -> Result<(Vec<u8>, HeaderMap), ChannelError> {
        let body = serde_json::to_vec(n).map_err(|e| {
            ChannelError::permanent(format!("cannot serialize the notification: {e}"))
        })?;
        // Configured headers first, ours after: a configured header must not
        // be able to replace the id or the signature the receiver relies on.
        let mut headers = self.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let id = HeaderValue::from_str(&n.id).map_err(|_| {
            ChannelError::permanent("the notification id is not a valid header value")
        })?;
        headers.insert(NOTIFICATION_ID_HEADER, id);
        if let Some(secret) = &self.secret {
            let signature = crate::signing::body_signature(&body, secret.expose());
            // Hex and a prefix: always a valid header value.
            let value = HeaderValue::from_str(&signature).map_err(|_| {
                ChannelError::permanent("the signature is not a valid header value")
            })?;
            headers.insert(SIGNATURE_HEADER, value);
        }
        Ok((body, headers))
    }
}

/// What is wrong with a webhook channel's settings, found at load; the
/// headers to send when nothing is.
pub(crate) fn check_config(config: &WebhookAlertConfig) -> Result<HeaderMap, Invalid> {
    super::channel::check_http_url("url", &config.url)?;
    let mut headers = HeaderMap::new();
    for (key, value) in &config.headers {
        let header = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| Invalid::new("headers", format!("invalid header name `{key}`")))?;
        // Never quote the value: it is typically a token.
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
            Invalid::new(
                "headers",
                format!("the value of header `{key}` is not a valid header value"),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let (body, headers) = self.request(notification)?;
            let request = self
                .client
                .post(self.url.clone())
                .headers(headers)
                .body(body);
            deliver(request, &format!("webhook alerts.{}", self.name)).await
        })
    }

    fn reach(&self) -> BoxFuture<'_, Result<String, ChannelError>> {
        // HEAD: answered (a 405 included) by a receiver that acts on POSTs only.
        let request = self
            .client
            .head(self.url.clone())
            .headers(self.headers.clone());
        Box::pin(async move {
            super::channel::reach_http(request, &format!("webhook alerts.{}", self.name)).await
        })
    }
}
