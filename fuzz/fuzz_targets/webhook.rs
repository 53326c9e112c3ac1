//! The webhook routes, driven through the real router with any request:
//! Twilio inbound and status callbacks, Vonage inbound and receipts (query,
//! form or JSON), Telnyx events (Ed25519-signed JSON), Plivo callbacks
//! (form or query, signature V3), SMS Gateway for Android events and
//! receipts (HMAC-SHA256 over body and timestamp, each event id taken
//! once), and the generic JSON route. No request makes a route panic
//! or answer 5xx, a request the harness signed correctly is never refused
//! as badly signed, and one whose `Content-Length` declares more than the
//! limit (or cannot be read) is refused with 413, on any path.
//!
//! Input: an HTTP/1-like request: `METHOD /path?query`, header lines, a blank
//! line, the body. The pseudo-header `X-Fuzz-Sign: 1` asks the harness to sign
//! the request the way the provider would (a fresh Vonage `timestamp` and
//! `sig` are then written into the query or form; Telnyx's, Plivo's and the
//! Android app's headers are set).

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use libfuzzer_sys::fuzz_target;
use sms_canary::config::Config;
use sms_canary::receiver::Inbox;
use sms_canary::receiver::webhook::{BODY_LIMIT, Hooks, router};
use sms_canary::providers::android::signature::sign as android_signature;
use sms_canary::providers::plivo::signature::sign_v3 as plivo_signature;
use sms_canary::providers::telnyx::signature::KeyPair;
use sms_canary::providers::twilio::signature::sign as twilio_signature;
use sms_canary::providers::vonage::signature::{
    SignatureMethod as VonageMethod, sign as vonage_signature,
};
use sms_canary::signing::body_signature;
use tower::ServiceExt;
use url::Url;

const PUBLIC_URL: &str = "https://canary.example.com/sms";
const TWILIO_TOKEN: &str = "fuzz-twilio-token";
const VONAGE_SECRET: &str = "fuzz-vonage-signature-secret";
const JSON_SECRET: &str = "fuzz-json-secret";
const PLIVO_TOKEN: &str = "fuzz-plivo-token";
const ANDROID_KEY: &str = "fuzz-android-signing-key";
/// A run token the harness waits for, so that matching paths run too.
const RUN_TOKEN: &str = "fuzztoken1";

/// The seed of the Telnyx account's key pair; its public key is in `CONFIG`.
const TELNYX_SEED: [u8; 32] = [5; 32];

const CONFIG: &str = r#"
[canary]
probes = []

[gateways.tx]
kind = "telnyx"
api_key = "key"
public_key = "TELNYX_PUBLIC_KEY"

[receivers.txin]
kind = "webhook"
gateway = "tx"

[gateways.pl]
kind = "plivo"
auth_id = "MAFUZZFUZZFUZZFUZZ00"
auth_token = "fuzz-plivo-token"

[receivers.plin]
kind = "webhook"
gateway = "pl"

[gateways.an]
kind = "android"
username = "sms"
password = "fuzz-android-password"
signing_key = "fuzz-android-signing-key"

[receivers.ain]
kind = "android"
signing_key = "fuzz-android-signing-key"

[gateways.tw]
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "fuzz-twilio-token"

[gateways.vs]
kind = "vonage"
api_key = "key"
api_secret = "secret"
signature_secret = "fuzz-vonage-signature-secret"
signature_method = "sha256"

[gateways.vo]
kind = "vonage"
api_key = "key"
api_secret = "secret"

[receivers.tin]
kind = "webhook"
gateway = "tw"

[receivers.vin]
kind = "webhook"
gateway = "vs"

[receivers.vino]
kind = "webhook"
gateway = "vo"

[receivers.json]
kind = "webhook"
gateway = "tw"
json_secret = "fuzz-json-secret"
json_signature_header = "X-Signature-256"

[receivers.open]
kind = "webhook"
verify_signatures = false
"#;

struct World {
    runtime: tokio::runtime::Runtime,
    inbox: Arc<Inbox>,
    router: axum::Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sms-canary.toml");
        let public = KeyPair::from_seed(TELNYX_SEED).public_key().to_base64();
        std::fs::write(&path, CONFIG.replace("TELNYX_PUBLIC_KEY", &public)).expect("write config");
        let config = Config::load_with_env(&path, &|_| None).expect("fuzz config loads");
        let inbox = Inbox::new();
        let hooks = Hooks::new(&config, Arc::clone(&inbox), Url::parse(PUBLIC_URL).unwrap());
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            inbox,
            router: router(hooks),
        }
    })
}

/// Which key signs requests to this path, as far as the harness knows.
#[derive(Clone, Copy, PartialEq)]
enum Signer {
    Twilio,
    Vonage,
    Telnyx,
    Plivo,
    Android,
    Json,
    None,
}

fn signer(path: &str) -> Signer {
    match path {
        "/hooks/twilio/inbound/tin" | "/hooks/twilio/status/tw" => Signer::Twilio,
        "/hooks/vonage/inbound/vin" | "/hooks/vonage/receipt/vs" => Signer::Vonage,
        "/hooks/telnyx/inbound/txin" | "/hooks/telnyx/status/tx" => Signer::Telnyx,
        "/hooks/plivo/inbound/plin" | "/hooks/plivo/status/pl" => Signer::Plivo,
        "/hooks/android/ain" | "/hooks/android/receipt/an" => Signer::Android,
        "/hooks/json/json" => Signer::Json,
        _ => Signer::None,
    }
}

