//! Answers the polling receivers read: Twilio's message listing, and your
//! own API's JSON picked apart by the `http-poll` receiver's JSONPaths. Any
//! answer gives messages or an error without a panic; every message the
//! `http-poll` receiver finds has an id.
//!
//! Input: a first line `twilio STATUS` or `http STATUS`; for `http`, the
//! receiver's TOML then `\n---\n`; then the response body.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use sms_canary::config::HttpPollConfig;
use sms_canary::providers::http::poll::{HttpPoller, check_status};
use sms_canary::providers::twilio::poll::parse_listing;
use sms_canary::receiver::poll::{PollError, Polled};

fn split_once<'a>(data: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = data.windows(separator.len()).position(|w| w == separator)?;
    Some((&data[..at], &data[at + separator.len()..]))
}

fn check(result: Result<Vec<Polled>, PollError>, ids_required: bool) {
    match result {
        Ok(messages) => {
            for m in messages {
                // Messages without an id get one made from their text.
                assert!(
                    !ids_required || !m.id.is_empty(),
                    "a polled message has an id"
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The HttpPoller a config text builds, if any. Building one makes an HTTP client
/// (about a millisecond), and most mutations change only the body, so built
/// ones are kept, a bounded number of them.
fn built(config: &[u8]) -> Option<Rc<HttpPoller>> {
    thread_local! {
        static BUILT: RefCell<HashMap<Vec<u8>, Option<Rc<HttpPoller>>>> = RefCell::new(HashMap::new());
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
            .and_then(|text| toml::from_str::<HttpPollConfig>(text).ok())
            .and_then(|config| HttpPoller::new(&config).ok())
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
    let Some((kind, status)) = first.split_once(' ') else {
        return;
    };
    let Ok(status) = status.parse::<u16>() else {
        return;
    };
    match kind {
        "twilio" => check(parse_listing(status, rest), false),
        "http" => {
            let Some((config, body)) = split_once(rest, b"\n---\n") else {
                return;
            };
            let Some(poller) = built(config) else {
                return;
            };
            check(
                check_status(status, body).and_then(|()| poller.read_answer(body)),
                true,
            );
        }
        _ => {}
    }
});
