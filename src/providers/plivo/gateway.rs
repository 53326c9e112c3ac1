//! Plivo's Message API: submit with `POST /v1/Account/{auth_id}/Message/`
//! (JSON, Basic auth), `doctor` fetches the account (`GET
//! /v1/Account/{auth_id}/`) and reads its credit.
//!
//! Plivo refuses a submit with an HTTP status and `{"error": "…"}` in
//! words; a delivery failure comes later, in a status callback with an
//! `ErrorCode`, explained by the table below. Each message asks for its
//! callbacks at its own URL, which carries the run's token.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, call_api, join_base, snippet};
use crate::redact::Secret;

/// One Plivo account.
#[derive(Debug, Clone)]
pub struct PlivoGateway {
    name: String,
    client: reqwest::Client,
    message_url: Url,
    account_url: Url,
    auth_id: String,
    auth_token: Secret,
}

/// How errors name Plivo's answers.
const WHO: &str = "Plivo's answer";

/// Plivo writes numbers as digits, without `+`.
fn digits(number: &str) -> &str {
    number.trim_start_matches('+')
}

impl PlivoGateway {
    pub fn new(
        name: &str,
        base_url: &Url,
        auth_id: &str,
        auth_token: Secret,
        request_timeout: Duration,
    ) -> Result<Self, SubmitError> {
        Ok(PlivoGateway {
            name: name.to_string(),
            client: crate::net::http_client(request_timeout, base_url)?,
            message_url: join_base(base_url, &format!("v1/Account/{auth_id}/Message/"))?,
            account_url: join_base(base_url, &format!("v1/Account/{auth_id}/"))?,
            auth_id: auth_id.to_string(),
            auth_token,
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        let mut body = json!({
            "src": digits(req.from.as_str()),
            "dst": digits(req.to.as_str()),
            "text": req.body,
            "type": "sms",
        });
        if let (Some(cb), Some(fields)) = (&req.status_callback, body.as_object_mut()) {
            fields.insert("url".into(), json!(cb));
            fields.insert("method".into(), json!("POST"));
        }
        let request = self
            .client
            .post(self.message_url.clone())
            .basic_auth(&self.auth_id, Some(self.auth_token.expose()))
            .header("X-Correlation-ID", req.correlation_id)
            .json(&body);
        call_api(request, WHO)
            .await?
            .judge(parse_message, classify_error)
    }
}

impl Gateway for PlivoGateway {
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
        Some(super::webhooks::STATUS.path_for(&self.name))
    }

    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async {
            let request = self
                .client
                .get(self.account_url.clone())
                .basic_auth(&self.auth_id, Some(self.auth_token.expose()));
            let body = call_api(request, WHO).await?.success(classify_error)?;
            let account: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let credits = match &account["cash_credits"] {
                serde_json::Value::String(s) => s.parse::<f64>().ok(),
                v => v.as_f64(),
            };
            match credits {
                Some(c) if c <= 0.0 => Err(SubmitError::permanent(format!(
                    "account has no credit (cash credits {c:.2})"
                ))),
                Some(c) => Ok(Some(format!("cash credits {c:.2}"))),
                None => Err(SubmitError::transient(format!(
                    "account answer unreadable: {}",
                    snippet(&body)
                ))),
            }
        })
    }
}

#[derive(Deserialize)]
struct Queued {
    #[serde(default)]
    message_uuid: Vec<String>,
}

/// Reads a 2xx answer to a submit: the first `message_uuid` is the message id.
pub fn parse_message(body: &[u8]) -> Result<Accepted, SubmitError> {
    match serde_json::from_slice::<Queued>(body) {
        Ok(q) if q.message_uuid.first().is_some_and(|id| !id.is_empty()) => Ok(Accepted {
            message_id: q.message_uuid[0].clone(),
        }),
        // We cannot tell whether the message went out; a retry may duplicate it,
        // which token matching tolerates, while giving up would report a false loss.
        _ => Err(SubmitError::transient(format!(
            "gateway accepted the request but its answer has no message_uuid: {}",
            snippet(body)
        ))),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<serde_json::Value>,
}

/// Classifies a non-2xx answer by its HTTP status, quoting Plivo's words.
pub fn classify_error(status: u16, body: &[u8]) -> SubmitError {
    let said = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .map(|e| match e {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .filter(|s| !s.is_empty())
        .map(|s| crate::net::clip(&s, 200));
    let said = said.map_or_else(|| snippet(body), |s| format!("Plivo said: {s}"));
    match status {
        401 => SubmitError::permanent(format!(
            "authentication failed: check auth_id and auth_token (HTTP 401): {said}"
        )),
        402 => SubmitError::permanent(format!("account has no credit (HTTP 402): {said}")),
        403 => SubmitError::permanent(format!("not allowed for this account (HTTP 403): {said}")),
        404 => SubmitError::permanent(format!(
            "not found: check auth_id and base_url (HTTP 404): {said}"
        )),
        408 | 429 | 500..=599 => {
            SubmitError::transient(format!("gateway error (HTTP {status}): {said}"))
        }
        _ => SubmitError::permanent(format!("Plivo refused the message (HTTP {status}): {said}")),
    }
}

/// Plivo's delivery `ErrorCode`s, in plain words.
pub fn explain_receipt(code: u32) -> Option<&'static str> {
    Some(match code {
        10 => "invalid message (refused by the carrier)",
        20 => "network error at the carrier",
        30 => "detected as spam by the carrier",
        40 => "invalid source number",
        50 => "invalid destination number",
        60 => "loop detected",
        70 => "destination permanently unavailable",
        80 => "destination temporarily unavailable (off or out of coverage)",
        90 => "no route to the destination",
        100 => "prohibited by the carrier",
        110 => "message too long",
        200 => "recipient unsubscribed (replied STOP to this sender)",
        300 => "Plivo failed to dispatch the message",
        420 => "expired before it could be delivered",
        900 => "account has no credit",
        910 => "account disabled",
        1000 => "unknown error",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ErrorClass;

    #[test]
    fn answers_are_read_and_classified() {
        let ok = br#"{"api_id":"a1","message":"message(s) queued","message_uuid":["db3ce55a-7f1d-11e1-8ea7-1231380bc196"]}"#;
        assert_eq!(
            parse_message(ok).unwrap().message_id,
            "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
        );
        for body in [
            &b""[..],
            b"{}",
            br#"{"message_uuid":[]}"#,
            br#"{"message_uuid":[""]}"#,
            &[0xff; 3],
        ] {
            assert_eq!(
                parse_message(body).unwrap_err().class,
                ErrorClass::Transient
            );
        }
        let e = classify_error(400, br#"{"api_id":"a","error":"invalid dst number"}"#);
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("invalid dst number"), "{e}");
        assert_eq!(classify_error(401, b"").class, ErrorClass::Permanent);
        assert_eq!(classify_error(503, b"<html>").class, ErrorClass::Transient);
        assert_eq!(classify_error(429, b"").class, ErrorClass::Transient);
        assert_eq!(
            explain_receipt(200),
            Some("recipient unsubscribed (replied STOP to this sender)")
        );
    }
}
