//! Twilio: everything sms-canary knows about it, in one place.
//!
//! [`config`] (`kind = "twilio"` and `kind = "twilio-poll"`), [`gateway`]
//! (submit, the `doctor` call, the error-code table), [`signature`]
//! (`X-Twilio-Signature`), [`webhooks`] (inbound messages and status
//! callbacks), [`poll`] (listing inbound messages) and [`mock`] (the mock
//! carrier's Twilio, with its own copy of the wire format and codes).

pub mod config;
pub mod gateway;
pub mod mock;
pub mod poll;
pub mod signature;
pub mod webhooks;
