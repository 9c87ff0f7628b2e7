//! Shared test harness: a real `redis-server` per test on a free port, the real opentime
//! server on another, and small helpers to speak HTTP and decode what comes back.
#![allow(dead_code)]

use opentime::config::ServeArgs;
use opentime::signing::Signer;
use opentime::RunningServer;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "integration-test-secret-0123456789";

/// The repository root (where `templates/` and `assets/` live).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A `redis-server` owned by one test; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(mut connection) =
                redis::Client::open(self.url()).and_then(|c| c.get_connection())
            {
                if redis::cmd("PING").query::<String>(&mut connection).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis")
    }

    /// Stops the server (as an outage would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Writes a sample context (a JSON object of fields) with one HSET per field, as the
    /// channels do.
    pub fn load_sample(&self, subscriber: &str, sample: &Path) {
        let text = std::fs::read_to_string(sample).expect("sample file");
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).expect("sample JSON object");
        let mut connection = self.connection();
        for (field, value) in fields {
            redis::cmd("HSET")
                .arg(format!("ctx:{{{subscriber}}}"))
                .arg(field)
                .arg(value.to_string())
                .query::<()>(&mut connection)
                .expect("HSET");
        }
    }

    pub fn hset(&self, subscriber: &str, field: &str, value: &serde_json::Value) {
        redis::cmd("HSET")
            .arg(format!("ctx:{{{subscriber}}}"))
            .arg(field)
            .arg(value.to_string())
            .query::<()>(&mut self.connection())
            .expect("HSET");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Server settings for tests: a free port, the test secret, the repo's assets and templates.
pub fn test_args(templates: &Path, redis_url: Option<String>) -> ServeArgs {
    let mut args = ServeArgs::with_dirs(templates, &repo().join("assets"));
    args.listen = "127.0.0.1:0".parse().expect("address");
    args.common.secret = Some(SECRET.to_owned());
    args.redis_url = redis_url;
    args.shutdown_grace_secs = 2;
    args
}

/// A running opentime server for one test.
pub struct TestServer {
    pub base: String,
    pub running: Option<RunningServer>,
    /// Keeps a copied templates directory (or the embedded store's data) alive.
    pub _dirs: Vec<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(args: ServeArgs) -> Self {
        let running = opentime::start(args).await.expect("server starts");
        Self {
            base: format!("http://{}", running.addr),
            running: Some(running),
            _dirs: Vec::new(),
        }
    }

    /// A server whose renders read `clock` instead of the system clock.
    pub async fn start_with_clock(args: ServeArgs, clock: opentime::clock::Clock) -> Self {
        let running = opentime::start_with_clock(args, clock)
            .await
            .expect("server starts");
        Self {
            base: format!("http://{}", running.addr),
            running: Some(running),
            _dirs: Vec::new(),
        }
    }

    /// A server on a real Redis, with the repo's templates.
    pub async fn with_redis(redis: &RedisServer) -> Self {
        Self::start(test_args(&repo().join("templates"), Some(redis.url()))).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The signed image URL of a block for a subscriber.
    pub fn signed(&self, campaign_block_ext: &str, subscriber: &str) -> String {
        let token = Signer::from_secrets(SECRET)
            .expect("secret")
            .token(subscriber);
        format!(
            "{}/img/{campaign_block_ext}?s={subscriber}&t={token}",
            self.base
        )
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A copy of the repository's templates that a test may change.
pub fn copy_templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo().join("templates"), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn png(&self) -> image::RgbaImage {
        decode_png(&self.body)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

pub async fn get(url: &str) -> Answer {
    send(client().get(url)).await
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Asserts two renders show the same picture: same size, every channel within 2 levels (a
/// text drawn from a kept tile is composited with 8-bit rounding; see `render/text_tiles.rs`).
#[track_caller]
pub fn assert_same_picture(actual: &image::RgbaImage, expected: &image::RgbaImage) {
    assert_eq!(actual.dimensions(), expected.dimensions(), "picture size");
    let off = actual
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(off <= 2, "pictures differ by up to {off} levels");
}

pub fn decode_png(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_rgba8()
}

/// Renders a block offline from a context, as the server would, for pixel comparisons.
pub fn render_offline(
    campaign: &str,
    block: &str,
    fields: &serde_json::Value,
    subscriber: &str,
) -> Vec<u8> {
    use opentime::blocks::Campaign;
    use opentime::open::TemplateInput;
    use opentime::render::{Format, Renderer};
    let renderer = Renderer::load(&repo().join("assets")).expect("assets");
    let campaign =
        Campaign::load(&repo().join("templates").join(campaign), &renderer).expect("campaign");
    let block = campaign.block(block).expect("block");
    let fields = fields.as_object().cloned().unwrap_or_default();
    let input = TemplateInput::for_block(
        block,
        &fields,
        Some(subscriber),
        chrono::Utc::now(),
        Default::default(),
    );
    opentime::open::render_block(&renderer, &campaign, block, Format::Png, 1, &input)
        .expect("render")
        .bytes
        .to_vec()
}

pub fn sample(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(
        repo()
            .join("templates/demo/samples")
            .join(format!("{name}.json")),
    )
    .expect("sample");
    serde_json::from_str(&text).expect("sample JSON")
}

/// Polls `check` until it is true or `limit` passes; returns whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
