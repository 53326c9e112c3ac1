//! `sms-canary healthcheck`: asks a running daemon whether it is healthy, for
//! container engines and supervisors that have no HTTP client of their own
//! (the container image has no shell and no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

use super::server::HEALTHZ;
use crate::config::Canary;

/// The URL of the daemon's `/healthz` for this config: its admin listener,
/// where an unspecified address (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn url(canary: &Canary) -> Url {
    let listen = canary.admin_listen;
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base = SocketAddr::new(ip, listen.port());
    // A socket address always makes a valid http URL authority.
    Url::parse(&format!("http://{base}{HEALTHZ}")).expect("socket address forms a URL")
}

/// GETs `url`: `Ok` with the daemon's answer when it is 200, else why not.
pub async fn check(url: &Url, timeout: Duration) -> Result<String, String> {
    let client = crate::trust::endpoint_client(timeout, url.as_str())?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", crate::trust::describe(&e)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let said = body.trim();
    let said: String = said.chars().take(200).collect();
    if status.is_success() {
        Ok(said)
    } else {
        Err(format!("{url} answered {}: {said}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_listener_is_asked_and_an_unspecified_address_on_loopback() {
        let mut canary = Canary::default();
        assert_eq!(url(&canary).as_str(), "http://127.0.0.1:9188/healthz");
        canary.listen = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(url(&canary).as_str(), "http://127.0.0.1:9188/healthz");
        canary.admin_listen = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(url(&canary).as_str(), "http://127.0.0.1:8081/healthz");
        canary.admin_listen = "[::]:8081".parse().unwrap();
        assert_eq!(url(&canary).as_str(), "http://[::1]:8081/healthz");
        canary.admin_listen = "10.0.0.5:9188".parse().unwrap();
        assert_eq!(url(&canary).as_str(), "http://10.0.0.5:9188/healthz");
    }
}
