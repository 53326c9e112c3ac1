//! `kind = "http"`: your own SMS API, described by templates and rules.
//!
//! The request (method, URL, headers, JSON or form body) is built from
//! `{{to}}`, `{{from}}`, `{{body}}` and `{{correlation_id}}` templates, each
//! value escaped for where it lands. The answer is classified by the user's
//! `permanent` rules first, then their `transient` rules, then by HTTP status
//! the way every other gateway is: 2xx accepted, 408/429/5xx retried, other
//! 4xx refused. A 2xx answer cut off or too large to read is retried, as for
//! every provider. Templates are checked when the gateway is built, so a typo in
//! the config is reported before any message is sent, not halfway through a run.

use std::fmt;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tracing::warn;
use url::Url;

use super::config::{HttpGatewayConfig, HttpMethod, ResponseRule};
use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, ErrorClass, MAX_RESPONSE_BYTES, call_api, clip, read_body, snippet};
use crate::template::{Escape, Template, TemplateError};
use crate::values::{Invalid, JsonPathExpr};

/// The placeholders a gateway template may use.
pub const PLACEHOLDERS: &[&str] = &["to", "from", "body", "correlation_id"];

/// The message id recorded when the API accepted a message but its answer
/// does not say which id it got.
pub const UNKNOWN_MESSAGE_ID: &str = "unknown";

/// Values used to check templates when the gateway is built: plausible, and
/// with a quote and a newline so that escaping is exercised too.
const SAMPLE: &[(&str, &str)] = &[
    ("to", "+15005550100"),
    ("from", "+15005550006"),
    ("body", "sms-canary \"sample\"\nabcdefghjk"),
    ("correlation_id", "01HZY3Q1S8W7V6T5R4P3N2M1K0"),
];

/// A user-described SMS API.
pub struct HttpGateway {
    name: String,
    client: reqwest::Client,
    method: reqwest::Method,
    url: Template,
    /// Header values may carry credentials: they are rendered per request,
    /// marked sensitive, and never logged or shown.
    headers: Vec<(HeaderName, Template)>,
    body: RequestBody,
    /// A configured Content-Type wins over the one implied by the body kind.
    content_type_configured: bool,
    message_id: Option<JsonPathExpr>,
    permanent: Vec<ResponseRule>,
    transient: Vec<ResponseRule>,
    health_url: Option<Url>,
}

enum RequestBody {
    None,
    Json(Template),
    Form(Vec<(String, Template)>),
}

/// Shows the shape, never URLs or header values (either may hold credentials).
impl fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let body = match self.body {
            RequestBody::None => "none",
            RequestBody::Json(_) => "json",
            RequestBody::Form(_) => "form",
        };
        f.debug_struct("HttpGateway")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("headers", &headers)
            .field("body", &body)
            .field("message_id", &self.message_id)
            .field("permanent_rules", &self.permanent.len())
            .field("transient_rules", &self.transient.len())
            .finish_non_exhaustive()
    }
}

/// Everything a gateway is built from that its settings decide: checking
/// these is checking the settings, without building an HTTP client.
pub(crate) struct Parts {
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: RequestBody,
    content_type_configured: bool,
}

