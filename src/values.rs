//! Value types of the configuration that validate themselves while being
//! deserialized, and [`Invalid`], a setting that deserialized but does not work.
//!
//! Validating inside `Deserialize` means the TOML deserializer attaches the
//! value's position to the error, so "invalid duration" comes with file:line:col
//! for free. The loader ([`crate::config`]) and each provider's settings
//! ([`crate::providers`]) both speak this vocabulary; it depends on neither.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A phone number in E.164 form: `+` then 7 to 15 digits, no leading zero.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct E164(String);

impl E164 {
    pub fn parse(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix('+').ok_or_else(|| {
            format!("invalid phone number \"{s}\": must be E.164, starting with `+` (e.g. \"+15005550006\")")
        })?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(E164(s.to_string()))
        } else {
            Err(format!(
                "invalid phone number \"{s}\": must be E.164, `+` and 7 to 15 digits without spaces (e.g. \"+15005550006\")"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but its last three digits hidden, for logs and output.
    pub fn masked(&self) -> String {
        crate::redact::mask_number(&self.0)
    }
}

/// Debug masks the number so a stray `{:?}` cannot leak it.
impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse(&s).map_err(de::Error::custom)
    }
}

/// Parses a humantime duration ("90s", "2m", "1h 30m") with an error that says how.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration \"{s}\": {e} (write e.g. \"500ms\", \"90s\", \"2m\")")
    })
}

/// A JSONPath expression (RFC 9535), checked when the config loads.
#[derive(Clone)]
pub struct JsonPathExpr {
    pub source: String,
    pub path: serde_json_path::JsonPath,
}

impl JsonPathExpr {
    pub fn parse(s: &str) -> Result<Self, String> {
        serde_json_path::JsonPath::parse(s)
            .map(|path| JsonPathExpr {
                source: s.to_string(),
                path,
            })
            .map_err(|e| {
                format!(
                    "invalid JSONPath \"{s}\": {e} (write e.g. \"$.id\" or \"$.messages[*].text\")"
                )
            })
    }

    /// The first value the path selects, if any.
    pub fn first<'a>(&self, value: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        self.path.query(value).all().into_iter().next()
    }

    /// Every value the path selects.
    pub fn all<'a>(&self, value: &'a serde_json::Value) -> Vec<&'a serde_json::Value> {
        self.path.query(value).all()
    }
}

impl fmt::Debug for JsonPathExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({})", self.source)
    }
}

impl<'de> Deserialize<'de> for JsonPathExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JsonPathExpr::parse(&s).map_err(de::Error::custom)
    }
}

/// A `schedule` setting, parsed (and so checked) as it is read.
pub fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<crate::schedule::Schedule, D::Error> {
    let s = String::deserialize(d)?;
    crate::schedule::Schedule::parse(&s).map_err(de::Error::custom)
}

pub fn option_schedule<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::schedule::Schedule>, D::Error> {
    schedule(d).map(Some)
}

/// A setting that deserialized but does not work, found by checking what
/// uses it (templates, the mock carrier): `field` is the key to point at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

/// A humantime duration as a value type, so it can sit inside `Spanned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration::deserialize(d).map(HumanDuration)
    }
}

/// Serde adapter for humantime durations in config files.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(de::Error::custom)
    }

    /// A body template: must carry `{token}`, or arrivals could not be matched.
    pub fn body<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        check_body(&s).map_err(de::Error::custom)?;
        Ok(s)
    }

    pub mod option {
        use super::*;

        pub fn body<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
            super::body(d).map(Some)
        }
    }
}

/// A URL setting. Its error quotes the URL without userinfo or query values
/// (see [`crate::redact::redact_url`]): a malformed URL may still carry a
/// password or a token.
pub fn url<'de, D: Deserializer<'de>>(d: D) -> Result<url::Url, D::Error> {
    let s = String::deserialize(d)?;
    url::Url::parse(&s).map_err(|e| {
        de::Error::custom(format!(
            "invalid URL \"{}\": {e}",
            crate::redact::redact_url(&s)
        ))
    })
}

pub fn option_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<url::Url>, D::Error> {
    url(d).map(Some)
}

/// Default per-request timeout of the HTTP APIs called.
pub fn request_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Default time between two polls of a polling receiver.
pub fn poll_interval() -> Duration {
    Duration::from_secs(2)
}

/// Checks a body template.
pub fn check_body(body: &str) -> Result<(), String> {
    if body.contains("{token}") {
        Ok(())
    } else {
        Err(format!(
            "body template \"{body}\" lacks {{token}}: the token is how the receiver recognises the message"
        ))
    }
}

/// A boolean that may also be written as a string, so that feature flags such as
/// `enabled = "${PROBE_ENABLED:-true}"` work after variable expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlexBool(pub bool);

impl<'de> Deserialize<'de> for FlexBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FlexBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "true or false (or a string such as \"${VAR:-true}\" that expands to one)",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FlexBool, E> {
                Ok(FlexBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexBool, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(FlexBool(true)),
                    "false" | "no" | "off" | "0" | "" => Ok(FlexBool(false)),
                    _ => Err(E::custom(format!(
                        "invalid boolean \"{v}\": expected true/false, yes/no, on/off or 1/0"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Renders a link template: `{probe}` and `{correlation_id}`, each
/// URL-encoded where it lands.
pub fn render_link(template: &str, probe: &str, correlation_id: &str) -> String {
    let encode = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    template
        .replace("{probe}", &encode(probe))
        .replace("{correlation_id}", &encode(correlation_id))
}

/// A link template (`runbook_url`, `dashboard_url`): rendered with sample
/// values, it must be an http(s) URL, so a typo is found at load and not in
/// the alert of an outage.
pub fn option_link_template<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(template) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let sample = render_link(&template, "probe", "01JCORRELATIONID");
    let unknown = sample.contains('{') || sample.contains('}');
    match url::Url::parse(&sample) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && !unknown => Ok(Some(template)),
        _ if unknown => Err(serde::de::Error::custom(
            "a link template may use only {probe} and {correlation_id}",
        )),
        _ => Err(serde::de::Error::custom(
            "not an http:// or https:// URL (templates may use {probe} and {correlation_id})",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_international_numbers_only() {
        assert!(E164::parse("+15005550006").is_ok());
        assert!(E164::parse("+447700900123").is_ok());
        for bad in [
            "15005550006",
            "+1 500 555 0006",
            "+0123456789",
            "+12",
            "+1234567890123456",
            "+1500abc0006",
            "",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn e164_debug_is_masked() {
        let n = E164::parse("+15005550006").unwrap();
        assert_eq!(format!("{n:?}"), "E164(+********006)");
    }

    #[test]
    fn durations_explain_the_format() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        let err = parse_duration("2 minutes-ish").unwrap_err();
        assert!(err.contains("\"90s\""), "{err}");
    }
}
