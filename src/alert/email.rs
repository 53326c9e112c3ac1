//! Email: one message per notification over SMTP, as plain text and HTML
//! (multipart/alternative), with a subject that sorts and filters
//! ("[sms-canary] CRITICAL sandbox-roundtrip: lost"). A reminder or resolve
//! answers the mail that told the firing (`In-Reply-To`, `References`), so
//! each alert is one thread.
//!
//! The transport comes from `smtp_url`: `smtp://` (plain), `smtp://…?tls=required`
//! (STARTTLS), `smtps://` (TLS from the first byte), credentials as
//! `user:password@`. That URL holds a password, so it never appears in an
//! error. The `Message-ID` is derived from the notification id, so a retry
//! after a lost answer is the same message to mail software, and
//! `X-SMS-Canary-Notification-ID` carries the id for filters and scripts.
//!
//! SMTP says itself whether to retry: 4xx replies are transient, 5xx
//! permanent (unknown mailbox, refused sender, failed authentication).

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Notification;
use super::channel::{Channel, ChannelError};
use crate::config::{EmailConfig, Invalid};
use crate::net::BoxFuture;

/// Carries `notification.id`, for deduplication and mail filters.
pub const NOTIFICATION_ID_HEADER: &str = "X-SMS-Canary-Notification-ID";

/// Connect, TLS, auth and DATA together; a slow relay is retried later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct EmailChannel {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
}

impl EmailChannel {
    pub fn new(name: &str, config: &EmailConfig) -> Result<EmailChannel, ChannelError> {
        let (from, to) = check_config(config).map_err(|e| e.in_channel(name))?;
        // lettre's URL errors describe the problem (bad encoding, no host)
        // without quoting the URL; ours add nothing from it either.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose())
            .map_err(|e| {
                ChannelError::permanent(format!("alerts.{name}: smtp_url is not usable: {e}"))
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(EmailChannel {
            name: name.to_string(),
            transport,
            from,
            to,
            subject_prefix: config.subject_prefix.clone(),
        })
    }

    /// The message for `n`; the same notification always gives the same
    /// message (Date is the notification's time, not the attempt's).
    pub fn message(&self, n: &Notification) -> Result<Message, ChannelError> {
        let subject = if self.subject_prefix.is_empty() {
            n.headline()
        } else {
            format!("{} {}", self.subject_prefix, n.headline())
        };
        let id_header = HeaderName::new_from_ascii(NOTIFICATION_ID_HEADER.to_string())
            .map_err(|_| ChannelError::permanent("invalid notification id header name"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .date(mail_date(n.at))
            .message_id(Some(message_id(&n.id)))
            .raw_header(HeaderValue::new(id_header, safe_id(&n.id)));
        // A reminder or resolve answers the mail that told the firing, so
        // mail clients show one thread per alert.
        if let Some(first) = &n.follows {
            builder = builder
                .in_reply_to(message_id(first))
                .references(message_id(first));
        }
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(n.text()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html(n)),
                    ),
            )
            .map_err(|e| ChannelError::permanent(format!("cannot build the email: {e}")))
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn reach(&self) -> BoxFuture<'_, Result<String, ChannelError>> {
        // Connects, greets (EHLO), upgrades to TLS where configured and
        // authenticates, then quits: everything but a message.
        Box::pin(async move {
            match self.transport.test_connection().await {
                Ok(true) => Ok(format!(
                    "mail server of alerts.{} takes a session",
                    self.name
                )),
                Ok(false) => Err(ChannelError::transient(format!(
                    "mail server of alerts.{} did not complete the session",
                    self.name
                ))),
                Err(e) => Err(smtp_error(&e, &self.name)),
            }
        })
    }

    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let message = self.message(notification)?;
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| smtp_error(&e, &self.name))
        })
    }
}

