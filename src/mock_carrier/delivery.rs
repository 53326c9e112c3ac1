//! What happens to a message after the carrier accepted it.
//!
//! queued → sent at once, then at the message's deadline (request received +
//! sampled latency) delivered, undelivered with the number's error code, or
//! nothing at all for a dropped message. Every status change is reported to
//! the message's receipt URL in the format of the API it came in through:
//! Twilio's StatusCallback (queued, sent, delivered/undelivered; signed with
//! `X-Twilio-Signature`) or Vonage's delivery receipt (accepted, then
//! delivered/failed with an `err-code`; signed with `sig` when the account has
//! a signature secret). A delivery to an owned number creates the inbound
//! message (or several, for duplicates) and POSTs its webhook at that same
//! instant, in the sender's API's format unless the number overrides it.
//!
//! The deadline is kept by the precise timer, and the final state is applied
//! the moment it fires: callbacks still in flight for earlier statuses delay
//! the final *callback* (receipts must arrive in order) but never the
//! delivery itself, which is what latency measurements look at.
//!
//! Callback failures are logged and otherwise ignored, as a carrier would.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::faults::MessageFaults;
use super::vonage_api::{self, new_vonage_id, vonage_digits};
use super::{
    API_VERSION, Direction, InboundFormat, Message, NumberConfig, Shared, Status, new_message_sid,
    timer,
};
use crate::redact::mask_number;
use crate::signing::{twilio_signature, vonage_signature};

/// Everything decided about a message's fate when it was accepted.
pub(crate) struct Plan {
    /// The recipient's behaviour at submit time.
    pub(crate) behaviour: NumberConfig,
    /// The rate faults drawn for it.
    pub(crate) faults: MessageFaults,
}

impl Plan {
    fn dropped(&self) -> bool {
        self.behaviour.drop || self.faults.drop
    }

    fn fake_dlr(&self) -> bool {
        self.behaviour.fake_dlr || self.faults.fake_dlr
    }

    /// How many inbound copies a delivered message makes (0: none arrive).
    fn arrivals(&self) -> u32 {
        let arrives = !self.dropped()
            && !self.fake_dlr()
            && self.behaviour.fail.is_none()
            && self.behaviour.is_owned();
        if arrives {
            1u32.saturating_add(self.behaviour.duplicates)
                .saturating_add(u32::from(self.faults.duplicate))
        } else {
            0
        }
    }
}

/// Runs the lifecycle of `message` in its own task; the task ends early if
/// the mock is stopped.
pub(crate) fn spawn(shared: Arc<Shared>, message: Message, plan: Plan, deadline: Instant) {
    let mut stopped = shared.stopped.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run(shared, message, plan, deadline) => {}
            // Err means the handle is gone, which also means stop.
            _ = stopped.wait_for(|stopped| *stopped) => {}
        }
    });
}

async fn run(shared: Arc<Shared>, queued: Message, plan: Plan, deadline: Instant) {
    let sid = queued.sid.clone();
    let sent_at = Utc::now();
    let sent = shared.store().update(&sid, |m| {
        m.status = Status::Sent;
        m.date_sent = Some(sent_at);
        m.date_updated = sent_at;
    });
    let Some(sent) = sent else { return };

    let (early_done, early_rx) = oneshot::channel::<()>();
    let early = async {
        post_receipt(&shared, &queued).await;
        post_receipt(&shared, &sent).await;
        let _ = early_done.send(());
    };

    let late = async {
        // Everything about the arrivals that does not depend on the clock is
        // prepared (and signed) ahead, so the deadline only has to send it.
        // Timestamps inside a webhook are those of the deadline.
        let arrive_at = Utc::now() + deadline.saturating_duration_since(Instant::now());
        let format = plan.behaviour.inbound_format.unwrap_or(sent.api);
        let arrivals: Vec<(Message, Option<reqwest::Request>)> = (0..plan.arrivals())
            .map(|_| {
                let inbound = inbound_message(&sent);
                let webhook = plan
                    .behaviour
                    .inbound_url
                    .as_deref()
                    .and_then(|url| match format {
                        InboundFormat::Twilio => twilio_inbound_request(&shared, &inbound, url),
                        InboundFormat::Vonage => {
                            vonage_inbound_request(&shared, &inbound, url, arrive_at)
                        }
                    });
                (inbound, webhook)
            })
            .collect();

        timer::sleep_until(deadline).await;
        if plan.dropped() {
            tracing::debug!(%sid, to = %mask_number(&sent.to), "mock carrier dropped a message");
            return;
        }
        let now = Utc::now();
        let (status, error_code) = match plan.behaviour.fail {
            Some(code) => (Status::Undelivered, Some(code)),
            None => (Status::Delivered, None),
        };
        let Some(done) = shared.store().update(&sid, |m| {
            m.status = status;
            m.error_code = error_code;
            m.date_updated = now;
        }) else {
            return;
        };
        if plan.fake_dlr() {
            tracing::debug!(%sid, to = %mask_number(&sent.to), "mock carrier faked a delivery receipt");
        }
        let arrivals: Vec<(Message, Option<reqwest::Request>)> = arrivals
            .into_iter()
            .map(|(mut inbound, webhook)| {
                inbound.date_created = now;
                inbound.date_updated = now;
                inbound.date_sent = Some(now);
                (shared.store().insert(inbound), webhook)
            })
            .collect();
        let webhooks = futures_util::future::join_all(arrivals.into_iter().filter_map(
            |(inbound, webhook)| {
                let shared = &shared;
                webhook.map(|request| async move {
                    send(shared, request, &inbound, "inbound webhook").await;
                })
            },
        ));
        let receipt = async {
            // Receipts go out in order; the sender side may still be busy.
            let _ = early_rx.await;
            post_receipt(&shared, &done).await;
        };
        tokio::join!(webhooks, receipt);
    };

    tokio::join!(early, late);
}