impl Parts {
    /// Parses every template against the known placeholders and checks the
    /// URL and JSON body with sample values; the error names the setting.
    pub(crate) fn parse(config: &HttpGatewayConfig) -> Result<Parts, Invalid> {
        let bad = Invalid::new;

        let url = Template::parse_allowed(&config.url, PLACEHOLDERS)
            .map_err(|e| bad("url", format!("url: {e}")))?;
        check_url(&url).map_err(|e| bad("url", format!("url: {e}")))?;

        let mut headers = Vec::new();
        let mut content_type_configured = false;
        for (key, value) in &config.headers {
            let header = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                bad(
                    "headers",
                    format!("header `{key}` is not a valid HTTP header name"),
                )
            })?;
            let template = Template::parse_allowed(value.expose(), PLACEHOLDERS).map_err(|e| {
                bad(
                    "headers",
                    format!("header `{key}`: {}", header_template_error(&e)),
                )
            })?;
            let sample = template.render(SAMPLE, Escape::None).map_err(|e| {
                bad(
                    "headers",
                    format!("header `{key}`: {}", header_template_error(&e)),
                )
            })?;
            if HeaderValue::from_str(&sample).is_err() {
                return Err(bad(
                    "headers",
                    format!(
                        "header `{key}`: the value is not a valid HTTP header value \
                     (line breaks and control characters are not allowed)"
                    ),
                ));
            }
            content_type_configured |= header == CONTENT_TYPE;
            headers.push((header, template));
        }

        let body = match (&config.body, &config.form) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "form",
                    "set either `body` (JSON) or `form`, not both".to_string(),
                ));
            }
            (Some(source), None) => {
                let template = Template::parse_allowed(source, PLACEHOLDERS)
                    .map_err(|e| bad("body", format!("body: {e}")))?;
                if !content_type_configured {
                    check_json_body(&template).map_err(|e| bad("body", format!("body: {e}")))?;
                }
                RequestBody::Json(template)
            }
            (None, Some(form)) => {
                let mut fields = Vec::new();
                for (field, source) in form {
                    let template = Template::parse_allowed(source, PLACEHOLDERS)
                        .map_err(|e| bad("form", format!("form field `{field}`: {e}")))?;
                    fields.push((field.clone(), template));
                }
                RequestBody::Form(fields)
            }
            (None, None) => RequestBody::None,
        };

        Ok(Parts {
            url,
            headers,
            body,
            content_type_configured,
        })
    }
}

impl HttpGateway {
    /// Builds the gateway, checking every template against the known
    /// placeholders and the URL and JSON body against sample values.
    pub fn new(name: &str, config: &HttpGatewayConfig) -> Result<Self, SubmitError> {
        // The caller prefixes the gateway's name, as for every other gateway.
        let parts = Parts::parse(config).map_err(|e| SubmitError::permanent(e.message))?;
        let client = crate::trust::endpoint_client(config.request_timeout, &config.url)
            .map_err(SubmitError::permanent)?;
        Ok(HttpGateway {
            name: name.to_string(),
            client,
            method: match config.method {
                HttpMethod::Get => reqwest::Method::GET,
                HttpMethod::Post => reqwest::Method::POST,
                HttpMethod::Put => reqwest::Method::PUT,
            },
            url: parts.url,
            headers: parts.headers,
            body: parts.body,
            content_type_configured: parts.content_type_configured,
            message_id: config.message_id.clone(),
            permanent: config.permanent.clone(),
            transient: config.transient.clone(),
            health_url: config.health_url.clone(),
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        let values = [
            ("to", req.to.as_str()),
            ("from", req.from.as_str()),
            ("body", req.body),
            ("correlation_id", req.correlation_id),
        ];
        // Rendering cannot fail for the placeholders checked in `new`; should it,
        // retrying would fail the same way.
        let render = |t: &Template, escape| {
            t.render(&values, escape)
                .map_err(|e| SubmitError::permanent(format!("template: {e}")))
        };
        let url = Url::parse(&render(&self.url, Escape::Url)?).map_err(|e| {
            SubmitError::permanent(format!("the url template did not give a valid URL: {e}"))
        })?;

        let mut headers = HeaderMap::new();
        if let Ok(id) = HeaderValue::from_str(req.correlation_id) {
            headers.insert("x-correlation-id", id);
        }
        for (name, template) in &self.headers {
            let mut value = HeaderValue::from_str(&render(template, Escape::None)?).map_err(|_| {
                SubmitError::permanent(format!(
                    "header `{name}`: once filled in, the value is not a valid HTTP header value \
                     (a line break from the message body?)"
                ))
            })?;
            value.set_sensitive(true);
            // `insert`, not `append`: a configured header replaces ours.
            headers.insert(name.clone(), value);
        }

        let mut request = self.client.request(self.method.clone(), url);
        match &self.body {
            RequestBody::None => {}
            RequestBody::Json(template) => {
                if !self.content_type_configured {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                request = request.body(render(template, Escape::Json)?);
            }
            RequestBody::Form(fields) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (field, template) in fields {
                    form.append_pair(field, &render(template, Escape::None)?);
                }
                if !self.content_type_configured {
                    headers.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    );
                }
                request = request.body(form.finish());
            }
        }

        // A 2xx not read whole is transient, as for every provider: user
        // rules may put a refusal inside a 2xx answer.
        let answer = call_api(request.headers(headers), "the gateway's answer").await?;
        answer.with_retry_after(self.classify(answer.status, &answer.body))
    }

    /// Classifies an answer: permanent rules, transient rules, then the HTTP status.
    pub fn classify(&self, status: u16, body: &[u8]) -> Result<Accepted, SubmitError> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let json = json.as_ref();
        for (rules, class) in [
            (&self.permanent, ErrorClass::Permanent),
            (&self.transient, ErrorClass::Transient),
        ] {
            for rule in rules {
                if let Some(matched) = rule_matches(rule, status, json) {
                    return Err(rule_error(class, rule, status, matched));
                }
            }
        }
        match status {
            200..=299 => Ok(self.accepted(json)),
            300..=399 => Err(SubmitError::permanent(format!(
                "the gateway redirects elsewhere (HTTP {status}): point `url` at the final address"
            ))),
            401 | 403 => Err(SubmitError::permanent(format!(
                "authentication failed: check the gateway's headers (HTTP {status}): {}",
                snippet(body)
            ))),
            404 => Err(SubmitError::permanent(format!(
                "not found: check the gateway's url (HTTP 404): {}",
                snippet(body)
            ))),
            408 => Err(SubmitError::transient(
                "the gateway timed out reading the request (HTTP 408)",
            )),
            429 => Err(SubmitError::transient(
                "rate limited by the gateway (HTTP 429)",
            )),
            400..=499 => Err(SubmitError::permanent(format!(
                "gateway refused the request (HTTP {status}): {}",
                snippet(body)
            ))),
            500..=599 => Err(SubmitError::transient(format!(
                "gateway error (HTTP {status}): {}",
                snippet(body)
            ))),
            _ => Err(SubmitError::permanent(format!(
                "unexpected answer from the gateway (HTTP {status}): {}",
                snippet(body)
            ))),
        }
    }