/// What is wrong with an email channel's settings, found at load; the
/// sender and recipients when nothing is. `smtp_url` is named in the terms
/// of our docs (lettre's own message for an unknown scheme talks about its
/// cargo features), quoting only its scheme and `tls` value: the rest may
/// hold a password.
pub(crate) fn check_config(config: &EmailConfig) -> Result<(Mailbox, Vec<Mailbox>), Invalid> {
    let from: Mailbox = config.from.parse().map_err(|e| {
        Invalid::new(
            "from",
            format!("invalid from address `{}`: {e}", config.from),
        )
    })?;
    if config.to.is_empty() {
        return Err(Invalid::new("to", "`to` lists no recipient"));
    }
    let to = config
        .to
        .iter()
        .map(|addr| {
            addr.parse::<Mailbox>()
                .map_err(|e| Invalid::new("to", format!("invalid to address `{addr}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = url::Url::parse(config.smtp_url.expose())
        .map_err(|e| Invalid::new("smtp_url", format!("smtp_url is not a valid URL: {e}")))?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => {}
        ("smtp" | "smtps", Some(other)) => {
            return Err(Invalid::new(
                "smtp_url",
                format!(
                    "smtp_url has tls={other}; use smtp://…?tls=required (STARTTLS) or smtps:// (TLS)"
                ),
            ));
        }
        (scheme, _) => {
            return Err(Invalid::new(
                "smtp_url",
                format!("smtp_url must start with smtp:// or smtps://, not {scheme}://"),
            ));
        }
    }
    if !url.has_host() {
        return Err(Invalid::new("smtp_url", "smtp_url names no server"));
    }
    Ok((from, to))
}

/// The HTML part: the headline, the facts as a table, links as links.
/// Everything from a provider or the config is escaped: a provider's error
/// text containing markup shows as text.
fn html(n: &Notification) -> String {
    let mut rows = String::new();
    for (label, value) in n.facts() {
        let value = if matches!(label, "Runbook" | "Dashboard") {
            format!("<a href=\"{0}\">{0}</a>", escape_html(&value))
        } else {
            escape_html(&value)
        };
        rows.push_str(&format!(
            "<tr><th align=\"left\" valign=\"top\">{}</th><td>{value}</td></tr>\n",
            escape_html(label)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><body>\n<h2>{}</h2>\n<table cellpadding=\"4\">\n{rows}</table>\n</body></html>\n",
        escape_html(&n.headline())
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The Date header: the notification's time, or now when that time cannot be
/// written as a mail date (before 1970 or after 9999, from a corrupt outbox
/// row), since the date formatter panics on those.
fn mail_date(at: chrono::DateTime<chrono::Utc>) -> std::time::SystemTime {
    let secs = at.timestamp();
    if (0..253_402_300_800).contains(&secs) {
        at.into()
    } else {
        std::time::SystemTime::now()
    }
}

/// `<id@sms-canary>`: stable across retries, so mail software can recognise
/// a redelivery.
fn message_id(id: &str) -> String {
    format!("<{}@sms-canary>", safe_id(id))
}

/// The id as it goes into headers: ids are ULIDs, but one read back from the
/// outbox is only a string, and a header must not be broken by it.
fn safe_id(id: &str) -> String {
    let safe: String = id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "unknown".to_string()
    } else {
        safe
    }
}

/// Classifies a failed send. lettre's errors name the reply code and the
/// server's words, never the URL or the credentials.
fn smtp_error(e: &lettre::transport::smtp::Error, name: &str) -> ChannelError {
    let who = format!("mail server of alerts.{name}");
    if e.is_permanent() {
        ChannelError::permanent(format!("{who} refused the message: {e}"))
    } else if e.is_transient() {
        ChannelError::transient(format!("{who} deferred the message: {e}"))
    } else if e.is_client() {
        // Our side could not form the exchange (e.g. an address the server's
        // extensions cannot carry): the same every time.
        ChannelError::permanent(format!("cannot send to the {who}: {e}"))
    } else if e.is_timeout() {
        ChannelError::transient(format!("{who} did not answer in time: {e}"))
    } else {
        // Connection refused, reset, TLS handshake, garbled reply.
        ChannelError::transient(format!("{who} is unreachable: {}", chain(e)))
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // lettre's Display already includes its direct cause.
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_header_safe() {
        assert_eq!(
            message_id("01J0ABCDEF"),
            "<01J0ABCDEF@sms-canary>".to_string()
        );
        assert_eq!(safe_id("a b\r\nc>"), "a_b__c_");
        assert_eq!(safe_id(""), "unknown");
    }

    #[test]
    fn dates_outside_the_mail_range_fall_back_to_now() {
        let far = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        let now = std::time::SystemTime::now();
        assert!(mail_date(far) >= now);
        let old = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        assert!(mail_date(old) >= now);
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::TimeDelta::days(20_000);
        assert_eq!(mail_date(at), std::time::SystemTime::from(at));
    }
}
