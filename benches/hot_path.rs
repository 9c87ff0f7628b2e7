//! The hot path under load: signed open → context read from a real `redis-server` → render
//! cache hit → PNG bytes, with the open event recorded, measured beside a minimal hyper server
//! that returns the same bytes from memory. Both servers run as processes of their own (the
//! release `opentime serve`, and this bench re-run as the bare server), so each one's CPU time
//! is read from `/proc`; the load generator is wrk-like (keep-alive connections sending GETs
//! back to back on two threads) and shares the machine with them and Redis. Rounds alternate
//! the two servers, so a machine whose speed drifts moves both.
//!
//! `cargo bench --bench hot_path` (needs `redis-server` on the PATH; `scripts/test` installs it).
//! `HOT_PATH_SECONDS` (default 5), `HOT_PATH_CONNECTIONS` (default 64) and `HOT_PATH_ROUNDS`
//! (default 3) tune the load. `HOT_PATH_COMPARE_BIN=path/to/opentime` adds a third server, an
//! earlier build, to every round (a before/after measured in the same run). Without `--bench` (as under `cargo test --all-targets`) it runs
//! one half-second round.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentime::signing::Signer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "hot-path-benchmark-secret-123";
/// Opens come from a person's mail client (a fetch without a User-Agent is a machine's, which
/// opentime serves alike but records differently).
const PERSON: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// Set in the environment of this bench re-run as the bare server: the file of bytes to serve.
const BARE_BODY: &str = "HOT_PATH_BARE_BODY";
/// And the port it listens on.
const BARE_PORT: &str = "HOT_PATH_BARE_PORT";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed when dropped.
struct Process(Child);

impl Process {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let per_second = 100.0; // USER_HZ on Linux
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / per_second
}

fn redis_command(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|c| c.get_connection())
        .expect("redis connection")
}

/// A `redis-server` on a free port holding Alice's sample context.
fn start_redis() -> (Process, u16) {
    let port = free_port();
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
    let redis = Process(child);
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
            return (redis, port);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server did not start");
}

