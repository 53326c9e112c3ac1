//! `{{name}}` templates for the user-described HTTP gateway and poll receiver.
//!
//! A template is parsed once (when the gateway or receiver is built, so that a
//! misspelt placeholder is reported before the first run) and rendered per
//! request. Each rendering picks an [`Escape`] mode for where the values land:
//! inside a JSON string, in a URL component, or raw (headers, form fields,
//! which are encoded later by whoever builds the request). Values are escaped;
//! the literal text the template author wrote never is.

use std::fmt;

use thiserror::Error;

/// How a value is escaped when it replaces a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string: the template author writes the surrounding quotes,
    /// so quotes, backslashes and control characters are escaped.
    Json,
    /// A URL query or path component: everything but RFC 3986 unreserved
    /// characters is percent-encoded (`+` becomes `%2B`, space `%20`).
    Url,
    /// Inserted as is: header values, and form fields (form-encoded afterwards).
    None,
}

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown placeholder {{{{{name}}}}} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("`{{{{` at character {at} is not closed by `}}}}`")]
    Unclosed { at: usize },
    #[error(
        "placeholder {{{{{inner}}}}} at character {at} is not a name (letters, digits and `_`, e.g. {{{{to}}}})"
    )]
    BadName { inner: String, at: usize },
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// A parsed template.
///
/// `Debug` shows the placeholder names only: header templates hold credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("placeholders", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `{{name}}` placeholders; spaces inside the braces are allowed.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let at = char_index(source, offset + open);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed { at })?;
            let inner = &after[..close];
            let name = inner.trim();
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(TemplateError::BadName {
                    inner: inner.to_string(),
                    at,
                });
            }
            parts.push(Part::Var(name.to_string()));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Parses and checks that every placeholder is one of `allowed`.
    pub fn parse_allowed(source: &str, allowed: &[&str]) -> Result<Template, TemplateError> {
        let template = Template::parse(source)?;
        template.check(allowed)?;
        Ok(template)
    }

    /// The placeholder names, in order of appearance (repeats included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Checks that every placeholder is one of `allowed`, without rendering.
    pub fn check(&self, allowed: &[&str]) -> Result<(), TemplateError> {
        match self.names().find(|n| !allowed.contains(n)) {
            Some(name) => Err(unknown(name, allowed.iter().copied())),
            None => Ok(()),
        }
    }

    /// Replaces each placeholder with its value from `values`, escaped by `escape`.
    pub fn render(&self, values: &[(&str, &str)], escape: Escape) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => {
                    let value = values
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| unknown(name, values.iter().map(|(k, _)| *k)))?;
                    push_escaped(&mut out, value, escape);
                }
            }
        }
        Ok(out)
    }
}

/// Checks a template source against the allowed placeholder names, without rendering.
pub fn check(source: &str, allowed: &[&str]) -> Result<(), TemplateError> {
    Template::parse_allowed(source, allowed).map(|_| ())
}

/// Parses and renders in one step.
pub fn render(
    source: &str,
    values: &[(&str, &str)],
    escape: Escape,
) -> Result<String, TemplateError> {
    Template::parse(source)?.render(values, escape)
}

fn unknown<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> TemplateError {
    let known: Vec<String> = known.map(|k| format!("{{{{{k}}}}}")).collect();
    TemplateError::Unknown {
        name: name.to_string(),
        known: if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
    }
}

/// Byte offset to a 1-based character position, for messages a person reads.
fn char_index(source: &str, byte: usize) -> usize {
    source[..byte].chars().count() + 1
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::None => out.push_str(value),
        Escape::Json => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{08}' => out.push_str("\\b"),
                    '\u{0c}' => out.push_str("\\f"),
                    c if c.is_control() => {
                        // Covers C0 (required by JSON) and C1/DEL (harmless to escape).
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    c => out.push(c),
                }
            }
        }
        Escape::Url => {
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &[(&str, &str)] = &[("to", "+15005550100"), ("body", "say \"hi\"\n\\ok")];

    #[test]
    fn renders_with_and_without_spaces() {
        let t = Template::parse("a {{to}} b {{ to }} c").unwrap();
        assert_eq!(
            t.render(VALUES, Escape::None).unwrap(),
            "a +15005550100 b +15005550100 c"
        );
        assert_eq!(t.names().collect::<Vec<_>>(), ["to", "to"]);
        assert_eq!(render("plain", &[], Escape::Url).unwrap(), "plain");
        assert_eq!(render("", &[], Escape::Json).unwrap(), "");
    }

    #[test]
    fn json_escaping_keeps_the_document_valid() {
        let out = render(r#"{"text":"{{body}}"}"#, VALUES, Escape::Json).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["text"], "say \"hi\"\n\\ok");
        let controls = "\u{0}\u{1f}\t\u{7f}é😀";
        let out = render(r#"["{{x}}"]"#, &[("x", controls)], Escape::Json).unwrap();
        let parsed: Vec<String> = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, [controls]);
    }

    #[test]
    fn url_escaping_encodes_plus_and_reserved_characters() {
        let out = render(
            "https://x.test/m?to={{to}}&since={{since}}",
            &[
                ("to", "+15005550100"),
                ("since", "2024-01-02T03:04:05+00:00 é/"),
            ],
            Escape::Url,
        )
        .unwrap();
        assert_eq!(
            out,
            "https://x.test/m?to=%2B15005550100&since=2024-01-02T03%3A04%3A05%2B00%3A00%20%C3%A9%2F"
        );
    }

    #[test]
    fn unknown_placeholders_name_themselves_and_the_known_ones() {
        let err = render("{{ tto }}", VALUES, Escape::None).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unknown {
                name: "tto".into(),
                known: "{{to}}, {{body}}".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown placeholder {{tto}} (known: {{to}}, {{body}})"
        );
        let err = check("{{to}}{{token}}", &["to", "from"]).unwrap_err();
        assert!(err.to_string().contains("{{token}}"), "{err}");
        assert!(err.to_string().contains("{{to}}, {{from}}"), "{err}");
        assert!(check("{{to}}{{ from }}", &["to", "from"]).is_ok());
        assert!(
            render("{{x}}", &[], Escape::None)
                .unwrap_err()
                .to_string()
                .contains("known: none")
        );
    }

    #[test]
    fn malformed_placeholders_are_errors_with_positions() {
        assert_eq!(
            Template::parse("ab {{to").unwrap_err(),
            TemplateError::Unclosed { at: 4 }
        );
        assert!(matches!(
            Template::parse("é{{}}"),
            Err(TemplateError::BadName { at: 2, .. })
        ));
        assert!(matches!(
            Template::parse("{{to-number}}"),
            Err(TemplateError::BadName { .. })
        ));
    }

    #[test]
    fn single_and_closing_braces_are_literal_text() {
        let out = render(r#"{"a":{"b":"{{to}}"}}"#, &[("to", "x")], Escape::Json).unwrap();
        assert_eq!(out, r#"{"a":{"b":"x"}}"#);
        assert_eq!(render("}} {x}", &[], Escape::None).unwrap(), "}} {x}");
    }

    #[test]
    fn debug_does_not_show_literal_text() {
        let t = Template::parse("Bearer s3cret {{to}}").unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("to"), "{shown}");
    }
}
