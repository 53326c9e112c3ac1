//! SMPP 3.4: the carrier-facing leg, probed directly.
//!
//! [`config`] (`kind = "smpp"` gateway and receiver), [`pdu`] (the PDUs
//! sms-canary speaks, encoded and decoded with bounded memory and clear
//! errors), [`status`] (command_status names, words and classes),
//! [`encoding`] (GSM-7 or UCS-2 by content, concatenation), [`session`]
//! (one transceiver bind kept up and shared), [`gateway`] (submit, receipts
//! and inbound messages over the bind, `doctor`'s bind and unbind) and
//! [`mock`] (the mock carrier as an SMSC). Receipts and inbound messages
//! come over the bind itself: SMPP has no webhooks.

pub mod config;
pub mod encoding;
pub mod gateway;
pub mod mock;
pub mod pdu;
pub mod session;
pub mod status;
