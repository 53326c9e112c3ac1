//! Plivo's webhook signatures, both versions Plivo documents for messaging,
//! each base64 HMAC-SHA256 keyed by the account's auth token:
//!
//! - V3 (`X-Plivo-Signature-V3`, `-V3-Nonce`): over the URL and every
//!   parameter, then `.` and the nonce. For a POST: the URL without its
//!   query, `?` and its query sorted (`k=v&…`, `.` after it when there are
//!   parameters), then the POSTed parameters sorted, each `keyvalue`. For a
//!   GET: the URL and all its query parameters sorted (`?k=v&…`). The header
//!   may hold several comma-separated signatures; one that matches is enough.
//! - V2 (`X-Plivo-Signature-V2`, `-V2-Nonce`): over the URL without its query,
//!   then the nonce; the parameters are not covered.
//!
//! Checked in constant time.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

/// `scheme://host[:port]/path`: the URL without its query or fragment.
fn base(url: &Url) -> String {
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.to_string()
}

/// Parameters by name, each name's values sorted, as Plivo's helpers group them.
fn grouped<'a>(
    params: impl Iterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in params {
        map.entry(k).or_default().push(v);
    }
    for values in map.values_mut() {
        values.sort_unstable();
    }
    map
}

/// `k=v&k=v2&…` of sorted parameters.
fn sorted_query(map: &BTreeMap<&str, Vec<&str>>) -> String {
    map.iter()
        .flat_map(|(k, values)| values.iter().map(move |v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("&")
}

/// What V3 signs before `.nonce`, for a request of `method` to `url` with
/// the POSTed (form or JSON) `params`.
pub fn v3_text(method_is_get: bool, url: &Url, params: &[(String, String)]) -> String {
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let mut text = base(url);
    if method_is_get {
        let all = grouped(
            query
                .iter()
                .chain(params)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let qs = sorted_query(&all);
        if !qs.is_empty() {
            text.push('?');
            text.push_str(&qs);
        }
        return text;
    }
    let qs = sorted_query(&grouped(
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ));
    if !qs.is_empty() || !params.is_empty() {
        text.push('?');
        text.push_str(&qs);
    }
    if !qs.is_empty() && !params.is_empty() {
        text.push('.');
    }
    let posted = grouped(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, values) in &posted {
        for v in values {
            text.push_str(k);
            text.push_str(v);
        }
    }
    text
}

fn hmac_base64(auth_token: &str, text: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The `X-Plivo-Signature-V3` of a request.
pub fn sign_v3(
    auth_token: &str,
    method_is_get: bool,
    url: &Url,
    params: &[(String, String)],
    nonce: &str,
) -> String {
    hmac_base64(
        auth_token,
        &format!("{}.{nonce}", v3_text(method_is_get, url, params)),
    )
}

/// The `X-Plivo-Signature-V2` of a request to `url`.
pub fn sign_v2(auth_token: &str, url: &Url, nonce: &str) -> String {
    hmac_base64(auth_token, &format!("{}{nonce}", base(url)))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks an `X-Plivo-Signature-V3` header, which may list several signatures.
pub fn verify_v3(
    auth_token: &str,
    method_is_get: bool,
    url: &Url,
    params: &[(String, String)],
    nonce: &str,
    header: &str,
) -> bool {
    let expected = sign_v3(auth_token, method_is_get, url, params, nonce);
    // Every candidate is compared, so the time does not tell which matched.
    header
        .split(',')
        .fold(false, |found, given| same(given.trim(), &expected) | found)
}

/// Checks an `X-Plivo-Signature-V2` header.
pub fn verify_v2(auth_token: &str, url: &Url, nonce: &str, header: &str) -> bool {
    same(header.trim(), &sign_v2(auth_token, url, nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The strings Plivo's own helper (`construct_post_url`,
    /// `construct_get_url` of its Python SDK) builds for these requests.
    #[test]
    fn the_signed_text_is_plivos() {
        let url =
            Url::parse("https://canary.example.com/hooks/plivo/status/pl?run=abc&b=2").unwrap();
        let params = pairs(&[
            ("To", "15005550100"),
            ("From", "15005550006"),
            ("Status", "sent"),
        ]);
        assert_eq!(
            v3_text(false, &url, &params),
            "https://canary.example.com/hooks/plivo/status/pl?b=2&run=abc.From15005550006Statussent To15005550100"
                .replace(' ', "")
        );
        let bare = Url::parse("https://canary.example.com/in").unwrap();
        assert_eq!(
            v3_text(false, &bare, &params),
            "https://canary.example.com/in?From15005550006StatussentTo15005550100"
        );
        assert_eq!(v3_text(false, &bare, &[]), "https://canary.example.com/in");
        let get = Url::parse("https://canary.example.com/in?Text=hi&From=1&From=0").unwrap();
        assert_eq!(
            v3_text(true, &get, &[]),
            "https://canary.example.com/in?From=0&From=1&Text=hi"
        );
    }

    #[test]
    fn signatures_verify_and_refuse_tampering() {
        let url = Url::parse("https://canary.example.com/hooks/plivo/inbound/inbox").unwrap();
        let params = pairs(&[("Text", "sms-canary p abcdefghjk"), ("From", "15005550006")]);
        let sig = sign_v3("token", false, &url, &params, "12345");
        assert!(verify_v3("token", false, &url, &params, "12345", &sig));
        // Several signatures, one of them ours (a rotated token's next to it).
        let listed = format!("{},{sig}", sign_v3("old", false, &url, &params, "12345"));
        assert!(verify_v3("token", false, &url, &params, "12345", &listed));
        assert!(!verify_v3("other", false, &url, &params, "12345", &sig));
        assert!(!verify_v3("token", false, &url, &params, "12346", &sig));
        let mut tampered = params.clone();
        tampered[0].1.push('!');
        assert!(!verify_v3("token", false, &url, &tampered, "12345", &sig));
        assert!(!verify_v3("token", false, &url, &params, "12345", ""));
        assert!(!verify_v3("token", false, &url, &params, "12345", ",,"));

        let v2 = sign_v2("token", &url, "n1");
        assert!(verify_v2("token", &url, "n1", &v2));
        // V2 covers the URL without its query, and the nonce.
        let with_query =
            Url::parse("https://canary.example.com/hooks/plivo/inbound/inbox?x=1").unwrap();
        assert!(verify_v2("token", &with_query, "n1", &v2));
        assert!(!verify_v2("token", &url, "n2", &v2));
        assert!(!verify_v2("other", &url, "n1", &v2));
    }
}
