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

use super::twilio_api::error_message;
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
        let inbound = (status == Status::Delivered && behaviour.is_owned()).then(|| {
            shared.store().insert(Message {
                seq: 0,
                sid: new_message_sid(),
                direction: Direction::Inbound,
                from: done.from.clone(),
                to: done.to.clone(),
                body: done.body.clone(),
                status: Status::Received,
                error_code: None,
                date_created: now,
                date_updated: now,
                date_sent: Some(now),
                status_callback: None,
                correlation_id: done.correlation_id.clone(),
            })
        });
        let webhook = async {
            if let (Some(inbound), Some(url)) = (&inbound, &behaviour.inbound_url) {
                post_inbound(&shared, inbound, url).await;
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
        params.push(("ErrorMessage", error_message(code)));
    }
    post_signed(shared, url, params, m, "status callback").await;
}

/// The incoming-message webhook for an owned number.
async fn post_inbound(shared: &Shared, m: &Message, url: &str) {
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
    post_signed(shared, url, params, m, "inbound webhook").await;
}

/// POSTs a form signed over the exact URL as configured, query included.
async fn post_signed(
    shared: &Shared,
    url: &str,
    params: Vec<(&str, String)>,
    m: &Message,
    what: &str,
) {
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
    // URLs may carry credentials, so logs name the message, not the URL.
    match request.send().await {
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
