//! Vonage (the SMS API): everything sms-canary knows about it, in one place.
//!
//! [`config`] (`kind = "vonage"`), [`gateway`] (submit, the `doctor` call,
//! the status and receipt code tables), [`signature`] (signed requests,
//! `sig`), [`webhooks`] (inbound messages and delivery receipts) and
//! [`mock`] (the mock carrier's Vonage, with its own copy of the wire format
//! and codes).

pub mod config;
pub mod gateway;
pub mod mock;
pub mod signature;
pub mod webhooks;
