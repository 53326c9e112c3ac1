//! Twilio's Programmable Messaging REST API.
//!
//! Submits with `POST /2010-04-01/Accounts/{sid}/Messages.json` and classifies
//! Twilio's error codes: the table below says which codes retrying can fix and
//! explains each in plain words. `doctor` fetches the account. The mock
//! carrier's Twilio API keeps its own copy of the codes, so a wrong entry here
//! fails a test instead of agreeing with itself.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, ErrorClass, call_api, join_base, snippet};
use crate::redact::Secret;

/// How errors name Twilio's answers.
const WHO: &str = "Twilio's answer";

/// Connection settings for one Twilio account.
#[derive(Debug, Clone)]
pub struct TwilioGateway {
    name: String,
    client: reqwest::Client,
    messages_url: Url,
    account_url: Url,
    account_sid: String,
    auth_token: Secret,
}

impl TwilioGateway {
    pub fn new(
        name: &str,
        base_url: &Url,
        account_sid: &str,
        auth_token: Secret,
        request_timeout: Duration,
    ) -> Result<Self, SubmitError> {
        let messages_url = join_base(
            base_url,
            &format!("2010-04-01/Accounts/{account_sid}/Messages.json"),
        )?;
        let account_url = join_base(base_url, &format!("2010-04-01/Accounts/{account_sid}.json"))?;
        let client = crate::net::http_client(request_timeout, base_url)?;
        Ok(TwilioGateway {
            account_url,
            name: name.to_string(),
            client,
            messages_url,
            account_sid: account_sid.to_string(),
            auth_token,
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        let mut form = vec![
            ("To", req.to.as_str()),
            ("From", req.from.as_str()),
            ("Body", req.body),
        ];
        if let Some(cb) = &req.status_callback {
            form.push(("StatusCallback", cb));
        }
        let request = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header("X-Correlation-ID", req.correlation_id)
            .form(&form);
        call_api(request, WHO)
            .await?
            .judge(parse_message, classify_error)
    }
}

impl Gateway for TwilioGateway {
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
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()));
            let body = call_api(request, WHO).await?.success(classify_error)?;
            let account: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let state = account
                .get("status")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown");
            if state != "active" {
                return Err(SubmitError::permanent(format!(
                    "account status is `{state}`, not active"
                )));
            }
            Ok(Some(format!(
                "account {}… is active",
                &self.account_sid[..self.account_sid.len().min(6)]
            )))
        })
    }
}

/// The fields of Twilio's message resource that we use.
#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: String,
}

/// Twilio's error body: `{"code": 21211, "message": "...", "status": 400}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Reads a 2xx answer to a submit: Twilio's message resource, whose `sid` is the message id.
pub fn parse_message(body: &[u8]) -> Result<Accepted, SubmitError> {
    match serde_json::from_slice::<MessageResource>(body) {
        Ok(m) if !m.sid.is_empty() => Ok(Accepted { message_id: m.sid }),
        // We cannot tell whether the message went out; a retry may duplicate it,
        // which token matching tolerates, while giving up would report a false loss.
        _ => Err(SubmitError::transient(format!(
            "gateway accepted the request but its answer is not a Twilio message resource: {}",
            snippet(body)
        ))),
    }
}

/// Classifies a non-2xx answer by Twilio error code, falling back to the HTTP status.
pub fn classify_error(http_status: u16, body: &[u8]) -> SubmitError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let message = parsed.as_ref().and_then(|b| b.message.clone());
    if let Some((class, reason)) = code.and_then(explain) {
        return SubmitError {
            class,
            code: code.map(|c| c.to_string()),
            reason: reason.to_string(),
            retry_after: None,
        };
    }
    let class = if http_status == 429 || http_status >= 500 || http_status == 408 {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    };
    let reason = match (http_status, message) {
        (_, Some(m)) => format!("Twilio said: {m} (HTTP {http_status})"),
        (401, None) => {
            "authentication failed: check account_sid and auth_token (HTTP 401)".to_string()
        }
        (429, None) => "rate limited by the gateway (HTTP 429)".to_string(),
        (s, None) if s >= 500 => format!("gateway error (HTTP {s}): {}", snippet(body)),
        (s, None) => format!("gateway refused the request (HTTP {s}): {}", snippet(body)),
    };
    SubmitError {
        class,
        code: code.map(|c| c.to_string()),
        reason,
        retry_after: None,
    }
}

/// Twilio error codes we know: whether retrying helps, and what it means in plain words.
pub fn explain(code: u32) -> Option<(ErrorClass, &'static str)> {
    use ErrorClass::*;
    Some(match code {
        20003 => (
            Permanent,
            "authentication failed: check account_sid and auth_token",
        ),
        20404 => (Permanent, "not found: wrong account SID or base URL"),
        20429 => (Transient, "too many requests: rate limited by Twilio"),
        21211 => (Permanent, "invalid 'To' phone number"),
        21212 => (Permanent, "invalid 'From' phone number"),
        21408 => (
            Permanent,
            "sending to this region is not enabled on the account",
        ),
        21602 => (Permanent, "message body is required"),
        21603 => (Permanent, "'From' phone number is required"),
        21604 => (Permanent, "'To' phone number is required"),
        21606 => (
            Permanent,
            "'From' number cannot send SMS: not owned by the account or not SMS-capable",
        ),
        21610 => (
            Permanent,
            "recipient unsubscribed (replied STOP to this sender)",
        ),
        21611 => (Transient, "'From' number has too many queued messages"),
        21612 => (Permanent, "no route from this 'From' to this 'To' number"),
        21614 => (
            Permanent,
            "'To' number cannot receive SMS (landline or not SMS-capable)",
        ),
        21617 => (Permanent, "message body too long"),
        30001 => (Transient, "queue overflow at Twilio"),
        30002 => (Permanent, "account suspended (check billing)"),
        30003 => (
            Permanent,
            "destination handset unreachable (off or out of coverage)",
        ),
        30004 => (Permanent, "message blocked (recipient or carrier block)"),
        30005 => (
            Permanent,
            "unknown destination handset (number does not exist)",
        ),
        30006 => (Permanent, "landline or unreachable carrier"),
        30007 => (Permanent, "filtered by the carrier (spam or compliance)"),
        30008 => (Permanent, "unknown error at the carrier"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_classified_with_reasons() {
        let e = classify_error(
            400,
            br#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}"#,
        );
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(e.code.as_deref(), Some("21610"));
        assert!(e.to_string().contains("unsubscribed"), "{e}");
        assert!(e.to_string().ends_with("(21610)"), "{e}");
        let e = classify_error(
            429,
            br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#,
        );
        assert_eq!(e.class, ErrorClass::Transient);
    }

    #[test]
    fn unknown_codes_fall_back_to_http_status() {
        assert_eq!(
            classify_error(503, b"<html>busy</html>").class,
            ErrorClass::Transient
        );
        assert_eq!(classify_error(500, b"").class, ErrorClass::Transient);
        let e = classify_error(400, br#"{"code": 99999, "message": "Something new"}"#);
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("Something new"));
        assert_eq!(classify_error(401, b"").class, ErrorClass::Permanent);
    }

    #[test]
    fn garbage_success_bodies_are_transient_not_panics() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"sid": ""}"#,
            &[0xff, 0xfe, 0x00],
        ] {
            assert_eq!(
                parse_message(body).unwrap_err().class,
                ErrorClass::Transient
            );
        }
        assert_eq!(
            parse_message(br#"{"sid":"SM123","status":"queued"}"#)
                .unwrap()
                .message_id,
            "SM123"
        );
    }
}
