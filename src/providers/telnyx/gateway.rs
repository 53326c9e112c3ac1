//! Telnyx's Messaging API v2: submit with `POST /v2/messages` (JSON, a
//! bearer API key), `doctor` reads the balance (`GET /v2/balance`).
//!
//! Refusals come as `{"errors": [{"code", "title", "detail"}]}`; the table
//! below says which codes retrying can fix and explains each in plain words,
//! and the receipt codes of `message.finalized` are explained the same way.
//! Each message asks for its receipts at its own webhook URL, which carries
//! the run's token.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, ErrorClass, call_api, join_base, snippet};
use crate::redact::Secret;

/// One Telnyx account (one API key).
#[derive(Debug, Clone)]
pub struct TelnyxGateway {
    name: String,
    client: reqwest::Client,
    messages_url: Url,
    balance_url: Url,
    api_key: Secret,
    messaging_profile_id: Option<String>,
}

/// How errors name Telnyx's answers.
const WHO: &str = "Telnyx's answer";

impl TelnyxGateway {
    pub fn new(
        name: &str,
        base_url: &Url,
        api_key: Secret,
        messaging_profile_id: Option<String>,
        request_timeout: Duration,
    ) -> Result<Self, SubmitError> {
        Ok(TelnyxGateway {
            name: name.to_string(),
            client: crate::net::http_client(request_timeout, base_url)?,
            messages_url: join_base(base_url, "messages")?,
            balance_url: join_base(base_url, "balance")?,
            api_key,
            messaging_profile_id,
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        let mut body = json!({
            "from": req.from.as_str(),
            "to": req.to.as_str(),
            "text": req.body,
            "type": "SMS",
        });
        if let Some(fields) = body.as_object_mut() {
            if let Some(profile) = &self.messaging_profile_id {
                fields.insert("messaging_profile_id".into(), json!(profile));
            }
            if let Some(cb) = &req.status_callback {
                // This message's receipts go to its own URL, not the profile's.
                fields.insert("webhook_url".into(), json!(cb));
                fields.insert("use_profile_webhooks".into(), json!(false));
            }
        }
        let request = self
            .client
            .post(self.messages_url.clone())
            .bearer_auth(self.api_key.expose())
            .header("X-Correlation-ID", req.correlation_id)
            .json(&body);
        call_api(request, WHO)
            .await?
            .judge(parse_message, classify_error)
    }
}

impl Gateway for TelnyxGateway {
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
                .get(self.balance_url.clone())
                .bearer_auth(self.api_key.expose());
            let body = call_api(request, WHO).await?.success(classify_error)?;
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let data = &answer["data"];
            let number = |field: &str| match &data[field] {
                serde_json::Value::String(s) => s.parse::<f64>().ok(),
                v => v.as_f64(),
            };
            let currency = data["currency"].as_str().unwrap_or("");
            match (number("balance"), number("available_credit")) {
                (_, Some(credit)) if credit <= 0.0 => Err(SubmitError::permanent(format!(
                    "account has no credit (available {credit:.2} {currency})"
                ))),
                (Some(balance), _) => Ok(Some(format!("balance {balance:.2} {currency}"))),
                (None, _) => Err(SubmitError::transient(format!(
                    "balance answer unreadable: {}",
                    snippet(&body)
                ))),
            }
        })
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    id: Option<String>,
}

/// Reads a 2xx answer to a submit: `data.id` is the message id.
pub fn parse_message(body: &[u8]) -> Result<Accepted, SubmitError> {
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer {
            data: Some(Message { id: Some(id) }),
        }) if !id.is_empty() => Ok(Accepted { message_id: id }),
        // We cannot tell whether the message went out; a retry may duplicate it,
        // which token matching tolerates, while giving up would report a false loss.
        _ => Err(SubmitError::transient(format!(
            "gateway accepted the request but its answer is not a Telnyx message: {}",
            snippet(body)
        ))),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<serde_json::Value>,
    title: Option<String>,
    detail: Option<String>,
}

