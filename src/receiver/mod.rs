//! Receivers: where a probe sees its message arrive, and where delivery
//! receipts come in.
//!
//! [`inbox`] is the token index every receiver feeds; [`webhook`] is the HTTP
//! side (provider callbacks under `/hooks/`, signatures checked); [`poll`] runs
//! the polling receivers ([`twilio_poll`], [`http_poll`]) for runs that wait.

pub mod http_poll;
pub mod inbox;
pub mod poll;
pub mod twilio_poll;
pub mod webhook;

pub use inbox::{Arrival, DeliveryStatus, Event, Inbox, InboxStats, Receipt, Waiter};
