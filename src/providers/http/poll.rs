//! `kind = "http-poll"`: polls your own API for inbound messages.
//!
//! Each poll GETs a templated URL (`{{to}}`, `{{since}}`, `{{since_unix}}`,
//! `{{correlation_id}}`, URL-escaped), picks the message nodes out of the JSON
//! answer with the `messages` JSONPath, and reads each one's text and id with
//! paths relative to the node. Messages without an id field get one derived
//! from their text, so that [`super::poll::watch`] hands each on only once.
//! Bad credentials or a wrong URL end the wait at once (permanent); an API that
//! is down or busy is retried at the next interval (transient).

use std::fmt;
use std::time::Duration;

use chrono::SecondsFormat;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::config::HttpPollConfig;
use crate::net::{BoxFuture, snippet};
use crate::receiver::poll::{PollError, Polled, Poller, Watch};
use crate::template::{Escape, Template};
use crate::values::{Invalid, JsonPathExpr};

/// The placeholders the URL template may use.
pub const PLACEHOLDERS: &[&str] = &["to", "since", "since_unix", "correlation_id"];

/// A message list larger than this is refused: the URL should filter by time.
pub const MAX_LISTING_BYTES: usize = 4 << 20;

const SAMPLE: &[(&str, &str)] = &[
    ("to", "+15005550100"),
    ("since", "2024-01-02T03:04:05Z"),
    ("since_unix", "1704164645"),
    ("correlation_id", "01HZY3Q1S8W7V6T5R4P3N2M1K0"),
];

/// Polls a user-described inbound-message API.
pub struct HttpPoller {
    client: reqwest::Client,
    url: Template,
    /// Credentials: marked sensitive, never logged or shown.
    headers: HeaderMap,
    messages: JsonPathExpr,
    body: Option<JsonPathExpr>,
    id: Option<JsonPathExpr>,
    interval: Duration,
}

/// Shows the shape, never the URL or header values (either may hold credentials).
impl fmt::Debug for HttpPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("HttpPoller")
            .field("headers", &headers)
            .field("messages", &self.messages)
            .field("body", &self.body)
            .field("id", &self.id)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What a poller is built from that its settings decide: checking these is
/// checking the settings, without building an HTTP client.
pub(crate) struct Parts {
    url: Template,
    headers: HeaderMap,
}

impl Parts {
    /// Parses the URL template and checks it with sample values, and the
    /// headers; the error names the setting.
    pub(crate) fn parse(config: &HttpPollConfig) -> Result<Parts, Invalid> {
        let bad = Invalid::new;
        let url = Template::parse_allowed(&config.url, PLACEHOLDERS)
            .map_err(|e| bad("url", format!("url: {e}")))?;
        let sample = url
            .render(SAMPLE, Escape::Url)
            .map_err(|e| bad("url", format!("url: {e}")))?;
        let parsed = Url::parse(&sample)
            .map_err(|e| bad("url", format!("url: not a valid URL once filled in: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(bad(
                "url",
                format!(
                    "url: must be an http:// or https:// URL with a host, not `{}:`",
                    parsed.scheme()
                ),
            ));
        }

        let mut headers = HeaderMap::new();
        for (key, value) in &config.headers {
            let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                bad(
                    "headers",
                    format!("header `{key}` is not a valid HTTP header name"),
                )
            })?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                bad(
                    "headers",
                    format!(
                        "header `{key}`: the value is not a valid HTTP header value \
                     (line breaks and control characters are not allowed)"
                    ),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }

        Ok(Parts { url, headers })
    }
}

impl HttpPoller {
    /// Builds the poller, checking the URL template with sample values.
    pub fn new(config: &HttpPollConfig) -> Result<Self, PollError> {
        // The caller prefixes the receiver's name.
        let parts = Parts::parse(config).map_err(|e| PollError::permanent(e.message))?;
        let client = crate::trust::endpoint_client(config.request_timeout, &config.url)
            .map_err(PollError::permanent)?;
        Ok(HttpPoller {
            client,
            url: parts.url,
            headers: parts.headers,
            messages: config.messages.clone(),
            body: config.body.clone(),
            id: config.id.clone(),
            interval: config.interval,
        })
    }

    async fn fetch(&self, watch: &Watch) -> Result<Vec<Polled>, PollError> {
        let since = watch.since.to_rfc3339_opts(SecondsFormat::Secs, true);
        let since_unix = watch.since.timestamp().to_string();
        let values = [
            ("to", watch.to.as_str()),
            ("since", since.as_str()),
            ("since_unix", since_unix.as_str()),
            ("correlation_id", watch.correlation_id.as_str()),
        ];
        let url = self
            .url
            .render(&values, Escape::Url)
            .map_err(|e| PollError::permanent(format!("url: {e}")))?;
        let url = Url::parse(&url).map_err(|e| {
            PollError::permanent(format!("the url template did not give a valid URL: {e}"))
        })?;

        let mut request = self.client.get(url).headers(self.headers.clone());
        if !self.headers.contains_key("x-correlation-id")
            && let Ok(id) = HeaderValue::from_str(&watch.correlation_id)
        {
            request = request.header("x-correlation-id", id);
        }
        let response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let body = crate::net::read_answer(
            response,
            "the receiver API's answer",
            MAX_LISTING_BYTES,
        )
        .await
        .map_err(|mut e| {
            if e.reason.contains("not read to the end") {
                e.reason = format!(
                    "the receiver API answered with more than {} MiB: filter the url by time, \
                         e.g. with {{{{since}}}}",
                    MAX_LISTING_BYTES >> 20
                );
            }
            e
        })?;
        check_status(status, &body)?;
        self.read_answer(&body)
    }

