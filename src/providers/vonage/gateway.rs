//! Vonage's SMS API (`POST /sms/json`).
//!
//! Vonage answers HTTP 200 even when it refuses a message; the verdict is the
//! per-message `status` code, classified by the table below. Delivery receipts
//! come back to `{public_url}/hooks/vonage/receipt/{gateway}`; `client-ref`
//! carries our correlation id so it shows in Vonage's own logs.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, ErrorClass, call_api, join_base};
use crate::redact::Secret;

/// How errors name Vonage's answers.
const WHO: &str = "Vonage's answer";

/// One Vonage account.
#[derive(Debug, Clone)]
pub struct VonageGateway {
    name: String,
    client: reqwest::Client,
    sms_url: Url,
    balance_url: Url,
    api_key: String,
    api_secret: Secret,
}

impl VonageGateway {
    pub fn new(
        name: &str,
        base_url: &Url,
        api_key: &str,
        api_secret: Secret,
        request_timeout: Duration,
    ) -> Result<Self, SubmitError> {
        let sms_url = join_base(base_url, "sms/json")?;
        let balance_url = join_base(base_url, "account/get-balance")?;
        let client = crate::net::http_client(request_timeout, base_url)?;
        Ok(VonageGateway {
            balance_url,
            name: name.to_string(),
            client,
            sms_url,
            api_key: api_key.to_string(),
            api_secret,
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        // Vonage wants international numbers without the leading `+`.
        let to = req.to.as_str().trim_start_matches('+');
        let from = req.from.as_str().trim_start_matches('+');
        let mut form = vec![
            ("api_key", self.api_key.as_str()),
            ("api_secret", self.api_secret.expose()),
            ("from", from),
            ("to", to),
            ("text", req.body),
            ("client-ref", req.correlation_id),
        ];
        if let Some(cb) = &req.status_callback {
            form.push(("callback", cb));
            form.push(("status-report-req", "1"));
        }
        let request = self
            .client
            .post(self.sms_url.clone())
            .header("X-Correlation-ID", req.correlation_id)
            .form(&form);
        call_api(request, WHO)
            .await?
            .judge(parse_response, classify_http)
    }
}

impl Gateway for VonageGateway {
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
        Some(super::webhooks::RECEIPT.path_for(&self.name))
    }

    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async {
            let request = self.client.get(self.balance_url.clone()).query(&[
                ("api_key", self.api_key.as_str()),
                ("api_secret", self.api_secret.expose()),
            ]);
            let body = call_api(request, WHO).await?.success(classify_http)?;
            let balance: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            match balance.get("value").and_then(|v| v.as_f64()) {
                Some(v) if v <= 0.0 => Err(SubmitError::permanent(format!(
                    "account has no credit (balance {v})"
                ))),
                Some(v) => Ok(Some(format!("balance {v:.2}"))),
                None => Err(SubmitError::transient(format!(
                    "balance answer unreadable: {}",
                    crate::net::snippet(&body)
                ))),
            }
        })
    }
}

#[derive(Debug, Deserialize)]
struct Response {
    messages: Vec<MessageStatus>,
}

