//! Which certificate authorities an HTTP client trusts.
//!
//! A client that may call HTTPS trusts the system's CA store, which reqwest
//! reads when the client is built: on a typical Linux box that is a bundle
//! and a directory of ~150 files, parsed on every `check` a cron job starts.
//! A client whose endpoints are all plain HTTP (the bundled mock carrier, a
//! gateway, poller or alert webhook on the local network) needs none of it,
//! and must not fail on a machine that has no CA store at all: a minimal
//! container, say.

use std::time::Duration;

use reqwest::{Client, ClientBuilder};
use url::Url;

/// Whether a client with these endpoints may need to verify a certificate.
/// A URL that does not parse counts as HTTPS: verifying too much is safe.
pub(crate) fn may_call_https<'a>(urls: impl IntoIterator<Item = &'a str>) -> bool {
    urls.into_iter().any(|u| {
        Url::parse(u.trim())
            .map(|u| u.scheme() != "http")
            .unwrap_or(true)
    })
}

/// Builds the client; with `https` false it trusts no CA at all and so does
/// not read the system's store. Redirects to HTTPS then fail verification,
/// which is the clearer failure for a URL configured as plain HTTP.
pub(crate) fn build(builder: ClientBuilder, https: bool) -> reqwest::Result<Client> {
    if https {
        builder.build()
    } else {
        builder.tls_certs_only(std::iter::empty()).build()
    }
}

/// The client of a user-defined HTTP endpoint (the `http` gateway and
/// poller), whose URL template is `url`. Redirects are not followed: a
/// redirected POST turns into a GET, and credentials in custom headers would
/// follow it to another host; better to say the URL is out of date.
pub(crate) fn endpoint_client(timeout: Duration, url: &str) -> Result<Client, String> {
    let builder = Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sms-canary/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    build(builder, may_call_https([url]))
        .map_err(|e| format!("cannot build HTTP client: {}", describe(&e)))
}

/// A client that could not be built, with its causes: reqwest's own message
/// is only "builder error", and the cause ("No CA certificates were loaded
/// from the system") is what a person can act on.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Builds a client whose endpoints are not known up front (the mock
/// carrier's callbacks go wherever a request says): the system's CA store if
/// it has one, else no CA, so plain HTTP still works.
pub(crate) fn build_or_plain(make: impl Fn() -> ClientBuilder) -> reqwest::Result<Client> {
    match make().build() {
        Ok(client) => Ok(client),
        Err(e) => {
            tracing::debug!(
                "no usable CA store ({}); HTTPS callbacks will fail verification",
                describe(&e)
            );
            build(make(), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_all_plain_http_skips_the_ca_store() {
        assert!(!may_call_https([
            "http://127.0.0.1:9/x",
            " http://gw.lan/send"
        ]));
        assert!(may_call_https([
            "http://127.0.0.1:9/x",
            "https://api.example.com/"
        ]));
        assert!(may_call_https(["{{base}}/send"]));
        assert!(!may_call_https([]));
    }

    #[tokio::test]
    async fn a_plain_client_talks_http_and_an_https_failure_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            axum::serve(
                listener,
                axum::Router::new().route("/", axum::routing::get(|| async { "hi" })),
            )
            .into_future(),
        );
        let client = build(Client::builder(), false).unwrap();
        let answer = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "hi");
        // The same port spoken to as HTTPS fails as an error, not a panic.
        // (Whether a CA store is read is shown end to end, without one, in
        // `cli::the_example_round_trips_on_a_machine_without_ca_certificates`.)
        assert!(client.get(format!("https://{addr}/")).send().await.is_err());
    }
}