    /// The messages in a 2xx answer's body (see [`check_status`] for the status).
    pub fn read_answer(&self, body: &[u8]) -> Result<Vec<Polled>, PollError> {
        let json: Value = serde_json::from_slice(body).map_err(|e| {
            PollError::transient(format!(
                "the receiver API's answer is not JSON ({e}): {}",
                snippet(body)
            ))
        })?;
        Ok(self.extract(&json))
    }

    /// The messages in an answer; nodes without text are skipped.
    pub fn extract(&self, json: &Value) -> Vec<Polled> {
        self.messages
            .all(json)
            .into_iter()
            .filter_map(|node| {
                let text = match &self.body {
                    Some(path) => path.first(node)?.as_str()?,
                    None => node.as_str()?,
                };
                let id = self
                    .id
                    .as_ref()
                    .and_then(|path| match path.first(node)? {
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap_or_else(|| text_id(text));
                Some(Polled {
                    id,
                    body: text.to_string(),
                })
            })
            .collect()
    }
}

impl Poller for HttpPoller {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn poll<'a>(&'a self, watch: &'a Watch) -> BoxFuture<'a, Result<Vec<Polled>, PollError>> {
        Box::pin(self.fetch(watch))
    }
}

/// An id for a message whose API gives none: the same text always gets the
/// same id, so a message listed by every poll is handed on once. The prefix
/// keeps it apart from ids the API does give.
fn text_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("text-sha256:{hex}")
}

/// Whether an answer's HTTP status lets us read its body, and if not, why.
pub fn check_status(status: u16, body: &[u8]) -> Result<(), PollError> {
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(PollError::permanent(format!(
            "the receiver API refused our credentials (HTTP {status}): check the receiver's headers"
        ))),
        404 => Err(PollError::permanent(
            "the receiver API has no such URL (HTTP 404): check the receiver's url",
        )),
        300..=399 => Err(PollError::permanent(format!(
            "the receiver API redirects elsewhere (HTTP {status}): point `url` at the final address"
        ))),
        408 | 429 | 500..=599 => Err(PollError::transient(format!(
            "the receiver API is unavailable (HTTP {status}): {}",
            snippet(body)
        ))),
        // Other 4xx say the request is wrong: repeating it will not help.
        _ => Err(PollError::permanent(format!(
            "the receiver API refused the request (HTTP {status}): {}",
            snippet(body)
        ))),
    }
}

fn transport_error(e: &reqwest::Error) -> PollError {
    // Never the URL: it may carry an API key.
    crate::net::transport_error(e, "the receiver API")
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ErrorClass;

    fn poller(extra: &str) -> Result<HttpPoller, PollError> {
        let toml = format!("url = \"https://sms.example.com/inbound?to={{{{to}}}}\"\n{extra}");
        let config: HttpPollConfig = toml::from_str(&toml).expect("test config parses");
        HttpPoller::new(&config)
    }

    #[test]
    fn url_templates_are_checked_at_construction() {
        let config: HttpPollConfig =
            toml::from_str("url = \"https://x.test/?n={{number}}\"\nmessages = \"$[*]\"").unwrap();
        let e = HttpPoller::new(&config).unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("{{number}}"), "{e}");
        assert!(e.reason.contains("{{since_unix}}"), "{e}");
        let config: HttpPollConfig =
            toml::from_str("url = \"file:///x/{{to}}\"\nmessages = \"$[*]\"").unwrap();
        assert!(HttpPoller::new(&config).is_err());
        let p = poller("messages = \"$[*]\"\nheaders = { X-Key = \"s3cret\" }").unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn extracts_text_and_ids_relative_to_each_node() {
        let p = poller("messages = \"$.data[*]\"\nbody = \"$.text\"\nid = \"$.id\"").unwrap();
        let json: Value = serde_json::json!({"data": [
            {"id": "a", "text": "one"},
            {"id": 7, "text": "two"},
            {"text": "three"},
            {"id": "d"},
            {"id": "e", "text": 5},
        ]});
        let got = p.extract(&json);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].id.as_str(), got[0].body.as_str()), ("a", "one"));
        assert_eq!(got[1].id, "7");
        assert_eq!(got[2].id, text_id("three"));
    }

    #[test]
    fn bare_strings_are_texts_with_stable_ids() {
        let p = poller("messages = \"$.messages[*]\"").unwrap();
        let json = serde_json::json!({"messages": ["hello", {"x": 1}, "world"]});
        let first = p.extract(&json);
        assert_eq!(first.len(), 2);
        assert_eq!(first, p.extract(&json));
        assert_ne!(first[0].id, first[1].id);
        assert!(p.extract(&serde_json::json!([1, 2])).is_empty());
    }

    #[test]
    fn statuses_are_classified() {
        for (status, class) in [
            (401, Some(ErrorClass::Permanent)),
            (403, Some(ErrorClass::Permanent)),
            (404, Some(ErrorClass::Permanent)),
            (400, Some(ErrorClass::Permanent)),
            (429, Some(ErrorClass::Transient)),
            (503, Some(ErrorClass::Transient)),
            (200, None),
        ] {
            assert_eq!(check_status(status, b"").err().map(|e| e.class), class);
        }
    }
}
