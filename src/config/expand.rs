//! `${VAR}` and `${VAR:-default}` expansion of config strings.
//!
//! Expansion happens on parsed string values, never on raw text, so a `${…}`
//! inside a TOML comment is left alone and every error keeps the position of
//! the string it came from. `$${` writes a literal `${`. A default may itself
//! hold references (`${A:-${B:-x}}`), expanded only when the default is used.

use thiserror::Error;

/// How deep defaults may nest: far beyond any real use, and a bound on the
/// recursion a hostile string can cause.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error("environment variable `{0}` is not set (use `${{{0}:-default}}` to give a default)")]
    Missing(String),
    #[error("unterminated `${{` (expected `${{NAME}}` or `${{NAME:-default}}`)")]
    Unterminated,
    #[error("invalid variable name `{0}` (letters, digits and `_`, not starting with a digit)")]
    BadName(String),
    #[error("defaults nest more than {MAX_DEPTH} deep (`${{A:-${{B:-…}}}}`)")]
    TooDeep,
}

/// Expands every `${…}` in `input`, looking variables up with `lookup`.
///
/// Like the shell, `${VAR:-default}` uses the default when VAR is unset or empty.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    expand_at(input, &lookup, 0)
}

fn expand_at(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, ExpandError> {
    if !input.contains('$') {
        return Ok(input.to_string());
    }
    if depth > MAX_DEPTH {
        return Err(ExpandError::TooDeep);
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = closing_brace(tail).ok_or(ExpandError::Unterminated)?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(ExpandError::BadName(name.to_string()));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(&expand_at(default, lookup, depth + 1)?),
                (None, None) => return Err(ExpandError::Missing(name.to_string())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The `}` that closes a `${` whose contents start `text`, counting the
/// `${…}` nested in a default.
fn closing_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$${") {
            i += 3;
        } else if bytes[i..].starts_with(b"${") {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    None
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand("${NOPE:-true}", env).unwrap(), "true");
        assert_eq!(expand("${EMPTY:-x}", env).unwrap(), "x");
        assert_eq!(expand("${EMPTY}", env).unwrap(), "");
        assert_eq!(expand("${TOKEN:-x}${TOKEN}", env).unwrap(), "s3crets3cret");
        assert_eq!(expand("${NOPE:-}", env).unwrap(), "");
    }

    #[test]
    fn leaves_plain_dollars_and_escapes() {
        assert_eq!(expand("cost $5", env).unwrap(), "cost $5");
        assert_eq!(expand("$${TOKEN}", env).unwrap(), "${TOKEN}");
        assert_eq!(expand("trailing $", env).unwrap(), "trailing $");
    }

    #[test]
    fn names_the_missing_variable() {
        let err = expand("x ${SMS_API_TOKEN} y", env).unwrap_err();
        assert_eq!(err, ExpandError::Missing("SMS_API_TOKEN".into()));
        assert!(err.to_string().contains("SMS_API_TOKEN"));
    }

    #[test]
    fn defaults_may_nest() {
        assert_eq!(expand("${NOPE:-${TOKEN}}", env).unwrap(), "s3cret");
        assert_eq!(expand("${NOPE:-${EMPTY:-${NADA:-x}}}!", env).unwrap(), "x!");
        assert_eq!(expand("${TOKEN:-${NOPE}}", env).unwrap(), "s3cret");
        assert_eq!(
            expand("${NOPE:-${MISSING}}", env).unwrap_err(),
            ExpandError::Missing("MISSING".into())
        );
        assert_eq!(
            expand("${NOPE:-${TOKEN}", env).unwrap_err(),
            ExpandError::Unterminated
        );
        let deep = format!("{}x{}", "${NOPE:-".repeat(20), "}".repeat(20));
        assert_eq!(expand(&deep, env).unwrap_err(), ExpandError::TooDeep);
    }

    #[test]
    fn rejects_malformed_references() {
        assert_eq!(
            expand("${TOKEN", env).unwrap_err(),
            ExpandError::Unterminated
        );
        assert_eq!(
            expand("${1X}", env).unwrap_err(),
            ExpandError::BadName("1X".into())
        );
        assert_eq!(
            expand("${}", env).unwrap_err(),
            ExpandError::BadName(String::new())
        );
    }
}
