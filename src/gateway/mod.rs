//! Gateways: where a probe submits its message.
//!
//! Every provider implements [`Gateway`]: submit one message and classify the
//! answer as accepted, transient (retry) or permanent (fail the run at once,
//! with the provider's code and a reason a person can act on). A provider is
//! one file here plus one variant of [`crate::config::GatewayConfig`].

pub mod http;
pub mod mock;
pub mod twilio;
pub mod vonage;

use crate::config::E164;
pub use crate::net::{BoxFuture, ErrorClass};

/// A submit that did not get the message accepted.
pub type SubmitError = crate::net::CallError;

/// One message to submit.
#[derive(Debug, Clone)]
pub struct SubmitRequest<'a> {
    pub from: &'a E164,
    pub to: &'a E164,
    pub body: &'a str,
    /// Sent as `X-Correlation-ID` so the gateway's own logs can be joined with ours.
    pub correlation_id: &'a str,
    /// Where the provider should post delivery receipts for this message.
    pub status_callback: Option<String>,
}

/// The gateway took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's message id (Twilio's `SM…` sid).
    pub message_id: String,
}

/// A way to send an SMS.
pub trait Gateway: Send + Sync {
    /// The gateway's name in the config.
    fn name(&self) -> &str;

    /// Submits one message. Must not retry by itself: the run engine owns retries
    /// so that they respect the run's deadline and get logged with its id.
    fn submit<'a>(
        &'a self,
        request: SubmitRequest<'a>,
    ) -> BoxFuture<'a, Result<Accepted, SubmitError>>;

    /// The path under the public URL where this gateway's receipts are received,
    /// if it sends receipts by webhook.
    fn status_callback_path(&self) -> Option<String>;

    /// A read-only call that proves the credentials work, for `doctor`; sends
    /// no SMS. `Ok(None)` when the gateway has no such call.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Turns a transport failure into a transient error a person can read.
pub fn transport_error(e: &reqwest::Error) -> SubmitError {
    crate::net::transport_error(e, "gateway")
}

pub use crate::net::{
    Body, MAX_RESPONSE_BYTES, http_client, join_base, read_body, retry_after, snippet,
};
pub(crate) use crate::net::clip;

/// Reads a provider's answer to a submit or preflight, at most
/// [`MAX_RESPONSE_BYTES`], by the one rule of [`crate::net::read_answer`].
pub async fn read_answer(response: reqwest::Response, what: &str) -> Result<Vec<u8>, SubmitError> {
    crate::net::read_answer(response, what, MAX_RESPONSE_BYTES).await
}
