//! A stand-in alert receiver for the tests: records every JSON body posted to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

/// Any free port on loopback, chosen by the bind itself: picking a free port
/// first and binding it later races with the other tests' connections.
pub const ANY_PORT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

#[derive(Clone, Default)]
pub struct Capture {
    pub received: Arc<Mutex<Vec<Value>>>,
    /// GETs of `/heartbeat` (a dead-man's switch).
    pub heartbeats: Arc<Mutex<u32>>,
}

impl Capture {
    /// Serves on `addr` (port 0 for any); returns the bound address.
    pub async fn start(addr: SocketAddr) -> (Capture, SocketAddr) {
        let capture = Capture::default();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let bound = listener.local_addr().unwrap();
        let app = Router::new()
            .route(
                "/alerts",
                post(|State(c): State<Capture>, body: Bytes| async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        c.received.lock().unwrap().push(v);
                    }
                    "ok"
                }),
            )
            .route(
                "/heartbeat",
                axum::routing::get(|State(c): State<Capture>| async move {
                    *c.heartbeats.lock().unwrap() += 1;
                    "ok"
                }),
            )
            .with_state(capture.clone());
        tokio::spawn(axum::serve(listener, app).into_future());
        (capture, bound)
    }

    pub fn transitions(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|n| n["transition"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Waits (polling, bounded) until `n` notifications arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.received.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.transitions()
    }
}
