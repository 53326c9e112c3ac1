//! TEMPORARY placeholder: `kind = "http-poll"` (being written).
use super::poll::{PollError, Polled, Poller, Watch};
use crate::config::HttpPollConfig;
use crate::gateway::BoxFuture;

pub struct HttpPoller {
    interval: std::time::Duration,
}

impl HttpPoller {
    pub fn new(config: &HttpPollConfig) -> Result<Self, PollError> {
        Ok(HttpPoller {
            interval: config.interval,
        })
    }
}

impl Poller for HttpPoller {
    fn interval(&self) -> std::time::Duration {
        self.interval
    }
    fn poll<'a>(&'a self, _watch: &'a Watch) -> BoxFuture<'a, Result<Vec<Polled>, PollError>> {
        Box::pin(async { Err(PollError::permanent("http-poll is not implemented yet")) })
    }
}
