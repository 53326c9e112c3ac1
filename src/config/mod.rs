//! The configuration: one main TOML file plus one file per probe.
//!
//! [`schema`] holds the types (the tables and their defaults), `load` reads
//! and checks the files, `error` places every problem at its file, line and
//! column, and [`reference`] documents every key. The `[gateways]` and
//! `[receivers]` kinds are the providers' registry ([`crate::providers`]),
//! which this module depends on and which does not depend on it.

mod error;
mod expand;
mod load;
pub mod probe_files;
pub mod reference;
pub mod schema;

pub use error::{ConfigError, ConfigErrors};
pub use expand::{ExpandError, expand};
pub use schema::*;

pub use crate::providers::{
    GatewayConfig, HttpGatewayConfig, HttpMethod, HttpPollConfig, MockGatewayConfig,
    ReceiverConfig, ResponseRule, WebhookReceiverConfig,
};
pub use crate::values::{E164, FlexBool, HumanDuration, Invalid, JsonPathExpr, parse_duration};
