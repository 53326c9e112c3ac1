//! TEMPORARY placeholder: `kind = "vonage"` (being written).
