//! TEMPORARY placeholder: `kind = "twilio-poll"` (being written).
