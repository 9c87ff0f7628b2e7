//! The one way tests start an opentime server: `TestServer::builder()`, a few settings, then
//! `.start()`. Every server listens on a free local port with the test secret, the repo's
//! assets and (unless told otherwise) the repo's templates.

use super::{repo, token, RedisCluster, RedisServer, SECRET};
use opentime::clock::Clock;
use opentime::config::ServeArgs;
use opentime::RunningServer;
use std::path::{Path, PathBuf};

/// Where the server keeps contexts.
enum Store {
    Unset,
    Redis(String),
    /// A Redis Cluster's seed nodes.
    Cluster(String),
    /// The embedded store in a fresh temporary data directory, seeded from a directory of
    /// sample contexts.
    Embedded {
        seed: PathBuf,
    },
}

/// Builds a [`TestServer`]; see [`TestServer::builder`].
pub struct ServerBuilder {
    args: ServeArgs,
    store: Store,
    clock: Option<Clock>,
    dirs: Vec<tempfile::TempDir>,
}

impl ServerBuilder {
    /// Contexts come from this `redis-server`.
    pub fn redis(mut self, redis: &RedisServer) -> Self {
        self.store = Store::Redis(redis.url());
        self
    }

    /// Contexts come from this Redis Cluster.
    pub fn redis_cluster(mut self, cluster: &RedisCluster) -> Self {
        self.store = Store::Cluster(cluster.seeds());
        self
    }

    /// Contexts come from the Redis at this URL (`redis://…` or `redis+sentinel://…`).
    pub fn redis_url(mut self, url: &str) -> Self {
        self.store = Store::Redis(url.to_owned());
        self
    }

    /// Contexts live in the embedded store, in a temporary data directory seeded with the
    /// demo samples (`templates/demo/samples`).
    pub fn embedded_store(mut self) -> Self {
        self.store = Store::Embedded {
            seed: repo().join("templates/demo/samples"),
        };
        self
    }

    /// Contexts live in the embedded store, seeded from the `NAME.json` files of `seed`.
    pub fn embedded_store_seeded(mut self, seed: &Path) -> Self {
        self.store = Store::Embedded {
            seed: seed.to_owned(),
        };
        self
    }

    /// Templates from `dir` instead of the repo's.
    pub fn templates(mut self, dir: &Path) -> Self {
        self.args.common.templates = dir.to_owned();
        self
    }

    /// Keeps `dir` (copied templates, say) alive as long as the server.
    pub fn keep(mut self, dir: tempfile::TempDir) -> Self {
        self.dirs.push(dir);
        self
    }

    /// Renders read `clock` instead of the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn deadline_ms(mut self, ms: u64) -> Self {
        self.args.deadline_ms = ms;
        self
    }

    pub fn store_timeout_ms(mut self, ms: u64) -> Self {
        self.args.store_timeout_ms = ms;
        self
    }

    pub fn render_concurrency(mut self, permits: usize) -> Self {
        self.args.render_concurrency = Some(permits);
        self
    }

    /// Ingest API channels and their tokens, e.g. `&[("sms", SMS_TOKEN)]`.
    pub fn channel_tokens(mut self, channels: &[(&str, &str)]) -> Self {
        let list: Vec<String> = channels
            .iter()
            .map(|(channel, token)| format!("{channel}:{token}"))
            .collect();
        self.args.channel_tokens = Some(list.join(","));
        self
    }

    /// How many proxies in front of the server `X-Forwarded-For` may name.
    pub fn trusted_proxy_hops(mut self, hops: usize) -> Self {
        self.args.trusted_proxy_hops = hops;
        self
    }

    pub fn cors_origins(mut self, origins: &[&str]) -> Self {
        self.args.cors_origins = origins.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Locate readers with this GeoIP database.
    pub fn geoip_db(mut self, path: PathBuf) -> Self {
        self.args.sources.geoip_db = Some(path);
        self
    }

    /// Apple's relay egress list (`OPENTIME_APPLE_EGRESS_FILE`).
    pub fn apple_egress(mut self, path: PathBuf) -> Self {
        self.args.sources.apple_egress_file = Some(path);
        self
    }

    /// Image hosts that may resolve to private addresses (`OPENTIME_IMAGE_PRIVATE_HOSTS`).
    pub fn image_private_hosts(mut self, hosts: &[&str]) -> Self {
        self.args.sources.image_private_hosts = hosts.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `host=address` overrides of DNS for image fetches (`OPENTIME_IMAGE_RESOLVE`).
    pub fn image_resolve(mut self, entries: &[&str]) -> Self {
        self.args.sources.image_resolve = entries.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn image_max_bytes(mut self, bytes: u64) -> Self {
        self.args.sources.image_max_bytes = bytes;
        self
    }

    pub fn image_timeout_ms(mut self, ms: u64) -> Self {
        self.args.sources.image_timeout_ms = ms;
        self
    }

    /// Connections accepted at once (`OPENTIME_MAX_CONNECTIONS`).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.args.max_connections = connections;
        self
    }

    /// Connections one client address may hold (`OPENTIME_MAX_CONNECTIONS_PER_ADDRESS`, 0 = off).
    pub fn max_connections_per_address(mut self, connections: usize) -> Self {
        self.args.max_connections_per_address = connections;
        self
    }

    pub fn header_timeout_ms(mut self, ms: u64) -> Self {
        self.args.header_timeout_ms = ms;
        self
    }

    pub fn keepalive_timeout_secs(mut self, secs: u64) -> Self {
        self.args.keepalive_timeout_secs = secs;
        self
    }

    /// Any other setting, straight on the `ServeArgs`.
    pub fn configure(mut self, change: impl FnOnce(&mut ServeArgs)) -> Self {
        change(&mut self.args);
        self
    }

    pub async fn start(mut self) -> TestServer {
        match std::mem::replace(&mut self.store, Store::Unset) {
            Store::Unset => panic!("choose a store: .redis(&redis) or .embedded_store()"),
            Store::Redis(url) => self.args.redis.redis_url = Some(url),
            Store::Cluster(seeds) => self.args.redis.redis_cluster = Some(seeds),
            Store::Embedded { seed } => {
                let data = tempfile::tempdir().expect("temp dir");
                self.args.redis.redis_url = None;
                self.args.data_dir = data.path().to_owned();
                self.args.seed = seed;
                self.dirs.push(data);
            }
        }
        let running = match self.clock {
            Some(clock) => opentime::start_with_clock(self.args, clock).await,
            None => opentime::start(self.args).await,
        }
        .expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            running: Some(running),
            _dirs: self.dirs,
        }
    }
}