/// The inbound copy of a delivered message, as the owned number receives it.
fn inbound_message(outbound: &Message) -> Message {
    Message {
        seq: 0,
        sid: match outbound.api {
            InboundFormat::Twilio => new_message_sid(),
            InboundFormat::Vonage => new_vonage_id(),
        },
        api: outbound.api,
        direction: Direction::Inbound,
        from: outbound.from.clone(),
        to: outbound.to.clone(),
        body: outbound.body.clone(),
        status: Status::Received,
        error_code: None,
        date_created: outbound.date_created,
        date_updated: outbound.date_updated,
        date_sent: None,
        status_callback: None,
        correlation_id: outbound.correlation_id.clone(),
        client_ref: None,
    }
}

/// The receipt for a message in its current state, in its API's format.
async fn post_receipt(shared: &Shared, m: &Message) {
    let request = match m.api {
        InboundFormat::Twilio => twilio_status_request(shared, m),
        InboundFormat::Vonage => vonage_receipt_request(shared, m),
    };
    if let Some(request) = request {
        send(shared, request, m, "delivery receipt").await;
    }
}

/// The status callback Twilio sends for a message in its current state.
fn twilio_status_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    let status = m.status.as_str();
    let mut params = vec![
        ("AccountSid", shared.account_sid.clone()),
        ("ApiVersion", API_VERSION.to_string()),
        ("From", m.from.clone()),
        ("MessageSid", m.sid.clone()),
        ("MessageStatus", status.to_string()),
        ("SmsSid", m.sid.clone()),
        ("SmsStatus", status.to_string()),
        ("To", m.to.clone()),
    ];
    if let Some(code) = m.error_code {
        params.push(("ErrorCode", code.to_string()));
    }
    signed_request(shared, url, params, m)
}

/// The incoming-message webhook for an owned number, Twilio's way.
fn twilio_inbound_request(shared: &Shared, m: &Message, url: &str) -> Option<reqwest::Request> {
    let params = vec![
        ("AccountSid", shared.account_sid.clone()),
        ("ApiVersion", API_VERSION.to_string()),
        ("Body", m.body.clone()),
        ("From", m.from.clone()),
        ("MessageSid", m.sid.clone()),
        ("NumMedia", "0".to_string()),
        ("NumSegments", "1".to_string()),
        ("SmsMessageSid", m.sid.clone()),
        ("SmsSid", m.sid.clone()),
        ("SmsStatus", Status::Received.as_str().to_string()),
        ("To", m.to.clone()),
    ];
    signed_request(shared, url, params, m)
}

/// A form POST signed over the exact URL as configured, query included.
fn signed_request(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
) -> Option<reqwest::Request> {
    let params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let signature = twilio_signature(url, &params, shared.auth_token.expose());
    let request = shared
        .http
        .post(url)
        .header("X-Twilio-Signature", signature)
        .form(&params);
    build(request, m)
}

