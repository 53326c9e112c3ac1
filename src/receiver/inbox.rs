//! Where arrivals and delivery receipts meet the runs waiting for them.
//!
//! A run registers its token; receivers hand every inbound message body and
//! every receipt to the inbox, which looks tokens up in a hash index (never by
//! arrival order, and never by scanning the waiting runs). Messages that match
//! no waiting run are counted as strangers and otherwise ignored; those for a
//! run that has just ended (a duplicate, or an arrival after the timeout) are
//! counted as late instead, so a carrier duplicating messages is not mistaken
//! for somebody else texting the number.
//!
//! It also keeps what outlives one set of webhook routes (a reload rebuilds
//! them): the ids of provider events already taken, and the signs of life
//! of receivers that report their own health (a phone's pings), so that a
//! silent phone is told apart from lost messages.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::webhook::SeenOnce;
use crate::probe::TOKEN_LEN;

/// What a receiver observed for a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// The message arrived at the receiving number.
    Arrival(Arrival),
    /// The gateway reported a delivery status change.
    Receipt(Receipt),
}

#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    /// Which receiver saw it.
    pub receiver: String,
    /// The provider's id of the inbound message, if it has one.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Receipt {
    pub at: Instant,
    pub status: DeliveryStatus,
    /// The provider's error code on failure receipts (e.g. 30003).
    pub error_code: Option<String>,
    /// The code in plain words, from the provider's table, when known.
    pub explanation: Option<&'static str>,
    pub message_id: Option<String>,
}

/// Delivery status as reported by the gateway, in the providers' common vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    /// Statuses that carry no phase (accepted, sending, …).
    Other(String),
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> DeliveryStatus {
        match s.to_ascii_lowercase().as_str() {
            "queued" | "accepted" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" => DeliveryStatus::Delivered,
            "undelivered" => DeliveryStatus::Undelivered,
            "failed" => DeliveryStatus::Failed,
            other => DeliveryStatus::Other(other.to_string()),
        }
    }

    /// A terminal failure: the run can end now instead of waiting for its timeout.
    pub fn is_failure(&self) -> bool {
        matches!(self, DeliveryStatus::Undelivered | DeliveryStatus::Failed)
    }
}

/// The token index shared by all receivers and runs of one process.
#[derive(Debug, Default)]
pub struct Inbox {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    /// Tokens of runs that ended, to tell late arrivals from strangers.
    finished: Mutex<Finished>,
    strangers: AtomicU64,
    late: AtomicU64,
    /// Ids of provider events already taken (a retry is taken once).
    events: Mutex<SeenOnce>,
    /// Receivers that report their own health, by name.
    watched: Mutex<HashMap<String, Watched>>,
}

/// A receiver whose silence means it is offline.
#[derive(Debug, Clone, Copy)]
struct Watched {
    /// How long it may stay silent.
    limit: Duration,
    /// Since when it is watched (its silence counts from here if never heard).
    since: Instant,
    heard: Option<Instant>,
}

/// A receiver silent for longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Its last sign of life, or `None` if none came since it is watched.
    pub last_heard: Option<Instant>,
    /// How long it has been silent (since its last sign, or since watched).
    pub silent_for: Duration,
    pub limit: Duration,
}

