//! Telnyx's webhook signatures: Ed25519 over `{telnyx-timestamp}|{raw body}`,
//! the signature base64 in `telnyx-signature-ed25519`, checked against the
//! account's public key (base64, 32 bytes) and refused when the timestamp is
//! more than five minutes from now (a replay).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// How far a signed request's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// An account's public key: what checks its webhooks.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads a base64 public key as Telnyx's portal shows it.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| "public_key must be base64 (as Telnyx's portal shows it)".to_string())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "public_key must be 32 bytes once decoded (an Ed25519 public key), not {}",
                b.len()
            )
        })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| "public_key is not an Ed25519 public key".to_string())
    }

    /// Base64, as Telnyx's portal shows it.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PublicKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

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

/// Checks a request's signature headers over `body`, at `now` (Unix seconds).
pub fn verify(
    key: &PublicKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Malformed);
    };
    let at: i64 = timestamp.trim().parse().map_err(|_| Refused::Malformed)?;
    if now.abs_diff(at) > TOLERANCE_SECS as u64 {
        return Err(Refused::Stale);
    }
    let bytes = BASE64
        .decode(signature.trim())
        .map_err(|_| Refused::Malformed)?;
    let signature = Signature::from_slice(&bytes).map_err(|_| Refused::Malformed)?;
    // `verify_strict` refuses the malleable and small-order forms a plain
    // verify lets through.
    key.0
        .verify_strict(&signed_text(timestamp, body), &signature)
        .map_err(|_| Refused::Forged)
}

/// What is signed: the timestamp header as sent, `|`, the raw body.
fn signed_text(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut text = Vec::with_capacity(timestamp.len() + 1 + body.len());
    text.extend_from_slice(timestamp.as_bytes());
    text.push(b'|');
    text.extend_from_slice(body);
    text
}

/// A key pair that signs as Telnyx does (the mock carrier's).
#[derive(Clone)]
pub struct KeyPair(SigningKey);

impl KeyPair {
    /// The pair whose secret is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair(SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The `telnyx-signature-ed25519` header for `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        BASE64.encode(self.0.sign(&signed_text(timestamp, body)).to_bytes())
    }
}

/// Never the secret.
impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair(public {})", self.public_key().to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, section 7.1, test 1: the seed, its public key and the
    /// signature of the empty message.
    #[test]
    fn rfc_8032_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .unwrap();
        let pair = KeyPair::from_seed(seed);
        assert_eq!(
            pair.public_key().0.to_bytes().to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let signature = pair.0.sign(b"");
        assert_eq!(
            signature.to_bytes().to_vec(),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
    }

    #[test]
    fn signed_requests_verify_and_everything_else_is_refused() {
        let pair = KeyPair::from_seed([7; 32]);
        let key = pair.public_key();
        let body = br#"{"data":{"event_type":"message.received"}}"#;
        let now = 1_800_000_000;
        let ts = now.to_string();
        let sig = pair.sign(&ts, body);
        assert_eq!(verify(&key, Some(&ts), Some(&sig), body, now), Ok(()));
        assert_eq!(verify(&key, Some(&ts), Some(&sig), body, now + 300), Ok(()));
        assert_eq!(
            verify(&key, Some(&ts), Some(&sig), body, now + 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(&key, Some(&ts), Some(&sig), b"{}", now),
            Err(Refused::Forged)
        );
        let later = (now + 1).to_string();
        assert_eq!(
            verify(&key, Some(&later), Some(&sig), body, now),
            Err(Refused::Forged)
        );
        let other = KeyPair::from_seed([8; 32]).public_key();
        assert_eq!(
            verify(&other, Some(&ts), Some(&sig), body, now),
            Err(Refused::Forged)
        );
        for (t, s) in [
            (None, Some(sig.as_str())),
            (Some(ts.as_str()), None),
            (Some("soon"), Some(sig.as_str())),
            (Some(ts.as_str()), Some("not base64!")),
            (Some(ts.as_str()), Some("AAAA")),
        ] {
            assert_eq!(verify(&key, t, s, body, now), Err(Refused::Malformed));
        }
    }

    #[test]
    fn public_keys_parse_from_base64_only() {
        let key = KeyPair::from_seed([7; 32]).public_key();
        assert_eq!(PublicKey::parse(&key.to_base64()).unwrap(), key);
        assert!(PublicKey::parse("not base64").is_err());
        assert!(PublicKey::parse("AAAA").unwrap_err().contains("32 bytes"));
        assert!(format!("{:?}", KeyPair::from_seed([7; 32])).contains(&key.to_base64()));
    }
}
