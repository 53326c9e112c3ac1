//! The generic webhook signature: hex HMAC-SHA256 of the raw body, sent as
//! `sha256=<hex>`. Your own system signs the JSON inbound route with it,
//! and the webhook alert channel signs its notifications with it. Each
//! provider's own scheme lives with the provider (`crate::providers`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::net::hex;

/// `sha256=<hex HMAC-SHA256 of body>`, the generic JSON webhook signature.
pub fn body_signature(body: &[u8], secret: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a body signature in constant time; the `sha256=` prefix is optional.
pub fn verify_body_signature(body: &[u8], secret: &str, header: &str) -> bool {
    let given = header.trim();
    let given = given
        .strip_prefix("sha256=")
        .unwrap_or(given)
        .to_ascii_lowercase();
    let expected = body_signature(body, secret);
    let expected = &expected["sha256=".len()..];
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = body_signature(b"what do ya want for nothing?", "Jefe");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_body_signature(
            b"what do ya want for nothing?",
            "Jefe",
            &sig
        ));
        assert!(verify_body_signature(
            b"what do ya want for nothing?",
            "Jefe",
            &sig[7..].to_uppercase()
        ));
        assert!(!verify_body_signature(
            b"what do ya want for something?",
            "Jefe",
            &sig
        ));
        assert!(!verify_body_signature(b"x", "Jefe", "sha256=zz"));
    }
}
