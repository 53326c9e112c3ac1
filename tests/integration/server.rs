//! The HTTP listener under hostile clients: slowloris headers are cut off,
//! slow bodies get 408, connections are capped, and handlers see the peer.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use sms_canary::server::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(limits: Limits) -> SocketAddr {
    let app = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route("/echo", post(|body: Bytes| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, limits, std::future::pending()));
    addr
}

/// Reads until the server closes the connection (or `limit` passes).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_while_others_are_served() {
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let addr = start(limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile a well-behaved client is served, and sees its own address.
    let peer = reqwest::get(format!("http://{addr}/peer"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(peer, "127.0.0.1");
    let closed = read_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a client that never finishes its headers is disconnected"
    );
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let addr = start(limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn connections_are_capped_and_freed() {
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let addr = start(limits).await;
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        client
            .get(format!("http://{addr}/peer"))
            .send()
            .await
            .is_err(),
        "a third connection waits"
    );
    held.clear();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ok = client
        .get(format!("http://{addr}/peer"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200, "freed slots serve again");
}