/// `pairs` without `sig` and `timestamp`, plus a fresh timestamp and the `sig`.
/// In a query, `run` is ours, not Vonage's, so it is not signed; in a body it
/// is Vonage's like every other field.
fn vonage_sign(pairs: Vec<(String, String)>, in_query: bool) -> String {
    let mut pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != "sig" && k != "timestamp")
        .collect();
    pairs.push((
        "timestamp".to_string(),
        chrono::Utc::now().timestamp().to_string(),
    ));
    let signed: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !in_query || k != "run")
        .cloned()
        .collect();
    pairs.push((
        "sig".to_string(),
        vonage_signature(&signed, VONAGE_SECRET, VonageMethod::Sha256),
    ));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish()
}

fn parse_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(mut uri) = target.parse::<Uri>() else {
        return;
    };
    if uri.scheme().is_some() || !target.starts_with('/') {
        return;
    }
    let mut headers = Vec::new();
    let mut sign = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-fuzz-sign") {
            sign = true;
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.push((name, value));
        }
    }
    let mut body = body.to_vec();

    let signer = if sign {
        signer(uri.path())
    } else {
        Signer::None
    };
    // Whether the harness could sign this request: a body that is not
    // UTF-8 cannot be signed as a form, so nothing is asserted about it.
    let signed = match signer {
        Signer::Twilio => {
            if std::str::from_utf8(&body).is_ok() {
                // What goes on the wire: a fragment in `target` is not sent.
                let sent = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
                let url = format!("{PUBLIC_URL}{sent}");
                let sig = twilio_signature(&url, &parse_pairs(&body), TWILIO_TOKEN);
                headers.retain(|(n, _)| n != "x-twilio-signature");
                headers.push((
                    HeaderName::from_static("x-twilio-signature"),
                    HeaderValue::from_str(&sig).expect("base64 is a header value"),
                ));
                true
            } else {
                false
            }
        }
        Signer::Vonage => {
            if method == Method::GET {
                let query = vonage_sign(parse_pairs(uri.query().unwrap_or("").as_bytes()), true);
                let Ok(signed) = format!("{}?{query}", uri.path()).parse::<Uri>() else {
                    return;
                };
                uri = signed;
                true
            } else if std::str::from_utf8(&body).is_ok() {
                // Signed as a form: JSON bodies are fuzzed, unsigned, on `vo`.
                body = vonage_sign(parse_pairs(&body), false).into_bytes();
                headers.retain(|(n, _)| n != header::CONTENT_TYPE);
                headers.push((
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                ));
                true
            } else {
                false
            }
        }
        Signer::Telnyx => {
            let at = chrono::Utc::now().timestamp().to_string();
            let sig = KeyPair::from_seed(TELNYX_SEED).sign(&at, &body);
            headers.retain(|(n, _)| n != "telnyx-timestamp" && n != "telnyx-signature-ed25519");
            headers.push((
                HeaderName::from_static("telnyx-timestamp"),
                HeaderValue::from_str(&at).expect("digits are a header value"),
            ));
            headers.push((
                HeaderName::from_static("telnyx-signature-ed25519"),
                HeaderValue::from_str(&sig).expect("base64 is a header value"),
            ));
            true
        }
        Signer::Plivo => {
            // What goes on the wire: a fragment in `target` is not sent.
            let sent = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
            let is_get = method == Method::GET;
            // A GET is signed over its URL alone: its body, readable or
            // not, is not part of the callback.
            if let Ok(url) = Url::parse(&format!("{PUBLIC_URL}{sent}"))
                && (is_get || std::str::from_utf8(&body).is_ok())
            {
                let posted = if is_get { Vec::new() } else { parse_pairs(&body) };
                let nonce = "12345678901234567890";
                let sig = plivo_signature(PLIVO_TOKEN, is_get, &url, &posted, nonce);
                headers.retain(|(n, _)| !n.as_str().starts_with("x-plivo-signature"));
                headers.push((
                    HeaderName::from_static("x-plivo-signature-v3"),
                    HeaderValue::from_str(&sig).expect("base64 is a header value"),
                ));
                headers.push((
                    HeaderName::from_static("x-plivo-signature-v3-nonce"),
                    HeaderValue::from_static(nonce),
                ));
                if !is_get {
                    headers.retain(|(n, _)| n != header::CONTENT_TYPE);
                    headers.push((
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    ));
                }
                true
            } else {
                false
            }
        }
        Signer::Android => {
            let at = chrono::Utc::now().timestamp().to_string();
            let sig = android_signature(ANDROID_KEY, &body, &at);
            headers.retain(|(n, _)| n != "x-timestamp" && n != "x-signature");
            headers.push((
                HeaderName::from_static("x-timestamp"),
                HeaderValue::from_str(&at).expect("digits are a header value"),
            ));
            headers.push((
                HeaderName::from_static("x-signature"),
                HeaderValue::from_str(&sig).expect("hex is a header value"),
            ));
            true
        }
        Signer::Json => {
            let sig = body_signature(&body, JSON_SECRET);
            headers.retain(|(n, _)| n != "x-signature-256");
            headers.push((
                HeaderName::from_static("x-signature-256"),
                HeaderValue::from_str(&sig).expect("hex is a header value"),
            ));
            true
        }
        Signer::None => false,
    };

    // What the body limit goes by: the first Content-Length, unreadable = too large.
    let declared = headers
        .iter()
        .find(|(name, _)| name == header::CONTENT_LENGTH)
        .map(|(_, value)| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });

    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };

    let world = world();
    let mut waiter = world.inbox.register(RUN_TOKEN);
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .expect("the router is infallible");
    while waiter.try_recv().is_some() {}
    drop(waiter);

    let status = response.status();
    assert!(!status.is_server_error(), "a webhook answered {status}");
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        assert_eq!(status.as_u16(), 413, "a declared {declared:?} bytes was not refused");
        return;
    }
    if signed {
        assert_ne!(
            status.as_u16(),
            403,
            "a correctly signed request was refused"
        );
    }
});
