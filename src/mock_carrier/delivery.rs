//! What happens to a message after the carrier accepted it.
//!
//! queued → sent at once, then at the message's deadline (request received +
//! sampled latency) delivered, undelivered with the number's error code, or
//! nothing at all for a dropped message. Every status change is reported to
//! the message's receipt URL in the format of the API it came in through,
//! signed as that provider signs (each provider's `mock.rs` says which
//! statuses it reports and how). A delivery to an owned number creates the
//! inbound message (or several, for duplicates) and POSTs its webhook at that
//! same instant, in the sender's API's format unless the number overrides it;
//! a number's `redeliveries` posts that same webhook again, unchanged.
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

use super::faults::MessageFaults;
use super::{Direction, Message, NumberConfig, Shared, Status, timer};
use crate::redact::mask_number;

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
                    .and_then(|url| format.inbound_request(&shared, &inbound, url, arrive_at));
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
                let redeliveries = plan.behaviour.redeliveries;
                webhook.map(|request| async move {
                    let copies: Vec<reqwest::Request> = (0..redeliveries)
                        .filter_map(|_| request.try_clone())
                        .collect();
                    send(shared, request, &inbound, "inbound webhook").await;
                    for copy in copies {
                        send(shared, copy, &inbound, "inbound webhook (redelivered)").await;
                    }
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
        sid: outbound.api.new_id(),
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
    let request = m.api.receipt_request(shared, m);
    if let Some(request) = request {
        send(shared, request, m, "delivery receipt").await;
    }
}

/// Adds the correlation id and builds; a request that cannot be built is
/// logged and skipped.
pub(crate) fn build(mut request: reqwest::RequestBuilder, m: &Message) -> Option<reqwest::Request> {
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