/// An opentime server (`binary`) on a free port, reading Alice's context from `redis_port`.
fn start_opentime(binary: &Path, redis_port: u16) -> (Process, SocketAddr) {
    let port = free_port();
    let child = Command::new(binary)
        .arg("serve")
        .env("OPENTIME_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "OPENTIME_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}/0"),
        )
        .env("OPENTIME_SECRET", SECRET)
        .env("OPENTIME_TEMPLATES", repo().join("templates"))
        .env("OPENTIME_ASSETS", repo().join("assets"))
        .env("OPENTIME_WATCH", "false")
        // One load generator stands for many readers behind a CDN: no per-address cap.
        .env("OPENTIME_MAX_CONNECTIONS_PER_ADDRESS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("opentime binary");
    (Process(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// This bench re-run as the bare server, serving `body`.
fn start_bare(body: &Path) -> (Process, SocketAddr) {
    let port = free_port();
    let child = Command::new(std::env::current_exe().expect("bench path"))
        .env(BARE_BODY, body)
        .env(BARE_PORT, port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("bare server");
    (Process(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The bare server's process: a minimal hyper server answering every request with the bytes
/// of `body_file`, on as many threads as opentime's runtime uses.
fn run_bare_server(body_file: &str, port: u16) -> ! {
    let body = Bytes::from(std::fs::read(body_file).expect("bare body"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
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
    })
}

/// One GET on a new connection: (status, whether it is a fallback, body).
async fn get_once(addr: SocketAddr, path: &str) -> Option<(u16, bool, Bytes)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get(path)
                .header("host", "bench")
                .header("user-agent", PERSON)
                .body(Empty::<Bytes>::new())
                .ok()?,
        )
        .await
        .ok()?;
    let status = response.status().as_u16();
    let fallback = response.headers().contains_key("x-opentime-fallback");
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, fallback, body))
}

/// Waits until `addr` answers `path` with a rendered 200 (the server started, its Redis
/// connection is up, the render cache holds the block); returns the bytes.
async fn warm(addr: SocketAddr, path: &str) -> Bytes {
    for _ in 0..400 {
        if let Some((200, false, body)) = get_once(addr, path).await {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} never answered {path} with a rendered image");
}

struct LoadResult {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
    /// CPU seconds the server process used during the load.
    server_cpu: f64,
    /// CPU seconds Redis used during the load.
    redis_cpu: f64,
    /// Socket reads Redis processed during the load (`total_reads_processed`): how well the
    /// server's commands share its writes.
    redis_reads: u64,
    /// Answers that were the block's fallback (a store timeout under load, say), not a hit.
    fallbacks: usize,
}

impl LoadResult {
    fn percentile(&self, p: f64) -> f64 {
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn server_us_per_request(&self) -> f64 {
        self.server_cpu * 1e6 / self.requests as f64
    }
    fn redis_us_per_request(&self) -> f64 {
        self.redis_cpu * 1e6 / self.requests as f64
    }
    fn redis_reads_per_request(&self) -> f64 {
        self.redis_reads as f64 / self.requests as f64
    }
}

/// Redis's count of socket reads it has processed (`INFO stats`).
fn redis_reads(redis_port: u16) -> u64 {
    let text: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut redis_command(redis_port))
        .expect("INFO");
    text.lines()
        .find_map(|line| line.strip_prefix("total_reads_processed:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `connections` keep-alive connections, each sending GETs back to back for `duration`.
async fn load(
    addr: SocketAddr,
    path_and_query: &str,
    connections: usize,
    duration: Duration,
    expected_bytes: Option<usize>,
    (server_pid, redis_pid, redis_port): (u32, u32, u16),
) -> LoadResult {
    let mut senders = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        senders.push(sender);
    }
    let (server_before, redis_before) = (cpu_seconds(server_pid), cpu_seconds(redis_pid));
    let reads_before = redis_reads(redis_port);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let target = path_and_query.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut fallbacks) = (Vec::new(), 0);
            while started.elapsed() < duration {
                let request = Request::get(target.as_str())
                    .header("host", "bench")
                    .header("user-agent", PERSON)
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let sent = Instant::now();
                let response = sender.send_request(request).await.expect("response");
                assert_eq!(response.status(), 200);
                fallbacks += usize::from(response.headers().contains_key("x-opentime-fallback"));
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                if let Some(expected) = expected_bytes {
                    assert_eq!(body.len(), expected, "the same bytes every time");
                }
                assert!(body.len() > 1000, "an image");
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (latencies, fallbacks)
        }));
    }
    let (mut latencies_us, mut fallbacks) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, fell_back) = task.await.expect("load task");
        latencies_us.extend(latencies);
        fallbacks += fell_back;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (server_cpu, redis_cpu) = (
        cpu_seconds(server_pid) - server_before,
        cpu_seconds(redis_pid) - redis_before,
    );
    // Less the INFO command's own read.
    let redis_reads = redis_reads(redis_port).saturating_sub(reads_before + 1);
    latencies_us.sort_unstable();
    LoadResult {
        requests: latencies_us.len(),
        seconds,
        latencies_us,
        server_cpu,
        redis_cpu,
        redis_reads,
        fallbacks,
    }
}

/// One server under test, its runs and its ratio to the bare server per round.
struct Contender {
    name: &'static str,
    process: Process,
    addr: SocketAddr,
    runs: Vec<LoadResult>,
    ratios: Vec<f64>,
}

/// Alice's `email.open_count` (folded from the open events opentime wrote).
fn open_count(redis_port: u16) -> u64 {
    let email: Option<String> = redis::cmd("HGET")
        .arg("ctx:{alice}")
        .arg("email")
        .query(&mut redis_command(redis_port))
        .expect("HGET");
    email
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok())
        .and_then(|e| e.get("open_count")?.as_u64())
        .unwrap_or(0)
}

/// Redis's own count per command: (calls, µs spent), from `INFO commandstats`.
fn command_stats(redis_port: u16) -> std::collections::BTreeMap<String, (u64, u64)> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis_command(redis_port))
        .expect("INFO");
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let number = |key: &str| {
                rest.split(',')
                    .find_map(|pair| pair.strip_prefix(key)?.parse::<u64>().ok())
            };
            Some((name.to_owned(), (number("calls=")?, number("usec=")?)))
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(name: &str, result: &LoadResult) {
    println!(
        "  {name:9} {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   server CPU {:>5.1} µs/req   Redis CPU {:>4.1} µs/req ({:.2} socket reads)   fallbacks {}",
        result.rate(),
        result.percentile(0.5),
        result.percentile(0.99),
        result.server_us_per_request(),
        result.redis_us_per_request(),
        result.redis_reads_per_request(),
        result.fallbacks,
    );
}

