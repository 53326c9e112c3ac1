//! Gateways: where a probe submits its message.
//!
//! Every provider implements [`Gateway`]: submit one message and classify the
//! answer as accepted, transient (retry) or permanent (fail the run at once,
//! with the provider's code and a reason a person can act on). A provider is
//! one file here plus one variant of [`crate::config::GatewayConfig`].

pub mod http;
pub mod mock;
pub mod twilio;
pub mod vonage;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;

use crate::config::E164;
use crate::redact::mask_numbers_in;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message to submit.
#[derive(Debug, Clone)]
pub struct SubmitRequest<'a> {
    pub from: &'a E164,
    pub to: &'a E164,
    pub body: &'a str,
    /// Sent as `X-Correlation-ID` so the gateway's own logs can be joined with ours.
    pub correlation_id: &'a str,
    /// Where the provider should post delivery receipts for this message.
    pub status_callback: Option<String>,
}

/// The gateway took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's message id (Twilio's `SM…` sid).
    pub message_id: String,
}

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// 5xx, 429, timeouts, connection errors: retried with backoff.
    Transient,
    /// Auth, credit, invalid or blocked numbers: retrying cannot help.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        })
    }
}

/// A submit that did not get the message accepted.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{reason}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct SubmitError {
    pub class: ErrorClass,
    /// The provider's error code, e.g. "21610".
    pub code: Option<String>,
    /// Plain words, e.g. "recipient unsubscribed (replied STOP)".
    pub reason: String,
    /// The provider asked us to wait this long (HTTP Retry-After).
    pub retry_after: Option<Duration>,
}

impl SubmitError {
    pub fn transient(reason: impl Into<String>) -> Self {
        SubmitError {
            class: ErrorClass::Transient,
            code: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SubmitError {
            class: ErrorClass::Permanent,
            code: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// With every phone number in its words masked: a provider's message
    /// often quotes the number it refused, and this error goes on to runs,
    /// logs, the store and alerts.
    pub fn masked(mut self) -> Self {
        self.reason = mask_numbers_in(&self.reason).into_owned();
        self.code = self.code.map(|c| mask_numbers_in(&c).into_owned());
        self
    }
}

/// A way to send an SMS.
pub trait Gateway: Send + Sync {
    /// The gateway's name in the config.
    fn name(&self) -> &str;

    /// Submits one message. Must not retry by itself: the run engine owns retries
    /// so that they respect the run's deadline and get logged with its id.
    fn submit<'a>(
        &'a self,
        request: SubmitRequest<'a>,
    ) -> BoxFuture<'a, Result<Accepted, SubmitError>>;

    /// The path under the public URL where this gateway's receipts are received,
    /// if it sends receipts by webhook.
    fn status_callback_path(&self) -> Option<String>;

    /// A read-only call that proves the credentials work, for `doctor`; sends
    /// no SMS. `Ok(None)` when the gateway has no such call.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Turns a transport failure into a transient error a person can read.
pub fn transport_error(e: &reqwest::Error) -> SubmitError {
    let what = if e.is_timeout() {
        "gateway did not answer in time"
    } else if e.is_connect() {
        "gateway unreachable (connection failed)"
    } else if e.is_body() || e.is_decode() {
        "gateway response cut off"
    } else {
        "request to the gateway failed"
    };
    // The URL may carry credentials in other providers' APIs; never include it.
    let detail = std::error::Error::source(e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    SubmitError::transient(format!("{what}{detail}"))
}

/// Parses an HTTP Retry-After given in seconds (the form SMS APIs use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// `base` + `path`, keeping any path prefix of `base` (a mock mounted under one).
pub fn join_base(base: &url::Url, path: &str) -> Result<url::Url, SubmitError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path)
        .map_err(|e| SubmitError::permanent(format!("bad gateway base URL: {e}")))
}

/// The HTTP client gateways share the settings of, for an API at `base`.
pub fn http_client(timeout: Duration, base: &url::Url) -> Result<reqwest::Client, SubmitError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sms-canary/", env!("CARGO_PKG_VERSION")));
    crate::trust::build(builder, crate::trust::may_call_https([base.as_str()])).map_err(|e| {
        SubmitError::permanent(format!(
            "cannot build HTTP client: {}",
            crate::trust::describe(&e)
        ))
    })
}

/// How much of a provider's answer is read: far more than any real API
/// answer, so a runaway or hostile body is cut off instead of held in memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A response body read up to a limit.
#[derive(Debug, Default)]
pub struct Body {
    /// What was read: at most the limit.
    pub bytes: Vec<u8>,
    /// The answer went on past the limit; the rest was not read.
    pub over_limit: bool,
    /// The transport failed part way; `bytes` holds what arrived before.
    pub cut: Option<reqwest::Error>,
}

/// Reads at most `limit` bytes of a response. It takes the response so that
/// reaching the limit drops it there and then: hyper does not drain a body
/// whose reader is gone, it closes the connection, so a 50 MB answer costs
/// 1 MiB of memory and no more transfer than the kernel's socket buffers
/// had already taken in.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Body {
    let mut body = Body::default();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.bytes.len();
                if chunk.len() > room {
                    body.bytes.extend_from_slice(&chunk[..room]);
                    body.over_limit = true;
                    drop(response);
                    return body;
                }
                body.bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return body,
            Err(e) => {
                body.cut = Some(e);
                return body;
            }
        }
    }
}

/// Reads a provider's answer to a submit or preflight, at most
/// [`MAX_RESPONSE_BYTES`]: a transfer cut part way is a transport error, and a
/// success too large to read whole is refused rather than parsed in half. An
/// error answer keeps its start, which is enough to classify it.
pub async fn read_answer(response: reqwest::Response, what: &str) -> Result<Vec<u8>, SubmitError> {
    let status = response.status();
    let body = read_body(response, MAX_RESPONSE_BYTES).await;
    if let Some(e) = &body.cut {
        return Err(transport_error(e));
    }
    if body.over_limit && status.is_success() {
        return Err(too_large(what));
    }
    Ok(body.bytes)
}

/// The error for an accepted (2xx) answer too large to read. Transient, like
/// any other unreadable answer to a submit: a retry may duplicate the
/// message, which token matching tolerates, while giving up would report a
/// false loss.
pub fn too_large(what: &str) -> SubmitError {
    SubmitError::transient(format!(
        "{what} is larger than {} MiB; it was not read to the end",
        MAX_RESPONSE_BYTES >> 20
    ))
}

/// How much of a body an error message quotes.
const SNIPPET_CHARS: usize = 80;

/// The start of a response body, for error messages: enough to recognise,
/// never huge. An HTML page (a proxy's or load balancer's error page) is
/// named by its title rather than quoted.
pub fn snippet(body: &[u8]) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    if let Some(title) = html_title(&head) {
        return format!("an HTML page, \"{}\"", clip(&title, SNIPPET_CHARS));
    }
    let text: String = head
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        clip(&text, SNIPPET_CHARS)
    }
}

/// The `<title>` of what looks like an HTML page.
fn html_title(head: &str) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    if !lower.trim_start().starts_with('<') {
        return None;
    }
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    // Lowercasing ASCII keeps byte offsets, so they index `head` too.
    let title = head[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

/// `s` cut to `max_chars` characters, with `…` when cut.
pub(crate) fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}
