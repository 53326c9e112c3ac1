//! TEMPORARY placeholder: `kind = "http"` (being written).
use super::{Accepted, BoxFuture, Gateway, SubmitError, SubmitRequest};
use crate::config::HttpGatewayConfig;

pub struct HttpGateway {
    name: String,
}

impl HttpGateway {
    pub fn new(name: &str, _config: &HttpGatewayConfig) -> Result<Self, SubmitError> {
        Ok(HttpGateway {
            name: name.to_string(),
        })
    }
}

impl Gateway for HttpGateway {
    fn name(&self) -> &str {
        &self.name
    }
    fn submit<'a>(
        &'a self,
        _request: SubmitRequest<'a>,
    ) -> BoxFuture<'a, Result<Accepted, SubmitError>> {
        Box::pin(async {
            Err(SubmitError::permanent(
                "the http gateway is not implemented yet",
            ))
        })
    }
    fn status_callback_path(&self) -> Option<String> {
        None
    }
}