    /// The API took the message. A missing id is logged, not an error: retrying
    /// an accepted submit could send the message twice.
    fn accepted(&self, json: Option<&Value>) -> Accepted {
        let Some(path) = &self.message_id else {
            return Accepted {
                message_id: UNKNOWN_MESSAGE_ID.to_string(),
            };
        };
        let message_id = match json.and_then(|j| path.first(j)) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                warn!(
                    gateway = %self.name,
                    message_id = %path.source,
                    "gateway accepted the message but its answer has no message id there; \
                     recorded as \"{UNKNOWN_MESSAGE_ID}\""
                );
                UNKNOWN_MESSAGE_ID.to_string()
            }
        };
        Accepted { message_id }
    }
}

impl Gateway for HttpGateway {
    fn name(&self) -> &str {
        &self.name
    }

    fn submit<'a>(
        &'a self,
        request: SubmitRequest<'a>,
    ) -> BoxFuture<'a, Result<Accepted, SubmitError>> {
        Box::pin(self.send(request))
    }

    fn status_callback_path(&self) -> Option<String> {
        None
    }

    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async {
            let Some(url) = &self.health_url else {
                return Ok(None);
            };
            let mut request = self.client.get(url.clone());
            // The same credentials the submit sends; placeholders get neutral values.
            let values = [
                ("to", ""),
                ("from", ""),
                ("body", ""),
                ("correlation_id", "doctor"),
            ];
            for (name, template) in &self.headers {
                if let Ok(value) = template.render(&values, Escape::None) {
                    request = request.header(name.clone(), value);
                }
            }
            let response = request
                .send()
                .await
                .map_err(|e| crate::net::transport_error(&e, "gateway"))?;
            let status = response.status();
            if status.is_success() {
                Ok(Some(format!(
                    "health URL answered HTTP {}",
                    status.as_u16()
                )))
            } else {
                let body = read_body(response, MAX_RESPONSE_BYTES).await.bytes;
                Err(self
                    .classify(status.as_u16(), &body)
                    .err()
                    .unwrap_or_else(|| {
                        SubmitError::permanent(format!(
                            "health URL answered HTTP {}",
                            status.as_u16()
                        ))
                    }))
            }
        })
    }
}

/// The URL, filled in with sample values, must be an absolute http(s) URL.
fn check_url(url: &Template) -> Result<(), String> {
    let sample = url.render(SAMPLE, Escape::Url).map_err(|e| e.to_string())?;
    let parsed = Url::parse(&sample).map_err(|e| {
        format!("not a valid URL once filled in: {e} (write e.g. \"https://sms.example.com/v1/messages\")")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!(
            "must be an http:// or https:// URL with a host, not `{}:`",
            parsed.scheme()
        ));
    }
    Ok(())
}

