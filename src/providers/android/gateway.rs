//! Sending through the app's API: `POST {base_url}/message` (JSON, Basic
//! auth), on the phone's local server or the cloud relay; `doctor` lists the
//! webhooks registered (`GET {base_url}/webhooks`), a read-only call that
//! proves the credentials and says whether receipts can come.
//!
//! Each message is given its run's correlation id as its `id`: the app
//! echoes it in `sms:sent` / `sms:delivered` / `sms:failed`, which is how a
//! receipt finds its run (the app has no per-message callback URL). The
//! app refuses in `{"message": …}` with an HTTP status; the status decides
//! whether retrying can help. A failed send's `reason` is Android's
//! `SmsManager` result name, explained below.

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::config::AndroidGatewayConfig;
use crate::gateway::{Accepted, Gateway, SubmitError, SubmitRequest};
use crate::net::{BoxFuture, ErrorClass, call_api, join_base, snippet};
use crate::redact::Secret;

/// One phone (one API account).
#[derive(Debug, Clone)]
pub struct AndroidGateway {
    name: String,
    client: reqwest::Client,
    message_url: Url,
    webhooks_url: Url,
    username: String,
    password: Secret,
    device_id: Option<String>,
    sim_number: Option<u8>,
}

/// How errors name the app's answers.
const WHO: &str = "the app's answer";

impl AndroidGateway {
    pub fn new(name: &str, config: &AndroidGatewayConfig) -> Result<Self, SubmitError> {
        let base = &config.base_url;
        Ok(AndroidGateway {
            name: name.to_string(),
            client: crate::net::http_client(config.request_timeout, base)?,
            message_url: join_base(base, "message")?,
            webhooks_url: join_base(base, "webhooks")?,
            username: config.username.clone(),
            password: config.password.clone(),
            device_id: config.device_id.clone(),
            sim_number: config.sim_number,
        })
    }

    async fn send(&self, req: SubmitRequest<'_>) -> Result<Accepted, SubmitError> {
        let mut body = json!({
            "id": req.correlation_id,
            "textMessage": { "text": req.body },
            "phoneNumbers": [req.to.as_str()],
            "withDeliveryReport": true,
        });
        if let Some(fields) = body.as_object_mut() {
            if let Some(sim) = self.sim_number {
                fields.insert("simNumber".into(), json!(sim));
            }
            if let Some(device) = &self.device_id {
                fields.insert("deviceId".into(), json!(device));
            }
        }
        let request = self
            .client
            .post(self.message_url.clone())
            .basic_auth(&self.username, Some(self.password.expose()))
            .header("X-Correlation-ID", req.correlation_id)
            .json(&body);
        call_api(request, WHO)
            .await?
            .judge(parse_message, classify_error)
    }
}

impl Gateway for AndroidGateway {
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
            let request = self
                .client
                .get(self.webhooks_url.clone())
                .basic_auth(&self.username, Some(self.password.expose()));
            let body = call_api(request, WHO).await?.success(classify_error)?;
            let Ok(hooks) = serde_json::from_slice::<Vec<Webhook>>(&body) else {
                return Err(SubmitError::transient(format!(
                    "the webhook list is unreadable: {}",
                    snippet(&body)
                )));
            };
            let receipts = hooks
                .iter()
                .filter(|h| super::webhooks::RECEIPT_EVENTS.contains(&h.event.as_str()))
                .count();
            Ok(Some(format!(
                "{} webhook{} registered, {receipts} for receipts",
                hooks.len(),
                if hooks.len() == 1 { "" } else { "s" }
            )))
        })
    }
}

#[derive(Deserialize)]
struct Webhook {
    event: String,
}

#[derive(Deserialize)]
struct MessageState {
    id: Option<String>,
    state: Option<String>,
    #[serde(default)]
    recipients: Vec<Recipient>,
}

#[derive(Deserialize)]
struct Recipient {
    error: Option<String>,
}

