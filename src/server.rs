//! Serving HTTP with the limits a listener the internet can reach needs.
//!
//! Webhooks arrive from providers across the internet, so the listener must
//! not be held hostage: a client that sends its headers slowly (slowloris) is
//! cut off after `header_timeout`, headers over [`MAX_HEADER_BYTES`] get 431,
//! a body declared larger than the routes take gets 413 before a byte of it
//! is read ([`limit_body`]), a request whose body or handling drags past
//! `request_timeout` gets 408, and at most `max_connections` are open at
//! once (further clients wait in the kernel's accept queue). On shutdown open
//! connections get a few seconds to finish.
//!
//! [`bind`] makes `[::]` take IPv4 callers too, whatever the system default,
//! and handlers see such a caller as its IPv4 address, not `::ffff:a.b.c.d`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::warn;

/// How long open connections may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

/// Largest request head (request line and headers) read: ten times what a
/// provider's webhook sends.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Binds a listener on `addr`. An IPv6 unspecified address (`[::]`) also
/// takes IPv4 connections, as `0.0.0.0` would, whatever `bindv6only` says.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // As the standard library does on Unix: a restart may rebind at once.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Adds the body limit to `router`: a request that declares a body over
/// `limit` (`Content-Length`) is answered 413 at once, before anything is
/// read and without a `100 Continue`, and its connection is closed; a body
/// that turns out longer than declared, or unannounced, is cut at `limit`
/// by the extractors (413 as well).
/// `refused` is told the path of each request refused so.
pub fn limit_body(
    router: Router,
    limit: usize,
    refused: impl Fn(&str) + Clone + Send + Sync + 'static,
) -> Router {
    router
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let refused = refused.clone();
                async move {
                    if declared_length(request.headers()).is_some_and(|n| n > limit as u64) {
                        refused(request.uri().path());
                        return too_large(limit);
                    }
                    next.run(request).await
                }
            },
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// The body length a request declares; an unreadable declaration counts as
/// too large (hyper refuses most of those before us).
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    let value = headers.get(axum::http::header::CONTENT_LENGTH)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX),
    )
}

fn too_large(limit: usize) -> axum::response::Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(axum::http::header::CONNECTION, "close")],
        format!("request body over {limit} bytes\n"),
    )
        .into_response()
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A client must have sent its request headers within this.
    pub header_timeout: Duration,
    /// Reading the body and answering must take no longer than this.
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes. Handlers can
/// extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let router = router.clone();
            async move {
                let response =
                    match tokio::time::timeout(limits.request_timeout, router.oneshot(request))
                        .await
                    {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => {
                            (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
                        }
                    };
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_header_size(MAX_HEADER_BYTES);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(router: &Router, path: &str, length: &str) -> u16 {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-length", length)
            .body(axum::body::Body::empty())
            .unwrap();
        router
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_on_every_path() {
        let routes = Router::new().route("/in", axum::routing::post(|| async { "ok" }));
        let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&refused);
        let router = limit_body(routes, 100, move |path| {
            seen.lock().unwrap().push(path.to_string())
        });
        assert_eq!(status(&router, "/in", "100").await, 200);
        assert_eq!(status(&router, "/in", "101").await, 413);
        assert_eq!(status(&router, "/in", "1000000000000").await, 413);
        assert_eq!(status(&router, "/in", "twelve").await, 413);
        assert_eq!(status(&router, "/elsewhere", "101").await, 413);
        assert_eq!(status(&router, "/elsewhere", "1").await, 404);
        assert_eq!(
            *refused.lock().unwrap(),
            ["/in", "/in", "/in", "/elsewhere"]
        );
    }
}