#[derive(Debug, Deserialize)]
struct MessageStatus {
    /// A string in Vonage's answers; tolerate a number.
    status: serde_json::Value,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

/// Reads a 2xx answer to a submit: the first message's `status` is the verdict.
pub fn parse_response(body: &[u8]) -> Result<Accepted, SubmitError> {
    let parsed: Response = serde_json::from_slice(body).map_err(|_| {
        SubmitError::transient(format!(
            "gateway answer is not a Vonage SMS response: {}",
            crate::net::snippet(body)
        ))
    })?;
    let Some(first) = parsed.messages.into_iter().next() else {
        return Err(SubmitError::transient(
            "Vonage answered with no message status",
        ));
    };
    let code = match &first.status {
        serde_json::Value::String(s) => s.trim().parse::<u32>().ok(),
        // Out of range is unreadable: truncated, 2^32 would read as 0, "accepted".
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    match (code, first.message_id) {
        (Some(0), Some(id)) if !id.is_empty() => Ok(Accepted { message_id: id }),
        (Some(0), _) => Err(SubmitError::transient(
            "Vonage accepted the message but gave no message-id",
        )),
        (Some(code), _) => {
            let (class, reason) =
                explain_status(code).unwrap_or((ErrorClass::Permanent, "refused by Vonage"));
            let detail = first
                .error_text
                .filter(|t| !t.is_empty())
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            Err(SubmitError {
                class,
                code: Some(code.to_string()),
                reason: format!("{reason}{detail}"),
                retry_after: None,
            })
        }
        (None, _) => Err(SubmitError::transient(format!(
            "Vonage answered with an unreadable status: {}",
            crate::net::snippet(body)
        ))),
    }
}

/// Classifies a non-2xx answer by its HTTP status.
pub fn classify_http(status: u16, body: &[u8]) -> SubmitError {
    match status {
        401 | 403 => SubmitError::permanent(format!(
            "authentication failed: check api_key and api_secret (HTTP {status})"
        )),
        408 | 429 | 500..=599 => SubmitError::transient(format!(
            "gateway error (HTTP {status}): {}",
            crate::net::snippet(body)
        )),
        _ => SubmitError::permanent(format!(
            "gateway refused the request (HTTP {status}): {}",
            crate::net::snippet(body)
        )),
    }
}

/// Vonage SMS API status codes: whether retrying helps, and what they mean.
///
/// Vonage documents 1 (throttled) and 5 (internal error) as worth retrying,
/// and 10 (too many binds) clears by itself; the rest cannot be fixed by retrying.
pub fn explain_status(code: u32) -> Option<(ErrorClass, &'static str)> {
    use ErrorClass::*;
    Some(match code {
        1 => (
            Transient,
            "throttled: sending faster than the account allows",
        ),
        2 => (Permanent, "a required parameter is missing"),
        3 => (Permanent, "a parameter is invalid"),
        4 => (
            Permanent,
            "authentication failed: check api_key and api_secret",
        ),
        5 => (Transient, "internal error at Vonage"),
        6 => (
            Permanent,
            "message could not be processed (invalid message)",
        ),
        7 => (Permanent, "destination number is barred"),
        8 => (Permanent, "account is barred (suspended by Vonage)"),
        9 => (Permanent, "account has no credit (quota exceeded)"),
        10 => (Transient, "too many concurrent connections to Vonage"),
        11 => (Permanent, "account is not enabled for the HTTP SMS API"),
        12 => (Permanent, "message too long"),
        14 => (Permanent, "invalid request signature"),
        15 => (Permanent, "'from' is not a valid sender for this account"),
        22 => (Permanent, "invalid network code"),
        23 => (Permanent, "callback URL refused by Vonage"),
        29 => (Permanent, "destination not whitelisted (trial account)"),
        32 => (Permanent, "signature and API secret used together"),
        33 => (Permanent, "destination number is de-activated"),
        _ => return None,
    })
}

/// Vonage delivery-receipt `err-code`s, in plain words.
pub fn explain_receipt(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "unknown error at the carrier",
        2 => "handset temporarily absent (off or out of coverage)",
        3 => "handset permanently absent (number not in service)",
        4 => "call barred by the recipient",
        5 => "number portability error",
        6 => "rejected as spam by the carrier",
        7 => "handset busy",
        8 => "network error",
        9 => "illegal number",
        10 => "illegal message",
        11 => "unroutable",
        12 => "destination unreachable",
        13 => "subscriber age restriction",
        14 => "number blocked by the carrier",
        15 => "recipient's prepaid account has insufficient funds",
        99 => "general error at the carrier",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused_answers_are_told_apart() {
        let ok = br#"{"message-count":"1","messages":[{"to":"447700900000","message-id":"0A0000000123ABCD1","status":"0"}]}"#;
        assert_eq!(parse_response(ok).unwrap().message_id, "0A0000000123ABCD1");
        let no_credit = br#"{"message-count":"1","messages":[{"status":"9","error-text":"Quota Exceeded - rejected"}]}"#;
        let e = parse_response(no_credit).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_deref()),
            (ErrorClass::Permanent, Some("9"))
        );
        assert!(e.to_string().contains("no credit"), "{e}");
        let throttled = br#"{"messages":[{"status":"1","error-text":"Throughput Rate Exceeded"}]}"#;
        assert_eq!(
            parse_response(throttled).unwrap_err().class,
            ErrorClass::Transient
        );
    }

    #[test]
    fn a_numeric_status_out_of_range_is_not_read_as_accepted() {
        let huge = br#"{"messages":[{"status":4294967296,"message-id":"0A00"}]}"#;
        let e = parse_response(huge).unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(e.reason.contains("unreadable status"), "{e}");
        let numeric = br#"{"messages":[{"status":0,"message-id":"0A00"}]}"#;
        assert_eq!(parse_response(numeric).unwrap().message_id, "0A00");
    }

    #[test]
    fn garbage_never_panics_and_is_transient() {
        for body in [
            &b""[..],
            b"{}",
            br#"{"messages":[]}"#,
            br#"{"messages":[{"status":null}]}"#,
            &[0xff; 8],
        ] {
            assert_eq!(
                parse_response(body).unwrap_err().class,
                ErrorClass::Transient,
                "{body:?}"
            );
        }
        assert_eq!(classify_http(401, b"").class, ErrorClass::Permanent);
        assert_eq!(classify_http(503, b"").class, ErrorClass::Transient);
    }
}
