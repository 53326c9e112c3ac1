//! Webhook signatures as the providers compute them.
//!
//! Used on both sides: the receiver verifies incoming callbacks, and the mock
//! carrier signs the callbacks it sends, so the mock is only as good as this
//! code is faithful to the providers' published algorithms.
//!
//! - Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 over URL + sorted params.
//! - Vonage (SMS API "signature secret"): a `sig` parameter, hex MD5 of the
//!   sorted `&key=value` pairs plus the secret (`md5hash`), or their HMAC.
//! - Generic JSON webhooks: hex HMAC-SHA256 of the raw body (`sha256=<hex>`).

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::Digest;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth_token, url + sorted key/value pairs)).
///
/// `url` is the full URL Twilio requested, query string included. Parameters
/// are the POSTed form fields, sorted by name (then value, for repeated names).
pub fn twilio_signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    let mac = twilio_mac(url, params, auth_token);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks an `X-Twilio-Signature` in constant time.
pub fn verify_twilio_signature(
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
    signature: &str,
) -> bool {
    let Ok(expected) = BASE64.decode(signature.trim()) else {
        return false;
    };
    twilio_mac(url, params, auth_token)
        .verify_slice(&expected)
        .is_ok()
}

fn twilio_mac(url: &str, params: &[(String, String)], auth_token: &str) -> HmacSha1 {
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

/// How a Vonage account signs: set in the Vonage dashboard next to the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VonageMethod {
    /// MD5 of the parameter string with the secret appended (Vonage's default).
    #[default]
    Md5hash,
    /// HMAC-MD5 keyed by the secret.
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl FromStr for VonageMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "md5hash" => VonageMethod::Md5hash,
            "md5" => VonageMethod::Md5,
            "sha1" => VonageMethod::Sha1,
            "sha256" => VonageMethod::Sha256,
            "sha512" => VonageMethod::Sha512,
            // The value is not quoted: a secret pasted one line too low
            // would otherwise be printed.
            _ => {
                return Err(
                    "unknown Vonage signature method: expected one of md5hash, md5, sha1, sha256, sha512"
                        .to_string(),
                );
            }
        })
    }
}

impl<'de> Deserialize<'de> for VonageMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The `sig` Vonage puts on signed requests: every parameter but `sig`, sorted
/// by name, written `&name=value` with `&` and `=` in values replaced by `_`.
pub fn vonage_signature(params: &[(String, String)], secret: &str, method: VonageMethod) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort();
    let mut text = String::new();
    for (k, v) in sorted {
        text.push('&');
        text.push_str(k);
        text.push('=');
        text.extend(
            v.chars()
                .map(|c| if c == '&' || c == '=' { '_' } else { c }),
        );
    }
    fn hmac_hex<M: Mac + KeyInit>(secret: &str, text: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <M as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
    match method {
        VonageMethod::Md5hash => {
            let mut md5 = Md5::new();
            md5.update(text.as_bytes());
            md5.update(secret.as_bytes());
            hex(&md5.finalize())
        }
        VonageMethod::Md5 => hmac_hex::<Hmac<Md5>>(secret, &text),
        VonageMethod::Sha1 => hmac_hex::<Hmac<Sha1>>(secret, &text),
        VonageMethod::Sha256 => hmac_hex::<Hmac<Sha256>>(secret, &text),
        VonageMethod::Sha512 => hmac_hex::<Hmac<Sha512>>(secret, &text),
    }
}

/// Checks a Vonage `sig` in constant time (hex compared case-insensitively).
pub fn verify_vonage_signature(
    params: &[(String, String)],
    secret: &str,
    method: VonageMethod,
) -> bool {
    let Some((_, given)) = params.iter().find(|(k, _)| k == "sig") else {
        return false;
    };
    let expected = vonage_signature(params, secret, method);
    let given = given.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

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

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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
        let sig = twilio_signature(url, &example_params(), "12345");
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_twilio_signature(
            url,
            &example_params(),
            "12345",
            &sig
        ));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let mut reversed = example_params();
        reversed.reverse();
        assert!(verify_twilio_signature(
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
        assert!(!verify_twilio_signature(
            url,
            &example_params(),
            "54321",
            good
        ));
        assert!(!verify_twilio_signature(
            "https://mycompany.com/myapp.php",
            &example_params(),
            "12345",
            good
        ));
        let mut tampered = example_params();
        tampered[2].1 = "9999".into();
        assert!(!verify_twilio_signature(url, &tampered, "12345", good));
        assert!(!verify_twilio_signature(
            url,
            &example_params(),
            "12345",
            "not base64!"
        ));
        assert!(!verify_twilio_signature(
            url,
            &example_params(),
            "12345",
            ""
        ));
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Computed independently: md5("&a=1&b=x_y_z" + "secret").
    #[test]
    fn vonage_md5hash_sorts_and_escapes() {
        let params = pairs(&[("b", "x&y=z"), ("a", "1")]);
        let sig = vonage_signature(&params, "secret", VonageMethod::Md5hash);
        let mut reference = Md5::new();
        reference.update(b"&a=1&b=x_y_zsecret");
        assert_eq!(sig, hex(&reference.finalize()));
        assert_eq!(sig.len(), 32);
    }

    #[test]
    fn vonage_signatures_verify_and_refuse_tampering() {
        for method in [
            VonageMethod::Md5hash,
            VonageMethod::Md5,
            VonageMethod::Sha1,
            VonageMethod::Sha256,
            VonageMethod::Sha512,
        ] {
            let mut params = pairs(&[
                ("msisdn", "447700900001"),
                ("to", "447700900000"),
                ("text", "hi & bye"),
                ("timestamp", "1700000000"),
            ]);
            let sig = vonage_signature(&params, "s3cret", method);
            params.push(("sig".into(), sig.to_uppercase()));
            assert!(
                verify_vonage_signature(&params, "s3cret", method),
                "{method:?}"
            );
            assert!(
                !verify_vonage_signature(&params, "other", method),
                "{method:?}"
            );
            params[2].1 = "hi & hello".into();
            assert!(
                !verify_vonage_signature(&params, "s3cret", method),
                "{method:?}"
            );
        }
        assert!(
            !verify_vonage_signature(&pairs(&[("a", "1")]), "s3cret", VonageMethod::Md5hash),
            "unsigned"
        );
    }

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