/// Without a configured Content-Type the body is sent as JSON, so it must be JSON.
fn check_json_body(body: &Template) -> Result<(), String> {
    let sample = body
        .render(SAMPLE, Escape::Json)
        .map_err(|e| e.to_string())?;
    serde_json::from_str::<Value>(&sample).map(|_| ()).map_err(|e| {
        format!(
            "not valid JSON once filled in ({e}); placeholders go inside quotes, \
             e.g. '{{\"text\":\"{{{{body}}}}\"}}' (or set a Content-Type header to send something else)"
        )
    })
}

/// Template errors for header values, which hold credentials: only placeholder
/// names and positions are shown, never the text around them.
fn header_template_error(e: &TemplateError) -> String {
    match e {
        TemplateError::Unknown { .. } => e.to_string(),
        TemplateError::Unclosed { at } | TemplateError::BadName { at, .. } => {
            format!("the `{{{{` at character {at} does not start a placeholder such as {{{{to}}}}")
        }
    }
}

/// What a matching rule matched on: the JSON value, when the rule has `json`.
type Matched<'a> = Option<&'a Value>;

/// A rule matches when every condition it sets holds. Bodies that are not
/// JSON never match `json` conditions.
fn rule_matches<'a>(
    rule: &ResponseRule,
    status: u16,
    json: Option<&'a Value>,
) -> Option<Matched<'a>> {
    if rule.status.is_some_and(|s| s != status) {
        return None;
    }
    let Some(path) = &rule.json else {
        return Some(None);
    };
    let found = path.all(json?).into_iter().find(|v| match &rule.equals {
        None => !v.is_null(),
        Some(expected) => json_equal(v, expected),
    })?;
    Some(Some(found))
}

/// Numbers compare by value (`402` equals `402.0`), everything else exactly.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

