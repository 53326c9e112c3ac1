//! Polling receivers: for cron and CI, where no provider can reach a webhook.
//!
//! A [`Poller`] lists recent inbound messages to the probe's number; [`watch`]
//! calls it every `interval` while a run waits and hands each message it has
//! not seen before to the inbox, where tokens are matched as for webhooks.
//! The arrival time is when a poll saw the message, so a poll receiver's
//! latency resolution is its interval.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tracing::{debug, warn};

use super::inbox::{Arrival, Inbox};
use crate::net::{BoxFuture, ErrorClass};
use crate::values::E164;

/// What a run asks a poller to look for.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The receiving number (the probe's `to`).
    pub to: E164,
    /// Wall-clock start of the run: older messages need not be listed.
    pub since: chrono::DateTime<chrono::Utc>,
    pub correlation_id: String,
}

/// One inbound message found by a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// The provider's id, so a message is handed on once.
    pub id: String,
    pub body: String,
}

/// A poll that failed.
pub type PollError = crate::net::CallError;

/// A way to list inbound messages.
pub trait Poller: Send + Sync {
    /// Time between polls.
    fn interval(&self) -> Duration;

    /// Lists inbound messages to `watch.to`, at least those since `watch.since`
    /// (older ones are fine: they are deduplicated and match no token).
    fn poll<'a>(&'a self, watch: &'a Watch) -> BoxFuture<'a, Result<Vec<Polled>, PollError>>;
}

impl fmt::Debug for dyn Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Poller(every {:?})", self.interval())
    }
}

/// Polls until a permanent error (returned) or until the caller drops the future.
/// Transient errors are logged and retried at the next interval.
pub async fn watch(poller: &dyn Poller, watch: &Watch, inbox: &Inbox, receiver: &str) -> PollError {
    watch_reporting(poller, watch, inbox, receiver, &Mutex::new(None)).await
}

/// As [`watch`], keeping in `failing` the error of the last poll when it
/// failed (and `None` once one succeeds): a run that times out while its
/// receiver cannot look has not shown that the message was lost.
pub async fn watch_reporting(
    poller: &dyn Poller,
    watch: &Watch,
    inbox: &Inbox,
    receiver: &str,
    failing: &Mutex<Option<PollError>>,
) -> PollError {
    let mut seen: HashSet<String> = HashSet::new();
    let set = |e: Option<PollError>| *failing.lock().unwrap_or_else(|p| p.into_inner()) = e;
    loop {
        // A provider's words enter the run here: numbers in them are masked.
        match poller.poll(watch).await.map_err(PollError::masked) {
            Ok(messages) => {
                set(None);
                let at = Instant::now();
                for m in messages {
                    if seen.insert(m.id.clone()) {
                        let arrival = Arrival {
                            at,
                            receiver: receiver.to_string(),
                            message_id: Some(m.id),
                        };
                        let matched = inbox.arrival(&m.body, arrival);
                        debug!(%receiver, matched, "polled message");
                    }
                }
            }
            Err(e) if e.class == ErrorClass::Permanent => return e,
            Err(e) => {
                warn!(%receiver, error = %e, "poll failed, retrying at the next interval");
                set(Some(e));
            }
        }
        sleep(poller.interval()).await;
    }
}