/// A Telnyx error code, which Telnyx writes as a string ("10009") and
/// sometimes as a number.
fn code_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Classifies a non-2xx answer by its first error's code, falling back to
/// the HTTP status.
pub fn classify_error(http_status: u16, body: &[u8]) -> SubmitError {
    let first = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.errors.into_iter().next());
    let code = first
        .as_ref()
        .and_then(|e| e.code.as_ref())
        .and_then(code_of);
    if let Some((class, reason)) = code
        .as_deref()
        .and_then(|c| c.parse().ok())
        .and_then(explain)
    {
        return SubmitError {
            class,
            reason: reason.to_string(),
            code,
            retry_after: None,
        };
    }
    let class = if matches!(http_status, 408 | 429) || http_status >= 500 {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    };
    let said = first
        .and_then(|e| e.detail.or(e.title))
        .filter(|s| !s.is_empty());
    let reason = match (http_status, said) {
        (_, Some(said)) => format!(
            "Telnyx said: {} (HTTP {http_status})",
            crate::net::clip(&said, 200)
        ),
        (401, None) => "authentication failed: check api_key (HTTP 401)".to_string(),
        (429, None) => "rate limited by the gateway (HTTP 429)".to_string(),
        (s, None) if s >= 500 => format!("gateway error (HTTP {s}): {}", snippet(body)),
        (s, None) => format!("gateway refused the request (HTTP {s}): {}", snippet(body)),
    };
    SubmitError {
        class,
        reason,
        code,
        retry_after: None,
    }
}

/// Telnyx error codes of a submit: whether retrying helps, and what they
/// mean in plain words.
pub fn explain(code: u32) -> Option<(ErrorClass, &'static str)> {
    use ErrorClass::*;
    Some(match code {
        10001 => (Permanent, "the phone number is inactive"),
        10002 => (Permanent, "invalid phone number"),
        10004 => (Permanent, "a required parameter is missing"),
        10005 => (Permanent, "not found: wrong base URL"),
        10007 => (Transient, "unexpected error at Telnyx"),
        10008 => (Transient, "Telnyx timed out handling the request"),
        10009 => (Permanent, "authentication failed: check api_key"),
        10010 => (
            Permanent,
            "not allowed: the account may not send this (suspended, or lacking permission)",
        ),
        10011 => (Transient, "too many requests: rate limited by Telnyx"),
        10015 => (Permanent, "the request is malformed"),
        10016 => (Permanent, "a phone number is not in +E.164 format"),
        40001 => (Permanent, "'to' number is not routable (a landline?)"),
        40002 => (Transient, "blocked as spam for now by the carrier"),
        40003 => (Permanent, "'from' number blocked as spam by the carrier"),
        40004 => (Permanent, "rejected by the destination carrier"),
        40006 => (Transient, "the recipient's carrier is unavailable"),
        40008 => (
            Permanent,
            "undeliverable: the carrier did not accept the message",
        ),
        40009 => (Permanent, "the message body is invalid"),
        40300 => (
            Permanent,
            "recipient unsubscribed (replied STOP to this sender)",
        ),
        40305 => (Permanent, "invalid 'from' number for this account"),
        40310 => (Permanent, "invalid 'to' number"),
        _ => return None,
    })
}

/// Telnyx's delivery error codes (in `message.finalized`), in plain words.
pub fn explain_receipt(code: u32) -> Option<&'static str> {
    Some(match code {
        40001 => "not routable: a landline or a number that cannot take SMS",
        40002 => "blocked as spam by the carrier (for now)",
        40003 => "blocked as spam by the carrier (for good)",
        40004 => "rejected by the destination carrier",
        40005 => "expired before it could be delivered",
        40006 => "the recipient's carrier is unavailable",
        40008 => "undeliverable: the carrier did not accept it",
        40009 => "the message body was refused",
        40300 => "recipient unsubscribed (replied STOP)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_classified_with_reasons() {
        let e = classify_error(
            422,
            br#"{"errors":[{"code":"40300","title":"Blocked due to STOP message","detail":"..."}]}"#,
        );
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(e.code.as_deref(), Some("40300"));
        assert!(e.to_string().contains("unsubscribed"), "{e}");
        let e = classify_error(
            429,
            br#"{"errors":[{"code":10011,"title":"Too many requests"}]}"#,
        );
        assert_eq!(
            (e.class, e.code.as_deref()),
            (ErrorClass::Transient, Some("10011"))
        );
    }

    #[test]
    fn unknown_codes_fall_back_to_http_status_and_garbage_never_panics() {
        let e = classify_error(
            400,
            br#"{"errors":[{"code":"99999","detail":"Something new"}]}"#,
        );
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("Something new"), "{e}");
        assert_eq!(classify_error(503, b"<html>").class, ErrorClass::Transient);
        assert_eq!(classify_error(401, b"").class, ErrorClass::Permanent);
        for body in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"data":{}}"#,
            br#"{"data":{"id":""}}"#,
            &[0xff; 4],
        ] {
            assert_eq!(
                parse_message(body).unwrap_err().class,
                ErrorClass::Transient
            );
            let _ = classify_error(400, body);
        }
        assert_eq!(
            parse_message(br#"{"data":{"id":"4031938e-60e6-4e3f-8b33-5d8ba4e4a1c0"}}"#)
                .unwrap()
                .message_id,
            "4031938e-60e6-4e3f-8b33-5d8ba4e4a1c0"
        );
    }
}
