//! SMPP 3.4: the carrier-facing leg, probed directly.
//!
//! [`pdu`] (the PDUs sms-canary speaks, encoded and decoded with bounded
//! memory and clear errors).

pub mod pdu;
