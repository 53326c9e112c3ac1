//! Keeping secrets and phone numbers out of logs, output and alerts.
//!
//! `Secret` wraps a credential so that `Debug` and `Display` print `***`; the
//! only way to the value is `expose()`, which makes every use greppable.
//! `mask_number` hides all but the last three digits of a phone number.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A credential (auth token, API secret, signing key) that never prints.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value, for signing and authenticating requests only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Masks a phone number for logs and alerts: `+15005550100` → `+********100`.
///
/// The leading `+` and the last three digits stay, so an operator can still
/// tell two probes' numbers apart without the log leaking the number.
pub fn mask_number(number: &str) -> String {
    let digits = number.chars().filter(|c| c.is_ascii_digit()).count();
    let keep = 3.min(digits);
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen > digits - keep { c } else { '*' }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn masks_all_but_last_three_digits() {
        assert_eq!(mask_number("+15005550100"), "+********100");
        assert_eq!(mask_number("12"), "12");
        assert_eq!(mask_number(""), "");
    }
}
