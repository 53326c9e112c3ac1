//! Plivo (the Message API): everything sms-canary knows about it, in one place.
//!
//! [`config`] (`kind = "plivo"`), [`gateway`] (submit, the `doctor` account
//! fetch, the receipt code table), [`signature`] (V3 and V2, HMAC-SHA256
//! with the Auth Token), [`webhooks`] (status callbacks and inbound
//! messages) and [`mock`] (the mock carrier's Plivo, with its own copy of the
//! wire format and codes). Plivo's message listing carries no text, so a
//! poll could not find a run's token: its receivers are webhooks.

pub mod config;
pub mod gateway;
pub mod mock;
pub mod signature;
pub mod webhooks;