impl Silence {
    /// In words, for a run's reason and (with the wall time it began) the
    /// canary's alert.
    pub fn describe(&self, receiver: &str, since: Option<chrono::DateTime<chrono::Utc>>) -> String {
        let quiet = humantime::format_duration(crate::probe::round_ms(self.silent_for));
        let limit = humantime::format_duration(self.limit);
        let since = since.map_or(String::new(), |t| {
            format!(
                " since {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        });
        let what = match self.last_heard {
            Some(_) => format!("for {quiet}"),
            None => format!("in the {quiet} it has been watched"),
        };
        format!(
            "receiving phone `{receiver}` offline{since}: nothing from it (no ping, no message) {what}, over its ping_timeout of {limit}"
        )
    }
}

/// How many ended runs' tokens are remembered (a FIFO: memory stays bounded).
pub const FINISHED_KEPT: usize = 10_000;

/// Ended runs' tokens: a set to look arrivals up in (a flood of strangers
/// must not cost a scan each), and their order, to forget the oldest.
#[derive(Debug, Default)]
struct Finished {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Finished {
    fn insert(&mut self, token: String) {
        if !self.set.insert(token.clone()) {
            return;
        }
        if self.order.len() >= FINISHED_KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(token);
    }
}

/// The sizes of the inbox's bookkeeping, to show that it stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxStats {
    /// Runs waiting now.
    pub waiting: usize,
    /// Ended runs' tokens remembered (at most [`FINISHED_KEPT`]).
    pub finished: usize,
    pub strangers: u64,
    pub late: u64,
}

impl Inbox {
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox::default())
    }

    /// Starts waiting for messages carrying `token`; stops when the `Waiter` drops.
    pub fn register(self: &Arc<Self>, token: &str) -> Waiter {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = token.to_ascii_lowercase();
        self.lock().insert(token.clone(), tx);
        Waiter {
            inbox: Arc::clone(self),
            token,
            rx,
        }
    }

    /// Hands an inbound message to the runs whose tokens its body carries.
    /// Returns how many runs it matched; zero means a stranger (counted).
    pub fn arrival(&self, body: &str, arrival: Arrival) -> usize {
        let matched = {
            let waiting = self.lock();
            candidate_tokens(body)
                .filter_map(|t| waiting.get(&t).cloned())
                .filter(|tx| tx.send(Event::Arrival(arrival.clone())).is_ok())
                .count()
        };
        if matched == 0 {
            let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
            let late = candidate_tokens(body).any(|t| finished.set.contains(&t));
            let counter = if late { &self.late } else { &self.strangers };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        matched
    }

    /// Hands a delivery receipt to the run with `token`. False if none waits for it.
    pub fn receipt(&self, token: &str, receipt: Receipt) -> bool {
        let tx = self.lock().get(&token.to_ascii_lowercase()).cloned();
        tx.is_some_and(|tx| tx.send(Event::Receipt(receipt)).is_ok())
    }

    /// Whether provider event `key` is seen for the first time (and now remembered).
    pub fn first_delivery(&self, key: &str) -> bool {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_use(key)
    }

    /// Watches receiver `name`: silent for longer than `limit`, it is
    /// offline. Watching it again (a reload) changes the limit and keeps
    /// what was heard.
    pub fn watch_receiver(&self, name: &str, limit: Duration) {
        let mut watched = self.watched();
        watched
            .entry(name.to_string())
            .and_modify(|w| w.limit = limit)
            .or_insert(Watched {
                limit,
                since: Instant::now(),
                heard: None,
            });
    }

    /// Notes a sign of life from receiver `name`, at `at`.
    pub fn heard_from(&self, name: &str, at: Instant) {
        if let Some(w) = self.watched().get_mut(name) {
            w.heard = Some(w.heard.map_or(at, |h| h.max(at)));
        }
    }

    /// When watched receiver `name` last gave a sign of life.
    pub fn last_heard(&self, name: &str) -> Option<Instant> {
        self.watched().get(name).and_then(|w| w.heard)
    }

    /// Receiver `name`'s silence, if it is watched and silent for longer
    /// than its limit now.
    pub fn silence(&self, name: &str) -> Option<Silence> {
        let w = *self.watched().get(name)?;
        let silent_for = Instant::now().saturating_duration_since(w.heard.unwrap_or(w.since));
        (silent_for > w.limit).then_some(Silence {
            last_heard: w.heard,
            silent_for,
            limit: w.limit,
        })
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a delivery receipt to the run whose token `body` (the message
    /// as submitted) carries: for gateways whose receipts name only the
    /// provider's message id, which the gateway maps back to its body.
    pub fn receipt_in(&self, body: &str, receipt: Receipt) -> bool {
        let waiting = self.lock();
        let tx = candidate_tokens(body).find_map(|t| waiting.get(&t).cloned());
        drop(waiting);
        tx.is_some_and(|tx| tx.send(Event::Receipt(receipt)).is_ok())
    }

    /// Inbound messages that matched no waiting run, since start.
    pub fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::Relaxed)
    }

    /// Arrivals for runs that had already ended (duplicates, late arrivals).
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    pub fn stats(&self) -> InboxStats {
        let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        InboxStats {
            waiting: self.waiting(),
            finished: finished.order.len().max(finished.set.len()),
            strangers: self.strangers(),
            late: self.late(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Event>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove/get), so poisoning is ignored.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Words of a message body that could be tokens: carriers and templates may put
/// punctuation around the token, and some handsets change case.
fn candidate_tokens(body: &str) -> impl Iterator<Item = String> + '_ {
    body.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == TOKEN_LEN)
        .map(|w| w.to_ascii_lowercase())
}

/// A run's registration in the inbox.
#[derive(Debug)]
pub struct Waiter {
    inbox: Arc<Inbox>,
    token: String,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Waiter {
    /// The next event; `None` never happens while the waiter lives (the inbox
    /// holds the sender), so callers can treat it as "nothing more will come".
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.inbox.lock().remove(&self.token);
        let mut finished = self
            .inbox
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        finished.insert(std::mem::take(&mut self.token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival() -> Arrival {
        Arrival {
            at: Instant::now(),
            receiver: "inbox".into(),
            message_id: None,
        }
    }

    #[tokio::test]
    async fn matches_by_token_regardless_of_order_and_punctuation() {
        let inbox = Inbox::new();
        let mut a = inbox.register("abcdefghjk");
        let mut b = inbox.register("mnpqrstvwx");
        assert_eq!(
            inbox.arrival("sms-canary probe-b MNPQRSTVWX.", arrival()),
            1
        );
        assert_eq!(inbox.arrival("code:abcdefghjk!", arrival()), 1);
        assert!(matches!(a.try_recv(), Some(Event::Arrival(_))));
        assert!(matches!(b.try_recv(), Some(Event::Arrival(_))));
        assert!(a.try_recv().is_none());
    }

    #[tokio::test]
    async fn strangers_are_counted_and_dropped_waiters_unregister() {
        let inbox = Inbox::new();
        let waiter = inbox.register("abcdefghjk");
        assert_eq!(inbox.arrival("hello from a stranger", arrival()), 0);
        assert_eq!(inbox.arrival("almost abcdefghj", arrival()), 0);
        assert_eq!(inbox.strangers(), 2);
        drop(waiter);
        assert_eq!(inbox.waiting(), 0);
        assert_eq!(inbox.arrival("sms-canary x abcdefghjk", arrival()), 0);
        assert_eq!(
            inbox.strangers(),
            2,
            "an ended run's token is late, not a stranger"
        );
        assert_eq!(inbox.late(), 1);
    }

    #[tokio::test]
    async fn ended_runs_are_remembered_up_to_a_bound_oldest_forgotten_first() {
        let inbox = Inbox::new();
        let token = |i: usize| format!("t{i:09}");
        for i in 0..FINISHED_KEPT + 5 {
            drop(inbox.register(&token(i)));
        }
        assert_eq!(inbox.stats().finished, FINISHED_KEPT);
        inbox.arrival(&format!("x {}", token(0)), arrival());
        inbox.arrival(&format!("x {}", token(FINISHED_KEPT + 4)), arrival());
        let stats = inbox.stats();
        assert_eq!((stats.strangers, stats.late), (1, 1), "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watched_receiver_is_silent_past_its_limit_until_heard() {
        let inbox = Inbox::new();
        let limit = Duration::from_secs(600);
        assert_eq!(inbox.silence("phone"), None, "not watched");
        inbox.watch_receiver("phone", limit);
        inbox.heard_from("other", Instant::now());
        tokio::time::advance(limit).await;
        assert_eq!(inbox.silence("phone"), None, "at the limit, not over it");
        tokio::time::advance(Duration::from_secs(1)).await;
        let never = inbox.silence("phone").expect("silent since watched");
        assert_eq!(never.last_heard, None);
        assert_eq!(never.silent_for, limit + Duration::from_secs(1));
        assert!(
            never
                .describe("phone", None)
                .contains("in the 10m 1s it has been watched")
        );
        inbox.heard_from("phone", Instant::now());
        assert_eq!(inbox.silence("phone"), None);
        tokio::time::advance(Duration::from_secs(601)).await;
        let again = inbox.silence("phone").expect("silent again");
        assert!(again.last_heard.is_some());
        assert!(
            again.describe("phone", None).contains("for 10m 1s"),
            "{}",
            again.describe("phone", None)
        );
        // A reload watches it again: the limit changes, what was heard stays.
        inbox.watch_receiver("phone", Duration::from_secs(3600));
        assert_eq!(inbox.silence("phone"), None);
        assert!(inbox.last_heard("phone").is_some());
    }

    #[tokio::test]
    async fn receipts_go_to_the_named_run_only() {
        let inbox = Inbox::new();
        let mut w = inbox.register("abcdefghjk");
        let receipt = Receipt {
            at: Instant::now(),
            status: DeliveryStatus::parse("delivered"),
            error_code: None,
            explanation: None,
            message_id: None,
        };
        assert!(inbox.receipt("ABCDEFGHJK", receipt.clone()));
        assert!(!inbox.receipt("zzzzzzzzzz", receipt));
        assert!(
            matches!(w.try_recv(), Some(Event::Receipt(r)) if r.status == DeliveryStatus::Delivered)
        );
    }
}