fn rule_error(
    class: ErrorClass,
    rule: &ResponseRule,
    status: u16,
    matched: Matched<'_>,
) -> SubmitError {
    let code = matched.and_then(|v| match v {
        Value::String(s) if !s.is_empty() => Some(clip(s, 100)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let reason = match &rule.reason {
        Some(reason) => reason.clone(),
        None => {
            let what = match class {
                ErrorClass::Permanent => "the gateway refused the message",
                ErrorClass::Transient => "the gateway could not take the message now",
            };
            let detail = match (matched, &rule.json) {
                (Some(v), Some(path)) => {
                    format!(", {} = {}", path.source, clip(&v.to_string(), 100))
                }
                _ => String::new(),
            };
            format!("{what} (HTTP {status}{detail})")
        }
    };
    SubmitError {
        class,
        code,
        reason,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(extra: &str) -> Result<HttpGateway, SubmitError> {
        let toml = format!("url = \"https://sms.example.com/v1/messages\"\n{extra}");
        let config: HttpGatewayConfig = toml::from_str(&toml).expect("test config parses");
        HttpGateway::new("api", &config)
    }

    fn error(g: &HttpGateway, status: u16, body: &str) -> SubmitError {
        g.classify(status, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn templates_are_checked_at_construction() {
        let e = gateway("body = '{\"to\":\"{{ recipient }}\"}'").unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("{{recipient}}"), "{e}");
        assert!(e.reason.contains("{{correlation_id}}"), "{e}");
        let e = gateway("body = '{\"to\":{{to}}}'").unwrap_err();
        assert!(e.reason.contains("not valid JSON"), "{e}");
        // With a Content-Type of its own, the body need not be JSON.
        assert!(
            gateway("body = '<to>{{to}}</to>'\nheaders = { Content-Type = \"application/xml\" }")
                .is_ok()
        );
        let config: HttpGatewayConfig = toml::from_str("url = \"ftp://x.test/{{to}}\"").unwrap();
        let e = HttpGateway::new("api", &config).unwrap_err();
        assert!(e.reason.contains("http://"), "{e}");
        let config: HttpGatewayConfig = toml::from_str("url = \"{{to}}/send\"").unwrap();
        assert!(HttpGateway::new("api", &config).is_err());
        let e = gateway("headers = { Authorization = \"Bearer s3cret {{tok}}\" }").unwrap_err();
        assert!(!e.reason.contains("s3cret"), "{e}");
        let e = gateway("headers = { Authorization = \"Bearer s3cret {{\" }").unwrap_err();
        assert!(!e.reason.contains("s3cret"), "{e}");
        let e = gateway("body = '{}'\nform = { a = \"b\" }").unwrap_err();
        assert!(e.reason.contains("not both"), "{e}");
    }

    #[test]
    fn debug_hides_header_values() {
        let g = gateway("headers = { Authorization = \"Bearer s3cret\" }").unwrap();
        let shown = format!("{g:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");
    }

    #[test]
    fn rules_come_first_then_http_status() {
        let g = gateway(
            r#"
            message_id = "$.id"
            permanent = [
                { status = 402, reason = "account has no credit" },
                { json = "$.error.code", equals = "NO_CREDIT", reason = "account has no credit" },
                { json = "$.error.blocked" },
                { json = "$.error.code", equals = 21610 },
            ]
            transient = [{ json = "$.status", equals = "busy" }]
            "#,
        )
        .unwrap();
        let e = error(&g, 402, "");
        assert_eq!((e.class, e.code.as_deref()), (ErrorClass::Permanent, None));
        assert_eq!(e.reason, "account has no credit");
        let e = error(&g, 400, r#"{"error":{"code":"NO_CREDIT"}}"#);
        assert_eq!(e.code.as_deref(), Some("NO_CREDIT"));
        assert_eq!(e.to_string(), "account has no credit (NO_CREDIT)");
        // A rule on the body matches 2xx answers too.
        let e = error(&g, 200, r#"{"error":{"blocked":"ST0P"}}"#);
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(e.code.as_deref(), Some("ST0P"));
        assert!(e.reason.contains("$.error.blocked"), "{e}");
        assert!(e.reason.contains("HTTP 200"), "{e}");
        // Null does not count as present; numbers compare numerically.
        assert!(
            g.classify(200, br#"{"id":"m1","error":{"blocked":null}}"#)
                .is_ok()
        );
        let e = error(&g, 400, r#"{"error":{"code":21610.0}}"#);
        assert_eq!(e.code.as_deref(), Some("21610.0"));
        assert_eq!(error(&g, 400, r#"{"error":{"code":"21610"}}"#).code, None);
        let e = error(&g, 200, r#"{"status":"busy"}"#);
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(e.code.as_deref(), Some("busy"));
    }

    #[test]
    fn defaults_follow_the_http_status() {
        let g = gateway("").unwrap();
        for (status, class) in [
            (500, ErrorClass::Transient),
            (503, ErrorClass::Transient),
            (429, ErrorClass::Transient),
            (408, ErrorClass::Transient),
            (400, ErrorClass::Permanent),
            (401, ErrorClass::Permanent),
            (404, ErrorClass::Permanent),
            (302, ErrorClass::Permanent),
        ] {
            assert_eq!(error(&g, status, "nope").class, class, "HTTP {status}");
        }
        let e = error(&g, 400, "{\"error\":\"bad number\"}\n");
        assert!(e.reason.contains("HTTP 400"), "{e}");
        assert!(e.reason.contains("bad number"), "{e}");
        assert_eq!(g.classify(201, b"").unwrap().message_id, UNKNOWN_MESSAGE_ID);
    }

    #[test]
    fn message_ids_are_strings_or_numbers_else_unknown() {
        let g = gateway("message_id = \"$.data.messages[0].id\"").unwrap();
        let id = |body: &str| g.classify(200, body.as_bytes()).unwrap().message_id;
        assert_eq!(id(r#"{"data":{"messages":[{"id":"abc"}]}}"#), "abc");
        assert_eq!(id(r#"{"data":{"messages":[{"id":42}]}}"#), "42");
        for body in [
            "",
            "{",
            "[]",
            "null",
            r#"{"data":{"messages":[{"id":true}]}}"#,
        ] {
            assert_eq!(id(body), UNKNOWN_MESSAGE_ID, "{body}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let g = gateway("permanent = [{ json = \"$.code\" }]").unwrap();
        for body in [&b"\xff\xfe\x00"[..], b"{\"code\":", &[b'['; 10_000]] {
            for status in [200, 400, 500, 0, 999] {
                let _ = g.classify(status, body);
            }
        }
        assert_eq!(snippet(&[0xe2, 0x82]), "\u{fffd}");
        assert_eq!(snippet(b"\n\t "), "(empty body)");
        assert_eq!(clip("ab\u{e9}cd", 3), "ab\u{e9}\u{2026}");
    }
}
