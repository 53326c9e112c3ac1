//! Gateways: where a probe submits its message.
//!
//! Every provider implements [`Gateway`] in its folder
//! (`crate::providers::<name>::gateway`): submit one message and classify the
//! answer as accepted, transient (retry) or permanent (fail the run at once,
//! with the provider's code and a reason a person can act on).

pub use crate::net::{BoxFuture, ErrorClass};
use crate::values::E164;

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
    /// The provider's message id.
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

    /// Ends what the gateway keeps open (a bind), politely, before the
    /// process exits. Nothing for gateways that keep nothing open.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

// The shared HTTP plumbing lives in `crate::net`; these names stay here for
// code written against them before it moved.
pub use crate::net::{
    Body, MAX_RESPONSE_BYTES, http_client, join_base, read_body, retry_after, snippet,
};