/// Reads a 2xx answer to a submit: the message state, `id` its id.
pub fn parse_message(body: &[u8]) -> Result<Accepted, SubmitError> {
    match serde_json::from_slice::<MessageState>(body) {
        Ok(m) if m.state.as_deref() == Some("Failed") => {
            let error = m
                .recipients
                .into_iter()
                .find_map(|r| r.error)
                .unwrap_or_default();
            Err(SubmitError::permanent(format!(
                "the phone could not send it: {}",
                crate::net::clip(&error, 200)
            )))
        }
        Ok(MessageState { id: Some(id), .. }) if !id.is_empty() => Ok(Accepted { message_id: id }),
        // We cannot tell whether the message went out; a retry may duplicate it,
        // which token matching tolerates, while giving up would report a false loss.
        _ => Err(SubmitError::transient(format!(
            "gateway accepted the request but its answer is not a message state: {}",
            snippet(body)
        ))),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// Classifies a non-2xx answer by its HTTP status, with the app's words.
pub fn classify_error(http_status: u16, body: &[u8]) -> SubmitError {
    let class = if matches!(http_status, 408 | 429) || http_status >= 500 {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    };
    let said = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let reason = match (http_status, said) {
        (401, _) => "authentication failed: check username and password (HTTP 401)".to_string(),
        (_, Some(said)) => format!(
            "the app said: {} (HTTP {http_status})",
            crate::net::clip(&said, 200)
        ),
        (429, None) => "rate limited by the gateway (HTTP 429)".to_string(),
        (s, None) if s >= 500 => format!("gateway error (HTTP {s}): {}", snippet(body)),
        (s, None) => format!("gateway refused the request (HTTP {s}): {}", snippet(body)),
    };
    SubmitError {
        class,
        reason,
        code: Some(http_status.to_string()),
        retry_after: None,
    }
}

/// The code of an `sms:failed` reason: Android's result name when the
/// reason is one (`RESULT_ERROR_NO_SERVICE`), else none.
pub fn failure_code(reason: &str) -> Option<String> {
    let name = reason.split([':', ' ', ',']).next()?.trim();
    let looks_like_a_name = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    looks_like_a_name.then(|| name.to_string())
}

/// Android's send results (`SmsManager.RESULT_*`) in plain words.
pub fn explain_failure(reason: &str) -> Option<&'static str> {
    Some(match failure_code(reason)?.as_str() {
        "RESULT_ERROR_GENERIC_FAILURE" => "the phone's radio refused to send it (generic failure)",
        "RESULT_ERROR_NO_SERVICE" => "the sending phone has no mobile service",
        "RESULT_ERROR_RADIO_OFF" => "the sending phone's radio is off (airplane mode?)",
        "RESULT_ERROR_NULL_PDU" => "the message could not be encoded",
        "RESULT_ERROR_LIMIT_EXCEEDED" => "Android's limit on messages sent was reached",
        "RESULT_ERROR_SHORT_CODE_NOT_ALLOWED" | "RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED" => {
            "the phone may not send to this short code"
        }
        "RESULT_NETWORK_REJECT" => "the mobile network rejected it",
        "RESULT_INVALID_SMSC_ADDRESS" => "the SIM's message centre (SMSC) address is invalid",
        "RESULT_NO_DEFAULT_SMS_APP" => "the phone has no default SMS app",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let ok = br#"{"id":"01J","state":"Pending","recipients":[{"phoneNumber":"+15005550100","state":"Pending"}]}"#;
        assert_eq!(parse_message(ok).unwrap().message_id, "01J");
        let failed = br#"{"id":"01J","state":"Failed","recipients":[{"phoneNumber":"+1","state":"Failed","error":"RESULT_ERROR_NO_SERVICE"}]}"#;
        let e = parse_message(failed).unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("RESULT_ERROR_NO_SERVICE"), "{}", e.reason);
        for garbage in [&b""[..], b"{}", b"[]", br#"{"id":""}"#, &[0xff; 4]] {
            assert_eq!(
                parse_message(garbage).unwrap_err().class,
                ErrorClass::Transient
            );
        }
        let e = classify_error(401, b"");
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("username and password"));
        let e = classify_error(400, br#"{"message":"invalid phone number"}"#);
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.contains("invalid phone number"));
        assert_eq!(classify_error(503, b"<html>").class, ErrorClass::Transient);
        assert_eq!(classify_error(429, b"").class, ErrorClass::Transient);
    }

    #[test]
    fn failure_reasons_are_named_and_explained() {
        assert_eq!(
            failure_code("RESULT_ERROR_NO_SERVICE").as_deref(),
            Some("RESULT_ERROR_NO_SERVICE")
        );
        assert!(explain_failure("RESULT_ERROR_RADIO_OFF").is_some());
        assert_eq!(failure_code("something went wrong"), None);
        assert_eq!(explain_failure(""), None);
    }
}
