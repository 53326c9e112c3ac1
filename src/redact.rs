//! Keeping secrets and phone numbers out of logs, output and alerts.
//!
//! `Secret` wraps a credential so that `Debug` and `Display` print `***`; the
//! only way to the value is `expose()`, which makes every use greppable.
//! `mask_number` hides all but the last three digits of a phone number, and
//! `mask_numbers_in` does so for every number inside free text (a provider's
//! error message). `redact_url` is how a URL may appear in an error or in
//! output: its userinfo and query values replaced by `***`.

use std::borrow::Cow;
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

/// What a config error says about an empty secret; `{field}` is replaced by
/// the key's path where the error is reported (see `config`).
pub const EMPTY_SECRET: &str =
    "`{field}` is empty: a secret needs a value (is its variable set to \"\"?)";

/// An empty or blank secret is refused while the config is read: a
/// `${TOKEN}` set to "" must not become a token anyone can match.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.trim().is_empty() {
            return Err(serde::de::Error::custom(EMPTY_SECRET));
        }
        Ok(Secret(value))
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

/// Masks every phone number inside `text`: a `+` and 7 to 15 digits (spaces,
/// dots, dashes or brackets between them allowed), or a bare run of 8 to 15
/// digits that is not part of a longer word. Provider error messages quote
/// the number they refused ("… is not a valid mobile number: +15005550166");
/// this is how such text is stored, logged and alerted.
pub fn mask_numbers_in(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let plus = bytes[i] == b'+';
        if !starts_word || !(plus || bytes[i].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let end = number_end(bytes, i, plus);
        match end {
            Some(end) => {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[copied..i]);
                out.push_str(&mask_number(&text[i..end]));
                copied = end;
                i = end;
            }
            None => {
                // Skip the whole run, so its tail is not taken for a number.
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
            }
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Where the phone number starting at `start` ends, if one does.
fn number_end(bytes: &[u8], start: usize, plus: bool) -> Option<usize> {
    let mut i = start + usize::from(plus);
    let mut digits = 0;
    let mut separated = false;
    let mut end = i;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            digits += 1;
            i += 1;
            end = i;
        } else if plus && is_separator(b) {
            // Up to two separators (`) `, ` (`) may stand between digits.
            let gap = bytes[i..]
                .iter()
                .take(3)
                .take_while(|b| is_separator(**b))
                .count();
            if gap > 2 || !bytes.get(i + gap).is_some_and(u8::is_ascii_digit) {
                break;
            }
            separated = true;
            i += gap;
        } else {
            break;
        }
    }
    let glued = bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric());
    let enough = if plus {
        (7..=15).contains(&digits)
    } else {
        !separated && (8..=15).contains(&digits)
    };
    (enough && !glued).then_some(end)
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

/// A URL as it may appear in an error message or output: `user:password@`
/// becomes `***@` and every query value `***`. Works on text that does not parse as
/// a URL too (a malformed URL is what errors are about), by its shape.
pub fn redact_url(url: &str) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (head, query) = match head.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (head, None),
    };
    // The authority follows `//` (`scheme://`, or a scheme-relative `//`);
    // without one, text before an `@` ahead of the first `/` may be userinfo.
    let authority_start = head.find("//").map_or(0, |at| at + 2);
    let rest = &head[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let mut out = match rest[..authority_end].rfind('@') {
        Some(user_end) => format!("{}***@{}", &head[..authority_start], &rest[user_end + 1..]),
        None => head.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push_str("#***");
    }
    out
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

    #[test]
    fn masks_numbers_inside_free_text() {
        assert_eq!(
            mask_numbers_in("'To' number +15005550166 is not a valid mobile number"),
            "'To' number +********166 is not a valid mobile number"
        );
        assert_eq!(
            mask_numbers_in("is not a valid mobile number: +15005550166"),
            "is not a valid mobile number: +********166"
        );
        assert_eq!(
            mask_numbers_in("Invalid to: 447700900123."),
            "Invalid to: *********123."
        );
        assert_eq!(
            mask_numbers_in("call +1 (500) 555-0166 now"),
            "call +* (***) ***-*166 now"
        );
        // Codes, statuses, ids and short numbers stay readable.
        for kept in [
            "error 21614 (HTTP 400)",
            "message SM0123456789abcdef0123456789abcdef",
            "queued at 2026-11-27",
            "id a1234567890",
            "+12 is short",
        ] {
            assert_eq!(mask_numbers_in(kept), kept);
        }
    }

    #[test]
    fn urls_in_errors_lose_userinfo_and_query_values() {
        assert_eq!(
            redact_url("http://user:PASSWORD@[::1/hook?token=TOKEN&x=1#frag"),
            "http://***@[::1/hook?token=***&x=***#***"
        );
        assert_eq!(
            redact_url("smtps://user:pw@smtp.example.com"),
            "smtps://***@smtp.example.com"
        );
        assert_eq!(redact_url("user:pw@host/x"), "***@host/x");
        assert_eq!(redact_url("//u:pw@host/?t=1"), "//***@host/?t=***");
        assert_eq!(
            redact_url("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("http://x/?SECRET"), "http://x/?***");
    }

    #[test]
    fn blank_secrets_are_refused() {
        for blank in ["\"\"", "\"   \""] {
            let e = toml::from_str::<std::collections::BTreeMap<String, Secret>>(&format!(
                "token = {blank}"
            ))
            .unwrap_err();
            assert!(e.to_string().contains("is empty"), "{e}");
        }
    }
}
