//! Connection limits (`src/http/connection_limits.rs`): clients that open sockets and say
//! nothing, say it slowly, or sit idle cannot hold the server's connection slots, and one
//! address cannot take them all. Raw sockets stand in for such clients; bounds are generous
//! for a loaded CI machine (`timeout + 2 s`).

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request header that never ends (the blank line is missing).
const HALF_HEADER: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
/// What a loaded 2-core machine may add to any bound.
const MARGIN: Duration = Duration::from_secs(2);

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (end-of-file or reset): what it sent, and
/// how long that took. Fails the test if it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `GET /healthz` on an open connection and reads its whole answer (`ok\n`).
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream.write_all(HEALTHZ).await.expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !received.ends_with(b"\r\n\r\nok\n") {
        let n = tokio::time::timeout(MARGIN, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before the answer: {received:?}");
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(received).expect("UTF-8 answer")
}

async fn closed_for(server: &TestServer, reason: &str) -> f64 {
    metric(
        &server.metrics().await,
        &format!("opentime_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn half_sent_headers_cannot_hold_the_connection_slots() {
    let header_timeout = Duration::from_millis(300);
    let server = TestServer::builder()
        .embedded_store()
        .max_connections(8)
        .max_connections_per_address(0)
        .header_timeout_ms(300)
        .start()
        .await;
    let mut slow = Vec::new();
    for _ in 0..12 {
        let mut stream = connect(&server).await;
        stream.write_all(HALF_HEADER).await.expect("write");
        slow.push(stream);
    }

    let started = Instant::now();
    let answer = get(&server.url("/healthz")).await;
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() < header_timeout + MARGIN,
        "answered after {:?}",
        started.elapsed()
    );
    for stream in &mut slow {
        let (received, _) = read_until_closed(stream, header_timeout + MARGIN).await;
        assert!(received.is_empty(), "no answer to half a header");
    }
    assert!(closed_for(&server, "header-timeout").await >= 12.0);
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::builder()
        .embedded_store()
        .header_timeout_ms(300)
        .start()
        .await;
    let mut silent = connect(&server).await;
    let (received, after) =
        read_until_closed(&mut silent, Duration::from_millis(300) + MARGIN).await;
    assert!(received.is_empty());
    assert!(
        after >= Duration::from_millis(200),
        "closed after {after:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_trickled_header_is_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(500);
    let server = TestServer::builder()
        .embedded_store()
        .header_timeout_ms(500)
        .start()
        .await;
    let stream = connect(&server).await;
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        // One header byte every 50 ms: bytes keep coming, the header never completes.
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(header_timeout + MARGIN, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a trickled header kept the connection open");
    assert!(started.elapsed() >= Duration::from_millis(400));
    trickle.abort();
    server.shutdown().await;
}

/// What a server with a 300 ms header timeout sends an HTTP/2 client that says its preface and
/// an empty SETTINGS frame, then nothing, until it closes the connection.
async fn http2_preface_answer() -> Vec<u8> {
    let server = TestServer::builder()
        .embedded_store()
        .header_timeout_ms(300)
        .start()
        .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let (received, _) = read_until_closed(&mut stream, Duration::from_millis(300) + MARGIN).await;
    server.shutdown().await;
    received
}

#[tokio::test]
async fn an_http2_connection_without_a_request_is_closed_after_the_header_timeout() {
    let received = http2_preface_answer().await;
    assert!(
        !received.is_empty(),
        "the server spoke HTTP/2 (its SETTINGS)"
    );
}

/// The value of `id` in the first SETTINGS frame of `received` (HTTP/2 frames: 9-byte header,
/// then 6-byte id/value pairs).
fn http2_setting(received: &[u8], id: u16) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= received.len() {
        let length = u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]]);
        let (kind, payload) = (received[at + 3], at + 9);
        let end = payload + length as usize;
        if kind == 0x4 && length > 0 {
            return received
                .get(payload..end)?
                .chunks_exact(6)
                .find_map(|pair| {
                    (u16::from_be_bytes([pair[0], pair[1]]) == id)
                        .then(|| u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]))
                });
        }
        at = end;
    }
    None
}

#[tokio::test]
async fn an_http2_connection_is_told_the_stream_cap() {
    const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
    let received = http2_preface_answer().await;
    assert_eq!(
        http2_setting(&received, SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(100),
        "the default OPENTIME_HTTP2_MAX_STREAMS in the server's SETTINGS: {received:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_secs(2);
    let server = TestServer::builder()
        .embedded_store()
        .header_timeout_ms(500)
        .keepalive_timeout_secs(2)
        .start()
        .await;
    let mut stream = connect(&server).await;
    let first = healthz_on(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle for longer than the header timeout: keep-alive is bounded by the idle timeout only.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = healthz_on(&mut stream).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");

    let (received, after) = read_until_closed(&mut stream, idle_timeout + MARGIN).await;
    assert!(received.is_empty(), "nothing after the answer");
    assert!(
        after >= idle_timeout - Duration::from_millis(200),
        "closed after {after:?}, before the idle timeout"
    );
    assert!(closed_for(&server, "idle-timeout").await >= 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_connections() {
    let server = TestServer::builder()
        .embedded_store()
        .max_connections_per_address(3)
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&server).await);
    }
    let mut extra = connect(&server).await;
    let (received, _) = read_until_closed(&mut extra, MARGIN).await;
    assert!(received.is_empty(), "closed without an answer");
    // The connections within the cap are served.
    let answer = healthz_on(&mut held[0]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    drop(held);
    let served_again = eventually(MARGIN, || async {
        client()
            .get(server.url("/healthz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
    })
    .await;
    assert!(
        served_again,
        "a new connection is served once the others closed"
    );
    assert!(closed_for(&server, "address-cap").await >= 1.0);
    server.shutdown().await;
}