/// Vonage's delivery receipt: `accepted` once sent, then `delivered` or
/// `failed` with an `err-code`. Queued is internal to Vonage: no receipt.
fn vonage_receipt_request(shared: &Shared, m: &Message) -> Option<reqwest::Request> {
    let url = m.status_callback.as_ref()?;
    let (status, err_code) = match m.status {
        Status::Queued | Status::Received => return None,
        Status::Sent => ("accepted", 0),
        Status::Delivered => ("delivered", 0),
        Status::Undelivered => ("failed", m.error_code.map_or(99, vonage_err_code)),
    };
    let now = Utc::now();
    let mut params = vec![
        ("api-key", shared.vonage.api_key.clone()),
        ("err-code", err_code.to_string()),
        ("message-timestamp", vonage_timestamp(now)),
        ("messageId", m.sid.clone()),
        ("msisdn", vonage_digits(&m.to).to_string()),
        ("network-code", vonage_api::NETWORK_CODE.to_string()),
        ("price", vonage_api::PRICE_TEXT.to_string()),
        ("scts", now.format("%y%m%d%H%M").to_string()),
        ("status", status.to_string()),
        ("to", vonage_digits(&m.from).to_string()),
    ];
    if let Some(client_ref) = &m.client_ref {
        params.push(("client-ref", client_ref.clone()));
    }
    vonage_signed_request(shared, url, params, m, now)
}

/// The inbound-message webhook for an owned number, Vonage's way.
fn vonage_inbound_request(
    shared: &Shared,
    m: &Message,
    url: &str,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    // Vonage routes keywords on the first word, upper-cased.
    let keyword = m
        .body
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_uppercase();
    let params = vec![
        ("api-key", shared.vonage.api_key.clone()),
        ("keyword", keyword),
        ("message-timestamp", vonage_timestamp(at)),
        ("messageId", m.sid.clone()),
        ("msisdn", vonage_digits(&m.from).to_string()),
        ("text", m.body.clone()),
        ("to", vonage_digits(&m.to).to_string()),
        ("type", "text".to_string()),
    ];
    vonage_signed_request(shared, url, params, m, at)
}

/// Vonage's `message-timestamp`: UTC, to the second.
fn vonage_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A form POST with `timestamp` and `sig` added when the account signs.
fn vonage_signed_request(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
    at: DateTime<Utc>,
) -> Option<reqwest::Request> {
    let mut params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some(secret) = &shared.vonage.signature_secret {
        params.push(("timestamp".to_string(), at.timestamp().to_string()));
        let sig = vonage_signature(&params, secret.expose(), shared.vonage.signature_method);
        params.push(("sig".to_string(), sig));
    }
    build(shared.http.post(url).form(&params), m)
}

/// Vonage's DLR `err-code` for a number's `fail` code: small codes are taken
/// to be Vonage's own already, Twilio's delivery codes get their nearest
/// Vonage meaning, anything else is a general error.
pub(crate) fn vonage_err_code(code: u32) -> u32 {
    match code {
        0..100 => code,
        30001 => 8,  // queue overflow: a network-side problem
        30003 => 2,  // handset off or out of coverage: absent, temporarily
        30004 => 4,  // blocked by the recipient
        30005 => 3,  // number does not exist: absent, permanently
        30006 => 11, // landline or unreachable carrier: unroutable
        30007 => 6,  // filtered: anti-spam
        30008 => 1,  // unknown error
        _ => 99,
    }
}

/// Adds the correlation id and builds; a request that cannot be built is
/// logged and skipped.
fn build(mut request: reqwest::RequestBuilder, m: &Message) -> Option<reqwest::Request> {
    if let Some(id) = &m.correlation_id {
        request = request.header("X-Correlation-ID", id);
    }
    match request.build() {
        Ok(request) => Some(request),
        Err(e) => {
            tracing::warn!(sid = %m.sid, error = %e.without_url(), "mock carrier cannot build a callback");
            None
        }
    }
}

/// Sends a callback; the outcome is only logged, as a carrier would.
async fn send(shared: &Shared, request: reqwest::Request, m: &Message, what: &str) {
    // URLs may carry credentials, so logs name the message, not the URL.
    match shared.http.execute(request).await {
        Ok(response) if response.status().is_success() => {
            tracing::trace!(sid = %m.sid, "mock carrier {what} accepted");
        }
        Ok(response) => tracing::warn!(
            sid = %m.sid,
            to = %mask_number(&m.to),
            status = response.status().as_u16(),
            "mock carrier {what} was refused"
        ),
        Err(e) => tracing::warn!(
            sid = %m.sid,
            to = %mask_number(&m.to),
            error = %e.without_url(),
            "mock carrier {what} failed"
        ),
    }
}
