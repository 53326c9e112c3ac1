//! The app's webhook signature: `X-Signature` is the hex HMAC-SHA256, keyed
//! by the signing key set in the app, of the raw body followed by the
//! `X-Timestamp` header's value (Unix seconds); a timestamp more than five
//! minutes from now is refused as a replay.

use crate::signing::{body_signature, verify_body_signature};

/// How far a signed request's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A header is missing or not what it must be.
    Malformed,
    /// The timestamp is more than [`TOLERANCE_SECS`] from now.
    Stale,
    /// The signature does not verify.
    Forged,
}

/// What is signed: the raw body, then the timestamp as sent.
fn signed_text(body: &[u8], timestamp: &str) -> Vec<u8> {
    let mut text = Vec::with_capacity(body.len() + timestamp.len());
    text.extend_from_slice(body);
    text.extend_from_slice(timestamp.as_bytes());
    text
}

/// The `X-Signature` header for `body` sent at `timestamp`.
pub fn sign(key: &str, body: &[u8], timestamp: &str) -> String {
    let signed = body_signature(&signed_text(body, timestamp), key);
    signed["sha256=".len()..].to_string()
}

/// Checks a request's signature headers over `body`, at `now` (Unix seconds).
pub fn verify(
    key: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Malformed);
    };
    let at: i64 = timestamp.trim().parse().map_err(|_| Refused::Malformed)?;
    let signature = signature.trim();
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refused::Malformed);
    }
    if now.abs_diff(at) > TOLERANCE_SECS as u64 {
        return Err(Refused::Stale);
    }
    if verify_body_signature(&signed_text(body, timestamp), key, signature) {
        Ok(())
    } else {
        Err(Refused::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_of_body_then_timestamp() {
        // RFC 4231 test case 2, split into a body and a "timestamp".
        assert_eq!(
            sign("Jefe", b"what do ya want ", "for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signed_requests_verify_and_everything_else_is_refused() {
        let body = br#"{"event":"sms:received"}"#;
        let now = 1_800_000_000;
        let ts = now.to_string();
        let sig = sign("key", body, &ts);
        assert_eq!(verify("key", Some(&ts), Some(&sig), body, now), Ok(()));
        let upper = sig.to_uppercase();
        assert_eq!(verify("key", Some(&ts), Some(&upper), body, now), Ok(()));
        assert_eq!(
            verify("key", Some(&ts), Some(&sig), body, now - 300),
            Ok(())
        );
        assert_eq!(
            verify("key", Some(&ts), Some(&sig), body, now + 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify("key", Some(&ts), Some(&sig), b"{}", now),
            Err(Refused::Forged)
        );
        assert_eq!(
            verify("other", Some(&ts), Some(&sig), body, now),
            Err(Refused::Forged)
        );
        let later = (now + 1).to_string();
        assert_eq!(
            verify("key", Some(&later), Some(&sig), body, now),
            Err(Refused::Forged)
        );
        for (t, s) in [
            (None, Some(sig.as_str())),
            (Some(ts.as_str()), None),
            (Some("soon"), Some(sig.as_str())),
            (Some(ts.as_str()), Some("zz")),
            (Some(ts.as_str()), Some(&sig[1..])),
        ] {
            assert_eq!(verify("key", t, s, body, now), Err(Refused::Malformed));
        }
    }
}
