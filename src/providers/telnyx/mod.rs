//! Telnyx (Messaging API v2): everything sms-canary knows about it, in one place.
//!
//! [`config`] (`kind = "telnyx"`), [`gateway`] (submit, the `doctor`
//! balance, the error and receipt code tables), [`signature`] (Ed25519 over
//! `timestamp|body`), [`webhooks`] (message events and inbound messages)
//! and [`mock`] (the mock carrier's Telnyx, with its own key pair and its
//! own copy of the wire format and codes). Telnyx offers no listing of
//! inbound messages to poll: its receivers are webhooks.

pub mod config;
pub mod gateway;
pub mod mock;
pub mod signature;
pub mod webhooks;
