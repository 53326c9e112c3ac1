//! Receivers: where a probe sees its message arrive, and where delivery
//! receipts come in.
//!
//! [`inbox`] is the token index every receiver feeds; [`webhook`] is the HTTP
//! side (provider callbacks under `/hooks/`, signatures checked).

pub mod inbox;
pub mod webhook;

pub use inbox::{Arrival, DeliveryStatus, Event, Inbox, Receipt, Waiter};
