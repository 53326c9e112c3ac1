//! Webhook signature checks: any URL, parameters, secret and signature are
//! answered without a panic, and a signature made for any input verifies,
//! while the same signature over a changed input does not.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sms_canary::providers::android::signature as android;
use sms_canary::providers::plivo::signature as plivo;
use sms_canary::providers::telnyx::signature::{self as telnyx, KeyPair};
use sms_canary::providers::twilio::signature::{
    sign as twilio_signature, verify as verify_twilio_signature,
};
use sms_canary::providers::vonage::signature::{
    SignatureMethod as VonageMethod, sign as vonage_signature, verify as verify_vonage_signature,
};
use sms_canary::signing::{body_signature, verify_body_signature};

#[derive(Arbitrary, Debug)]
struct Input {
    url: String,
    params: Vec<(String, String)>,
    secret: String,
    /// A signature as an attacker would send it.
    given: String,
    body: Vec<u8>,
    method: u8,
}

const METHODS: [VonageMethod; 5] = [
    VonageMethod::Md5hash,
    VonageMethod::Md5,
    VonageMethod::Sha1,
    VonageMethod::Sha256,
    VonageMethod::Sha512,
];

fuzz_target!(|input: Input| {
    let Input {
        url,
        params,
        secret,
        given,
        body,
        method,
    } = input;
    let method = METHODS[usize::from(method) % METHODS.len()];

    // Attacker-chosen signatures: any answer, but no panic.
    let _ = verify_twilio_signature(&url, &params, &secret, &given);
    let _ = verify_body_signature(&body, &secret, &given);
    let mut with_given = params.clone();
    with_given.push(("sig".to_string(), given.clone()));
    let _ = verify_vonage_signature(&with_given, &secret, method);
    let _ = given.parse::<VonageMethod>();

    // Twilio: what we sign verifies, in any parameter order, and not for another URL.
    let sig = twilio_signature(&url, &params, &secret);
    assert!(verify_twilio_signature(&url, &params, &secret, &sig));
    let mut reversed = params.clone();
    reversed.reverse();
    assert!(verify_twilio_signature(&url, &reversed, &secret, &sig));
    let other_url = format!("{url}x");
    assert!(!verify_twilio_signature(&other_url, &params, &secret, &sig));

    // Vonage: a `sig` computed over the other parameters verifies, in upper
    // case too, wherever it sits; changing a signed value breaks it.
    let unsigned: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != "sig").cloned().collect();
    let sig = vonage_signature(&unsigned, &secret, method);
    let mut signed = unsigned.clone();
    signed.insert(0, ("sig".to_string(), sig.to_uppercase()));
    assert!(verify_vonage_signature(&signed, &secret, method));
    if let Some(first) = signed.get_mut(1) {
        // A letter, not `&` or `=`: those are signed as `_`, so a value
        // changed only in them would rightly keep its signature.
        first.1.push('x');
        assert!(!verify_vonage_signature(&signed, &secret, method));
    }

    // Telnyx: attacker-chosen headers and keys get an answer, never a panic;
    // what a pair signs verifies with its public key at any time within the
    // tolerance, and not for another body or timestamp.
    let _ = telnyx::PublicKey::parse(&secret);
    let seed: [u8; 32] = std::array::from_fn(|i| secret.as_bytes().get(i).copied().unwrap_or(0));
    let pair = KeyPair::from_seed(seed);
    let key = pair.public_key();
    let now = 1_800_000_000;
    let _ = telnyx::verify(&key, Some(&url), Some(&given), &body, now);
    let signature = pair.sign(&now.to_string(), &body);
    assert_eq!(telnyx::verify(&key, Some(&now.to_string()), Some(&signature), &body, now + 300), Ok(()));
    let mut other_body = body.clone();
    other_body.push(b'x');
    assert!(telnyx::verify(&key, Some(&now.to_string()), Some(&signature), &other_body, now).is_err());
    let later = (now + 1).to_string();
    assert!(telnyx::verify(&key, Some(&later), Some(&signature), &body, now).is_err());

    // Plivo: any header is answered; what V3 signs verifies for that method,
    // URL and parameters, and not once a parameter changes. V2 covers the
    // URL without its query.
    if let Ok(parsed) = url::Url::parse(&url) {
        for is_get in [false, true] {
            let _ = plivo::verify_v3(&secret, is_get, &parsed, &params, &given, &given);
            let sig = plivo::sign_v3(&secret, is_get, &parsed, &params, "n");
            assert!(plivo::verify_v3(&secret, is_get, &parsed, &params, "n", &format!("x,{sig}")));
            if !is_get && let Some(first) = params.first() {
                let mut changed = params.clone();
                changed[0].1 = format!("{}x", first.1);
                assert!(!plivo::verify_v3(&secret, false, &parsed, &changed, "n", &sig));
            }
        }
        let _ = plivo::verify_v2(&secret, &parsed, &given, &given);
        let v2 = plivo::sign_v2(&secret, &parsed, "n");
        assert!(plivo::verify_v2(&secret, &parsed, "n", &v2));
    }

    // Android: any headers get an answer, never a panic; what the key signs
    // verifies within the tolerance, and not for another body or timestamp.
    let now = 1_800_000_000;
    let _ = android::verify(&secret, Some(&url), Some(&given), &body, now);
    let at = now.to_string();
    let sig = android::sign(&secret, &body, &at);
    assert_eq!(android::verify(&secret, Some(&at), Some(&sig), &body, now - 300), Ok(()));
    let mut other_body = body.clone();
    other_body.push(b'x');
    assert!(android::verify(&secret, Some(&at), Some(&sig), &other_body, now).is_err());
    let later = (now + 1).to_string();
    assert!(android::verify(&secret, Some(&later), Some(&sig), &body, now).is_err());

    // JSON body: the header verifies with or without its prefix, not for another body.
    let header = body_signature(&body, &secret);
    assert!(verify_body_signature(&body, &secret, &header));
    assert!(verify_body_signature(
        &body,
        &secret,
        header.trim_start_matches("sha256=")
    ));
    let mut changed = body.clone();
    changed.push(0);
    assert!(!verify_body_signature(&changed, &secret, &header));
});
