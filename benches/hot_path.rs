//! The hot path under load: signed open → context read from a real `redis-server` → render
//! cache hit → PNG bytes, measured beside a minimal hyper server that returns the same bytes
//! from memory, on the same machine, in the same run.
//!
//! `cargo bench --bench hot_path` (needs `redis-server` on the PATH; `scripts/test` installs it).
//! `HOT_PATH_SECONDS` (default 5) and `HOT_PATH_CONNECTIONS` (default 32) tune the load.
//! Without `--bench` (as under `cargo test --all-targets`) it runs a half-second smoke load.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentime::signing::Signer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "hot-path-benchmark-secret-123";
/// Opens come from a person's mail client (a fetch without a User-Agent is a machine's, which
/// opentime serves alike but records differently).
const PERSON: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    let redis = Redis(child, port);
    let url = format!("redis://127.0.0.1:{port}/0");
    for _ in 0..200 {
        if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
            let text = std::fs::read_to_string(repo().join("templates/demo/samples/alice.json"))
                .expect("sample");
            let fields: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).expect("json");
            for (field, value) in fields {
                let _: () = redis::cmd("HSET")
                    .arg("ctx:{alice}")
                    .arg(field)
                    .arg(value.to_string())
                    .query(&mut c)
                    .expect("HSET");
            }
            return redis;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not start");
}

/// A minimal hyper server answering every request with `body`.
async fn baseline_server(body: Bytes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-type", "image/png")
                                .body(Full::new(body))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct LoadResult {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl LoadResult {
    fn percentile(&self, p: f64) -> f64 {
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` keep-alive connections, each sending GETs back to back for `duration`.
async fn load(
    addr: SocketAddr,
    path_and_query: String,
    connections: usize,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let target = path_and_query.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let request = Request::get(target.as_str())
                    .header("host", "bench")
                    .header("user-agent", PERSON)
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let sent = Instant::now();
                let response = sender.send_request(request).await.expect("response");
                assert_eq!(response.status(), 200);
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                assert!(body.len() > 1000);
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.expect("load task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    LoadResult {
        requests: latencies_us.len(),
        seconds,
        latencies_us,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::var("HOT_PATH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let connections: usize = std::env::var("HOT_PATH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let duration = if full {
        Duration::from_secs(seconds)
    } else {
        Duration::from_millis(500)
    };

    let redis = start_redis();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (server, baseline_addr, path, bytes) = server_runtime.block_on(async {
        let mut args = opentime::config::ServeArgs::with_dirs(
            &repo().join("templates"),
            &repo().join("assets"),
        );
        args.listen = "127.0.0.1:0".parse().expect("addr");
        args.redis.redis_url = Some(format!("redis://127.0.0.1:{}/0", redis.1));
        args.common.secret = Some(SECRET.into());
        args.watch = false;
        let server = opentime::start(args).await.expect("server");
        let token = Signer::from_secrets(SECRET).expect("secret").token("alice");
        let path = format!("/img/demo/cart.png?s=alice&t={token}");
        // Warm the render cache (and wait for the Redis connection).
        let mut bytes = Bytes::new();
        for _ in 0..100 {
            let stream = TcpStream::connect(server.addr).await.expect("connect");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let response = sender
                .send_request(
                    Request::get(path.as_str())
                        .header("host", "bench")
                        .header("user-agent", PERSON)
                        .body(Empty::<Bytes>::new())
                        .expect("req"),
                )
                .await
                .expect("response");
            let fallback = response.headers().contains_key("x-opentime-fallback");
            bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            if !fallback {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let baseline = baseline_server(bytes.clone()).await;
        (server, baseline, path, bytes)
    });
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let ours = client_runtime.block_on(load(server.addr, path.clone(), connections, duration));
    let baseline = client_runtime.block_on(load(baseline_addr, path, connections, duration));
    println!("hot path: signed open -> Redis context read -> render cache hit ({} B PNG), {connections} connections, {:.1} s each", bytes.len(), duration.as_secs_f64());
    for (name, result) in [
        ("opentime", &ours),
        ("baseline hyper, bytes from memory", &baseline),
    ] {
        println!(
            "  {name:34} {:>9.0} req/s   median {:.3} ms   p99 {:.3} ms",
            result.rate(),
            result.percentile(0.5),
            result.percentile(0.99)
        );
    }
    println!(
        "  throughput ratio opentime / baseline: {:.2}",
        ours.rate() / baseline.rate()
    );
    server_runtime.block_on(server.shutdown());
    drop(redis);
}
