//! Shared HTTP plumbing for every outgoing call: gateways, pollers, alert
//! channels and the Pushgateway.
//!
//! One error shape, [`CallError`] (`{class, reason, code, retry_after}`),
//! says whether a failed call is worth retrying and why, in plain words.
//! Bodies are read with a cap ([`read_body`]), so a runaway or hostile answer
//! costs a bounded amount of memory, and [`read_answer`] applies the one rule
//! for an answer that could not be read whole: a 2xx cut off or over the cap
//! is transient, whoever sent it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;

use crate::redact::mask_numbers_in;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// A call that did not get what it asked for: a submit, a poll, an alert.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{reason}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct CallError {
    pub class: ErrorClass,
    /// Plain words, e.g. "recipient unsubscribed (replied STOP)".
    pub reason: String,
    /// The other side's error code, e.g. "21610".
    pub code: Option<String>,
    /// The other side asked us to wait this long (HTTP Retry-After).
    pub retry_after: Option<Duration>,
}

impl CallError {
    pub fn transient(reason: impl Into<String>) -> Self {
        CallError {
            class: ErrorClass::Transient,
            reason: reason.into(),
            code: None,
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        CallError {
            class: ErrorClass::Permanent,
            reason: reason.into(),
            code: None,
            retry_after: None,
        }
    }

    /// With the other side's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
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

/// Turns a transport failure into a transient error a person can read;
/// `peer` names the other side ("gateway", "the receiver API").
pub fn transport_error(e: &reqwest::Error, peer: &str) -> CallError {
    let what = if e.is_timeout() {
        "did not answer in time"
    } else if e.is_connect() {
        "is unreachable (connection failed)"
    } else if e.is_body() || e.is_decode() {
        "cut its answer off"
    } else {
        "could not be reached"
    };
    // reqwest's own Display names the URL, which may carry credentials:
    // only the URL-free causes are quoted.
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    CallError::transient(format!("{peer} {what}{detail}"))
}

/// Parses an HTTP Retry-After given in seconds (the form SMS APIs use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// `base` + `path`, keeping any path prefix of `base` (a mock mounted under one).
pub fn join_base(base: &url::Url, path: &str) -> Result<url::Url, CallError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path)
        .map_err(|e| CallError::permanent(format!("bad base URL: {e}")))
}

/// The HTTP client provider APIs are called with, for an API at `base`.
pub fn http_client(timeout: Duration, base: &url::Url) -> Result<reqwest::Client, CallError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sms-canary/", env!("CARGO_PKG_VERSION")));
    crate::trust::build(builder, crate::trust::may_call_https([base.as_str()])).map_err(|e| {
        CallError::permanent(format!(
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

/// Reads an answer of `who` ("the gateway's answer") at most `limit` bytes long.
///
/// The one rule for an answer that could not be read whole: a 2xx cut off
/// or over the limit is transient. What it said cannot be known (some
/// providers and user rules put refusals inside 200 answers), a retry may duplicate the
/// message, which token matching tolerates, while giving up would report a
/// false loss. An error answer keeps what arrived: its status and start are
/// enough to classify it.
pub async fn read_answer(
    response: reqwest::Response,
    who: &str,
    limit: usize,
) -> Result<Vec<u8>, CallError> {
    let status = response.status();
    let body = read_body(response, limit).await;
    if status.is_success() {
        if let Some(e) = &body.cut {
            let detail = std::error::Error::source(e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return Err(CallError::transient(format!("{who} was cut off{detail}")));
        }
        if body.over_limit {
            return Err(too_large(who, limit));
        }
    }
    Ok(body.bytes)
}

/// A provider API's answer, read by the rule of [`read_answer`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The wait the provider asked for (HTTP Retry-After).
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The verdict on a submit: a 2xx is read by `accept`, anything else is
    /// the provider's error by `refuse`. A transient error carries the
    /// provider's Retry-After, which the run's backoff honours.
    pub fn judge<T>(
        self,
        accept: impl FnOnce(&[u8]) -> Result<T, CallError>,
        refuse: impl FnOnce(u16, &[u8]) -> CallError,
    ) -> Result<T, CallError> {
        let result = if self.is_success() {
            accept(&self.body)
        } else {
            Err(refuse(self.status, &self.body))
        };
        self.with_retry_after(result)
    }

    /// The body of a 2xx, or the provider's error by `refuse`: for calls
    /// that are not submits (an account's balance), where no retry waits.
    pub fn success(
        self,
        refuse: impl FnOnce(u16, &[u8]) -> CallError,
    ) -> Result<Vec<u8>, CallError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(refuse(self.status, &self.body))
        }
    }

    /// `result`, its transient error carrying the provider's Retry-After.
    pub fn with_retry_after<T>(&self, mut result: Result<T, CallError>) -> Result<T, CallError> {
        if let Err(e) = &mut result
            && e.is_transient()
        {
            e.retry_after = self.retry_after;
        }
        result
    }
}

/// Makes one call to a provider's API (`who` names its answer in errors:
/// "the gateway's answer") and reads the answer within [`MAX_RESPONSE_BYTES`].
/// Every gateway calls its provider through here, so a transport failure,
/// a runaway body and a Retry-After mean the same for all of them.
pub async fn call_api(request: reqwest::RequestBuilder, who: &str) -> Result<Answer, CallError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(&e, "gateway"))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_answer(response, who, MAX_RESPONSE_BYTES).await?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The error for a 2xx answer too large to read.
pub fn too_large(who: &str, limit: usize) -> CallError {
    CallError::transient(format!(
        "{who} is larger than {} MiB; it was not read to the end",
        limit >> 20
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
pub fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The first value of each named field of a form or query; later repeats
/// are ignored, as providers do for single-valued parameters.
pub fn field<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_and_clean() {
        assert_eq!(snippet(&[0xe2, 0x82]), "\u{fffd}");
        assert_eq!(snippet(b"\n\t "), "(empty body)");
        assert_eq!(clip("ab\u{e9}cd", 3), "ab\u{e9}\u{2026}");
        assert_eq!(
            snippet(b"<html><title>502  Bad\nGateway</title>"),
            "an HTML page, \"502 Bad Gateway\""
        );
    }

    #[test]
    fn errors_show_their_code_and_mask_numbers() {
        let e = CallError::permanent("refused +15005550100").with_code("21610");
        assert_eq!(e.to_string(), "refused +15005550100 (21610)");
        let e = e.masked();
        assert!(!e.reason.contains("5550100"), "{e}");
        assert!(!CallError::permanent("x").is_transient());
    }
}
