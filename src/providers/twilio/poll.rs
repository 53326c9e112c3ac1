//! `kind = "twilio-poll"`: finds arrivals by listing Twilio messages.
//!
//! Lists inbound messages To the probe's number sent since the run started
//! (`DateSent>` has day resolution, so older ones of the same day come too and
//! are told apart by token). Only the newest page is read: a run's message is
//! among the newest unless hundreds arrive at that number within one interval.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::net::{BoxFuture, CallError, MAX_RESPONSE_BYTES, http_client, join_base, snippet};
use crate::receiver::poll::{PollError, Polled, Poller, Watch};
use crate::redact::Secret;

/// Newest messages read per poll.
const PAGE_SIZE: &str = "100";

pub struct TwilioPoller {
    client: reqwest::Client,
    list_url: Url,
    account_sid: String,
    auth_token: Secret,
    interval: Duration,
}

impl TwilioPoller {
    pub fn new(
        base_url: &Url,
        account_sid: &str,
        auth_token: Secret,
        interval: Duration,
    ) -> Result<Self, PollError> {
        let setup = |e: CallError| PollError::permanent(e.reason);
        let list_url = join_base(
            base_url,
            &format!("2010-04-01/Accounts/{account_sid}/Messages.json"),
        )
        .map_err(setup)?;
        let client = http_client(Duration::from_secs(10), base_url).map_err(setup)?;
        Ok(TwilioPoller {
            client,
            list_url,
            account_sid: account_sid.to_string(),
            auth_token,
            interval,
        })
    }

    async fn list(&self, watch: &Watch) -> Result<Vec<Polled>, PollError> {
        let day = watch.since.format("%Y-%m-%d").to_string();
        let response = self
            .client
            .get(self.list_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header("X-Correlation-ID", &watch.correlation_id)
            .query(&[
                ("To", watch.to.as_str()),
                ("DateSent>", day.as_str()),
                ("PageSize", PAGE_SIZE),
            ])
            .send()
            .await
            .map_err(|e| crate::net::transport_error(&e, "Twilio"))?;
        let status = response.status();
        let body =
            crate::net::read_answer(response, "Twilio's listing", MAX_RESPONSE_BYTES).await?;
        parse_listing(status.as_u16(), &body)
    }
}

impl Poller for TwilioPoller {
    fn interval(&self) -> Duration {
        self.interval
    }

    fn poll<'a>(&'a self, watch: &'a Watch) -> BoxFuture<'a, Result<Vec<Polled>, PollError>> {
        Box::pin(self.list(watch))
    }
}

/// Reads an answer to the message listing: the inbound messages on its page.
pub fn parse_listing(status: u16, body: &[u8]) -> Result<Vec<Polled>, PollError> {
    match status {
        200 => {}
        401 | 403 => {
            return Err(PollError::permanent(format!(
                "Twilio refused to list messages: check the account's credentials (HTTP {status})"
            )));
        }
        404 => {
            return Err(PollError::permanent(
                "Twilio has no such account (HTTP 404): check account_sid",
            ));
        }
        _ => {
            return Err(PollError::transient(format!(
                "listing messages failed (HTTP {status}): {}",
                snippet(body)
            )));
        }
    }
    let page: Page = serde_json::from_slice(body).map_err(|_| {
        PollError::transient(format!(
            "listing is not a Twilio message page: {}",
            snippet(body)
        ))
    })?;
    Ok(page
        .messages
        .into_iter()
        .filter(|m| m.direction.as_deref() == Some("inbound"))
        .filter_map(|m| {
            Some(Polled {
                id: m.sid?,
                body: m.body?,
            })
        })
        .collect())
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct ListedMessage {
    sid: Option<String>,
    body: Option<String>,
    direction: Option<String>,
}
