//! What happens to a message after the carrier accepted it.
//!
//! queued → sent at once, then at the message's deadline (request received +
//! sampled latency) delivered, undelivered with the number's error code, or
//! nothing at all for a dropped message. Every status change is POSTed to the
//! message's StatusCallback, and a delivery to an owned number creates the
//! inbound message and POSTs its webhook at that same instant, all signed
//! with `X-Twilio-Signature` as Twilio signs them.
//!
//! The deadline is kept by the precise timer, and the final state is applied
//! the moment it fires: callbacks still in flight for earlier statuses delay
//! the final *callback* (receipts must arrive in order) but never the
//! delivery itself, which is what latency measurements look at.
//!
//! Callback failures are logged and otherwise ignored, as a carrier would.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::oneshot;

use super::{
    API_VERSION, Direction, Message, NumberConfig, Shared, Status, new_message_sid, timer,
};
use crate::redact::mask_number;
use crate::signing::twilio_signature;

/// Runs the lifecycle of `message` in its own task; the task ends early if
/// the mock is stopped.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    message: Message,
    behaviour: NumberConfig,
    deadline: Instant,
) {
    let mut stopped = shared.stopped.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run(shared, message, behaviour, deadline) => {}
            // Err means the handle is gone, which also means stop.
            _ = stopped.wait_for(|stopped| *stopped) => {}
        }
    });
}

async fn run(shared: Arc<Shared>, queued: Message, behaviour: NumberConfig, deadline: Instant) {
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
        post_status(&shared, &queued).await;
        post_status(&shared, &sent).await;
        let _ = early_done.send(());
    };

    let late = async {
        let delivers = !behaviour.drop && behaviour.fail.is_none();
        // Everything about the arrival that does not depend on the clock is
        // prepared (and signed) ahead, so the deadline only has to send it.
        let arrival = (delivers && behaviour.is_owned()).then(|| inbound_message(&sent));
        let webhook = match (&arrival, &behaviour.inbound_url) {
            (Some(inbound), Some(url)) => inbound_request(&shared, inbound, url),
            _ => None,
        };

        timer::sleep_until(deadline).await;
        if behaviour.drop {
            tracing::debug!(%sid, to = %mask_number(&sent.to), "mock carrier dropped a message");
            return;
        }
        let now = Utc::now();
        let (status, error_code) = match behaviour.fail {
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
        let arrival = arrival.map(|mut inbound| {
            inbound.date_created = now;
            inbound.date_updated = now;
            inbound.date_sent = Some(now);
            shared.store().insert(inbound)
        });
        let webhook = async {
            if let (Some(inbound), Some(request)) = (&arrival, webhook) {
                send(&shared, request, inbound, "inbound webhook").await;
            }
        };
        let receipt = async {
            // Receipts go out in order; the sender side may still be busy.
            let _ = early_rx.await;
            post_status(&shared, &done).await;
        };
        tokio::join!(webhook, receipt);
    };

    tokio::join!(early, late);
}

/// The inbound copy of a delivered message, as the owned number receives it.
fn inbound_message(outbound: &Message) -> Message {
    Message {
        seq: 0,
        sid: new_message_sid(),
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
    }
}

/// The status callback Twilio sends for a message in its current state.
async fn post_status(shared: &Shared, m: &Message) {
    let Some(url) = &m.status_callback else {
        return;
    };
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
    if let Some(request) = signed_request(shared, url, params, m) {
        send(shared, request, m, "status callback").await;
    }
}

/// The incoming-message webhook for an owned number.
fn inbound_request(shared: &Shared, m: &Message, url: &str) -> Option<reqwest::Request> {
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
    let mut request = shared
        .http
        .post(url)
        .header("X-Twilio-Signature", signature)
        .form(&params);
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
