//! `X-Twilio-Signature`: base64 HMAC-SHA1, keyed by the auth token, over
//! the full URL Twilio requested followed by the POSTed parameters sorted by
//! name. Verified in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth_token, url + sorted key/value pairs)).
///
/// `url` is the full URL Twilio requested, query string included. Parameters
/// are the POSTed form fields, sorted by name (then value, for repeated names).
pub fn sign(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    let mac = mac(url, params, auth_token);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks an `X-Twilio-Signature` in constant time.
pub fn verify(url: &str, params: &[(String, String)], auth_token: &str, signature: &str) -> bool {
    let Ok(expected) = BASE64.decode(signature.trim()) else {
        return false;
    };
    mac(url, params, auth_token).verify_slice(&expected).is_ok()
}

fn mac(url: &str, params: &[(String, String)], auth_token: &str) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Twilio's published example in its security documentation.
    #[test]
    fn twilio_published_example_verifies() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = sign(url, &example_params(), "12345");
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify(url, &example_params(), "12345", &sig));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let mut reversed = example_params();
        reversed.reverse();
        assert!(verify(
            url,
            &reversed,
            "12345",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn wrong_token_url_param_or_garbage_is_refused() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(!verify(url, &example_params(), "54321", good));
        assert!(!verify(
            "https://mycompany.com/myapp.php",
            &example_params(),
            "12345",
            good
        ));
        let mut tampered = example_params();
        tampered[2].1 = "9999".into();
        assert!(!verify(url, &tampered, "12345", good));
        assert!(!verify(url, &example_params(), "12345", "not base64!"));
        assert!(!verify(url, &example_params(), "12345", ""));
    }
}
