//! SMS Gateway for Android (the capcom6/android-sms-gateway app): a phone
//! as a gateway and as a receiver, everything sms-canary knows about it in
//! one place.
//!
//! [`config`] (`kind = "android"` for a gateway and for a receiver),
//! [`gateway`] (submit through the app's API, on the phone's local server or
//! the cloud relay, with Basic auth), [`signature`] (hex HMAC-SHA256 over
//! the raw body followed by `X-Timestamp`), [`webhooks`] (`sms:received`,
//! `system:ping`, and `sms:sent` / `sms:delivered` / `sms:failed` as
//! receipts) and [`mock`] (the mock carrier's app, with its own copy of the
//! wire format). The app has no per-message callback URL: its webhooks are
//! registered once per event (`POST /webhooks`), so receipts find their run
//! by the message id we choose at submit.

pub mod config;
pub mod gateway;
pub mod mock;
pub mod signature;
pub mod webhooks;