/// A running opentime server for one test.
pub struct TestServer {
    pub base: String,
    running: Option<RunningServer>,
    /// Keeps copied templates (or the embedded store's data) alive.
    _dirs: Vec<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a free local port with the test secret, the repo's assets and templates,
    /// a 2 s shutdown grace, and otherwise the `serve` defaults. Choose a store before
    /// `.start()`.
    pub fn builder() -> ServerBuilder {
        let mut args = ServeArgs::with_dirs(&repo().join("templates"), &repo().join("assets"));
        args.listen = "127.0.0.1:0".parse().expect("address");
        args.common.secret = Some(SECRET.to_owned());
        args.shutdown_grace_secs = 2;
        // A debug build's first render on a loaded 2-core CI machine can outlast the production
        // deadline (1 s); tests about the deadline set their own.
        args.deadline_ms = 5000;
        ServerBuilder {
            args,
            store: Store::Unset,
            clock: None,
            dirs: Vec::new(),
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.running.as_ref().expect("running").addr.port()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `path` on the admin listener (a server started with `OPENTIME_ADMIN_LISTEN`).
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self
            .running
            .as_ref()
            .and_then(|running| running.admin_addr)
            .expect("a server with an admin listener");
        format!("http://{admin}{path}")
    }

    /// The signed image URL of a block for a subscriber.
    pub fn signed(&self, campaign_block_ext: &str, subscriber: &str) -> String {
        format!(
            "{}/img/{campaign_block_ext}?s={subscriber}&t={}",
            self.base,
            token(subscriber)
        )
    }

    /// The signed HTML fragment URL of a block for a subscriber.
    pub fn signed_html(&self, campaign: &str, block: &str, subscriber: &str) -> String {
        format!(
            "{}/html/{campaign}/{block}.html?s={subscriber}&t={}",
            self.base,
            token(subscriber)
        )
    }

    /// Waits until `/readyz` says the store answers (the server connects to Redis in the
    /// background, answering with fallbacks until then); panics after 10 s.
    pub async fn wait_until_ready(&self) {
        let url = self.url("/readyz");
        let ready = super::eventually(std::time::Duration::from_secs(10), || async {
            super::get(&url).await.status == 200
        })
        .await;
        assert!(ready, "the server's store never became ready");
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A server on `redis` with the SMS and CRM channels of the ingest API, trusting
/// `trusted_proxy_hops` proxies in front of it: the set-up of the omnichannel tests.
pub async fn server_with_channels(redis: &RedisServer, trusted_proxy_hops: usize) -> TestServer {
    TestServer::builder()
        .redis(redis)
        .channel_tokens(&[("sms", super::SMS_TOKEN), ("crm", super::CRM_TOKEN)])
        .trusted_proxy_hops(trusted_proxy_hops)
        .start()
        .await
}
