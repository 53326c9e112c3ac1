//! The peer for the webhook-ingest benchmark: a bare axum hello-world on the
//! same runtime, HTTP stack and build profile as sms-canary, answering every
//! request with a fixed body. `bench/run` drives it and the daemon's signed
//! Twilio webhook route with the same load, and reports the ratio.
//!
//! Usage: `bare-axum ADDR` (e.g. `127.0.0.1:0`); prints the bound address.

use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().fallback(|| async { "Hello, World!" });
    axum::serve(listener, app).await
}