fn main() {
    if let (Ok(body), Ok(port)) = (std::env::var(BARE_BODY), std::env::var(BARE_PORT)) {
        run_bare_server(&body, port.parse().expect("port"));
    }
    let full = std::env::args().any(|a| a == "--bench");
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let connections = setting("HOT_PATH_CONNECTIONS", 64) as usize;
    let (duration, rounds) = if full {
        (
            Duration::from_secs(setting("HOT_PATH_SECONDS", 5)),
            setting("HOT_PATH_ROUNDS", 3).max(1) as usize,
        )
    } else {
        (Duration::from_millis(500), 1)
    };

    let (redis, redis_port) = start_redis();
    let mut contenders = Vec::new();
    let binaries = [
        (
            "opentime",
            Some(PathBuf::from(env!("CARGO_BIN_EXE_opentime"))),
        ),
        (
            "before",
            std::env::var_os("HOT_PATH_COMPARE_BIN").map(PathBuf::from),
        ),
    ];
    for (name, binary) in binaries {
        if let Some(binary) = binary {
            let (process, addr) = start_opentime(&binary, redis_port);
            contenders.push(Contender {
                name,
                process,
                addr,
                runs: Vec::new(),
                ratios: Vec::new(),
            });
        }
    }
    let token = Signer::from_secrets(SECRET).expect("secret").token("alice");
    let path = format!("/img/demo/cart.png?s=alice&t={token}");
    // The load generator: two threads, as `wrk -t2`.
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bytes = client.block_on(warm(contenders[0].addr, &path));
    for contender in &contenders[1..] {
        let theirs = client.block_on(warm(contender.addr, &path));
        if theirs != bytes {
            println!(
                "note: {} serves {} B where opentime serves {} B",
                contender.name,
                theirs.len(),
                bytes.len()
            );
        }
    }
    let body_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(body_file.path(), &bytes).expect("body file");
    let (bare, bare_addr) = start_bare(body_file.path());
    client.block_on(warm(bare_addr, &path));

    println!(
        "hot path: signed open -> Redis context read -> render cache hit ({} B PNG) -> open event; \
         {connections} connections, {:.1} s per run, {rounds} rounds alternating",
        bytes.len(),
        duration.as_secs_f64()
    );
    // The warm-up's own opens are written in the background: let them land first.
    std::thread::sleep(Duration::from_millis(500));
    let opens_before = open_count(redis_port);
    let commands_before = command_stats(redis_port);
    let mut opens_answered = 0;
    let mut baseline = Vec::new();
    for round in 1..=rounds {
        println!("round {round}:");
        let mut results = Vec::new();
        for contender in &contenders {
            let result = client.block_on(load(
                contender.addr,
                &path,
                connections,
                duration,
                None,
                (contender.process.pid(), redis.pid(), redis_port),
            ));
            opens_answered += result.requests;
            results.push(result);
        }
        let bare_run = client.block_on(load(
            bare_addr,
            &path,
            connections,
            duration,
            Some(bytes.len()),
            (bare.pid(), redis.pid(), redis_port),
        ));
        for (contender, result) in contenders.iter_mut().zip(results) {
            report(contender.name, &result);
            let ratio = result.rate() / bare_run.rate();
            println!("    throughput ratio {} / bare: {ratio:.3}", contender.name);
            contender.ratios.push(ratio);
            contender.runs.push(result);
        }
        report("bare", &bare_run);
        baseline.push(bare_run);
    }
    // The events are written in the background: give the writer a moment to catch up.
    let mut recorded = 0;
    for _ in 0..100 {
        recorded = open_count(redis_port) - opens_before;
        if recorded >= opens_answered as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let medians = |runs: &[LoadResult], value: &dyn Fn(&LoadResult) -> f64| {
        median(runs.iter().map(value).collect())
    };
    println!("medians over {rounds} rounds:");
    let mut rows: Vec<(&str, &[LoadResult])> = contenders
        .iter()
        .map(|c| (c.name, c.runs.as_slice()))
        .collect();
    rows.push(("bare", &baseline));
    for (name, runs) in rows {
        println!(
            "  {name:9} {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   server CPU {:>5.1} µs/req   Redis CPU {:>4.1} µs/req ({:.2} socket reads)",
            medians(runs, &LoadResult::rate),
            medians(runs, &|r| r.percentile(0.5)),
            medians(runs, &|r| r.percentile(0.99)),
            medians(runs, &LoadResult::server_us_per_request),
            medians(runs, &LoadResult::redis_us_per_request),
            medians(runs, &LoadResult::redis_reads_per_request),
        );
    }
    for contender in &contenders {
        println!(
            "  throughput ratio {} / bare (median of rounds): {:.3}",
            contender.name,
            median(contender.ratios.clone())
        );
    }
    println!("  open events recorded: {recorded} of {opens_answered} opens answered");
    println!("  Redis commands per open (all servers, all rounds):");
    for (name, (calls, usec)) in command_stats(redis_port) {
        let (calls_before, usec_before) = commands_before.get(&name).copied().unwrap_or((0, 0));
        let (calls, usec) = (calls - calls_before, usec - usec_before);
        if calls > 0 && name != "info" && name != "hget" {
            println!(
                "    {name:12} {:>7.3} calls   {:>6.2} µs",
                calls as f64 / opens_answered as f64,
                usec as f64 / opens_answered as f64
            );
        }
    }
    assert_eq!(
        recorded, opens_answered as u64,
        "every open answered is recorded as an event"
    );
    drop(contenders);
    drop(bare);
    drop(redis);
}
