//! Receivers: where a probe sees its message arrive, and where delivery
//! receipts come in.
//!
//! [`inbox`] is the token index every receiver feeds; [`webhook`] is the HTTP
//! side every provider's callbacks under `/hooks/` share; [`poll`] runs the
//! providers' polling receivers for runs that wait.

pub mod inbox;
pub mod poll;
pub mod webhook;

pub use inbox::{Arrival, DeliveryStatus, Event, Inbox, InboxStats, Receipt, Waiter};
