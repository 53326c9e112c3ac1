//! Your own SMS API: everything sms-canary knows about it, in one place.
//!
//! [`config`] (`kind = "http"` and `kind = "http-poll"`), [`gateway`] (a
//! submit described by templates and rules), [`poll`] (listing inbound
//! messages by JSONPath) and [`webhooks`] (the signed JSON inbound route).

pub mod config;
pub mod gateway;
pub mod poll;
pub mod webhooks;
