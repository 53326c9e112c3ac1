//! How a table of settings is described: the vocabulary the configuration
//! reference ([`crate::config::reference`]) is written in.
//!
//! The loader's own tables and each provider's tables
//! ([`crate::providers`]) are written in it, next to the settings they
//! describe; the reference gathers them and generates the markdown, the
//! man page and the JSON Schema from them.

use std::time::Duration;

/// One table of the configuration.
#[derive(Debug)]
pub struct Table {
    /// Stable name: the anchor in the markdown and the schema definition.
    pub id: &'static str,
    /// How it is written in a file.
    pub title: &'static str,
    /// For a table chosen by `kind` (`[gateways.NAME]`): the section and the kind.
    pub kind: Option<(&'static str, &'static str)>,
    pub doc: &'static str,
    pub keys: &'static [Key],
    /// Keys that cannot be set together.
    pub exclusive: &'static [(&'static str, &'static str)],
}

/// One key of a table.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub ty: Type,
    pub presence: Presence,
    pub doc: &'static str,
    /// A value as written in TOML; required keys always have one.
    pub example: Option<&'static str>,
}

/// Whether a key must be set, and what holds when it is not.
#[derive(Debug)]
pub enum Presence {
    Required,
    /// The default, as a TOML value, computed from the code's defaults.
    Default(fn() -> String),
    /// No fixed default: what an unset key means.
    Unset(&'static str),
}

/// The type of a value.
#[derive(Debug)]
pub enum Type {
    String,
    /// A credential: never printed or logged; best taken from `${VAR}`.
    Secret,
    Url,
    /// A socket address, `host:port`.
    Address,
    /// A humantime duration: "500ms", "90s", "2m", "1h 30m".
    Duration,
    /// `every 5m`, a crontab line, or six fields with seconds first.
    Schedule,
    /// E.164: `+` and 7 to 15 digits.
    Phone,
    /// A JSONPath expression (RFC 9535) such as `$.id`.
    JsonPath,
    Bool,
    /// `true`/`false`, or a string that expands to one (`"${FLAG:-true}"`).
    FlexBool,
    Int {
        min: u64,
        max: u64,
    },
    Float {
        min: f64,
        max: Option<f64>,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// Any TOML value.
    Any,
    List(&'static Type),
    /// Exactly two values.
    Pair(&'static Type),
    /// A table of free-form names to values.
    Map(&'static Type),
    /// A table keyed by E.164 numbers.
    PhoneMap(&'static Type),
    /// One of the two.
    Either(&'static Type, &'static Type),
    /// The table with this id.
    Table(&'static str),
    /// Named tables whose `kind` picks one of the tables of this section.
    Kinds(&'static str),
}

pub const U32: Type = Type::Int {
    min: 0,
    max: u32::MAX as u64,
};
pub const U64: Type = Type::Int {
    min: 0,
    max: u64::MAX,
};
pub const RATE: Type = Type::Float {
    min: 0.0,
    max: Some(1.0),
};

pub fn toml_string(s: impl std::fmt::Display) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn toml_duration(d: Duration) -> String {
    toml_string(humantime::format_duration(d))
}

fn request_timeout() -> String {
    toml_duration(crate::values::request_timeout())
}

pub fn poll_interval() -> String {
    toml_duration(crate::values::poll_interval())
}

pub const REQUEST_TIMEOUT: Key = Key {
    name: "request_timeout",
    ty: Type::Duration,
    presence: Presence::Default(request_timeout),
    doc: "Timeout of one HTTP request; a timeout is a transient error and is retried.",
    example: None,
};

pub const HEADERS: Key = Key {
    name: "headers",
    ty: Type::Map(&Type::Secret),
    presence: Presence::Unset("no extra headers"),
    doc: "Request headers. Values may use the templates and are treated as secrets.",
    example: Some(r#"{ Authorization = "Bearer ${SMS_API_TOKEN}" }"#),
};
