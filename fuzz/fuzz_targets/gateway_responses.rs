//! Provider answers to a submit: Twilio's, Vonage's, Telnyx's, Plivo's and
//! the Android app's
//! JSON (success and error bodies), the HTTP gateway's response rules
//! (JSONPath, `equals`) and the Retry-After header. Any answer is classified
//! without a panic, and an accepted message always has an id.
//!
//! Input: a first line `PROVIDER STATUS [RETRY-AFTER]` (provider `twilio`,
//! `vonage`, `telnyx`, `plivo`, `android` or `http`); for `http`, the gateway's TOML then `\n---\n`; then
//! the response body.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use axum::http::{HeaderMap, HeaderValue, header::RETRY_AFTER};
use libfuzzer_sys::fuzz_target;
use sms_canary::config::HttpGatewayConfig;
use sms_canary::gateway::{Accepted, SubmitError};
use sms_canary::net::retry_after;
use sms_canary::providers::http::gateway::HttpGateway;
use sms_canary::providers::android::gateway as android;
use sms_canary::providers::plivo::gateway as plivo;
use sms_canary::providers::telnyx::gateway as telnyx;
use sms_canary::providers::twilio::gateway as twilio;
use sms_canary::providers::vonage::gateway as vonage;

fn split_once<'a>(data: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = data.windows(separator.len()).position(|w| w == separator)?;
    Some((&data[..at], &data[at + separator.len()..]))
}

fn check(result: Result<Accepted, SubmitError>) {
    match result {
        Ok(accepted) => assert!(!accepted.message_id.is_empty(), "accepted without an id"),
        Err(e) => {
            assert!(!e.reason.is_empty(), "an error says why");
            let _ = e.to_string();
        }
    }
}

/// The HttpGateway a config text builds, if any. Building one makes an HTTP client
/// (about a millisecond), and most mutations change only the body, so built
/// ones are kept, a bounded number of them.
fn built(config: &[u8]) -> Option<Rc<HttpGateway>> {
    thread_local! {
        static BUILT: RefCell<HashMap<Vec<u8>, Option<Rc<HttpGateway>>>> = RefCell::new(HashMap::new());
    }
    BUILT.with_borrow_mut(|built| {
        if let Some(found) = built.get(config) {
            return found.clone();
        }
        if built.len() >= 256 {
            built.clear();
        }
        let made = std::str::from_utf8(config)
            .ok()
            .and_then(|text| toml::from_str::<HttpGatewayConfig>(text).ok())
            .and_then(|config| HttpGateway::new("fuzz", &config).ok())
            .map(Rc::new);
        built.insert(config.to_vec(), made.clone());
        made
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = split_once(data, b"\n") else {
        return;
    };
    let Ok(first) = std::str::from_utf8(first) else {
        return;
    };
    let mut words = first.splitn(3, ' ');
    let provider = words.next().unwrap_or_default();
    let Some(Ok(status)) = words.next().map(str::parse::<u16>) else {
        return;
    };
    if let Some(value) = words.next().and_then(|v| HeaderValue::from_str(v).ok()) {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, value);
        if let Some(wait) = retry_after(&headers) {
            assert!(wait.as_secs() <= 3600, "Retry-After is capped");
        }
    }
    let success = (200..300).contains(&status);
    match provider {
        "twilio" => {
            if success {
                check(twilio::parse_message(rest));
            } else {
                check(Err(twilio::classify_error(status, rest)));
            }
        }
        "vonage" => {
            if success {
                check(vonage::parse_response(rest));
            } else {
                check(Err(vonage::classify_http(status, rest)));
            }
        }
        "telnyx" => {
            if success {
                check(telnyx::parse_message(rest));
            } else {
                check(Err(telnyx::classify_error(status, rest)));
            }
        }
        "plivo" => {
            if success {
                check(plivo::parse_message(rest));
            } else {
                check(Err(plivo::classify_error(status, rest)));
            }
        }
        "android" => {
            if success {
                check(android::parse_message(rest));
            } else {
                check(Err(android::classify_error(status, rest)));
            }
            if let Ok(reason) = std::str::from_utf8(rest) {
                let _ = android::explain_failure(reason);
            }
        }
        "http" => {
            let Some((config, body)) = split_once(rest, b"\n---\n") else {
                return;
            };
            let Some(gateway) = built(config) else {
                return;
            };
            check(gateway.classify(status, body));
        }
        _ => {}
    }
});
