//! The Redis store: subscriber contexts ([`context`]), lock-on-open ([`lock`]) and events
//! ([`events`]) in one Redis server, a master watched by Sentinel, or a Redis Cluster
//! ([`target`]).
//!
//! The store keeps three connections ([`link`]), so no kind of traffic waits behind another:
//! opens' lookups and lock claims; the context API's writes, which `WAIT` for replicas
//! ([`replication`]; `WAIT` holds up every later command on its connection); and the event
//! writer's batches. Each is made in the background, so the server starts and answers with
//! fallbacks even while Redis is down; until it is up, lookups fail at once instead of waiting
//! for a connect timeout on every open.
//!
//! Every key of a subscriber carries `{SUB}`, so on a Cluster they share one slot ([`slots`]);
//! no command and no script touches keys of two slots, and the event stream is split into
//! shards across slots ([`streams`]).
//!
//! When the first connection is made, the server's `redis_version` (`INFO server`) is logged,
//! and an error if it is older than 5.0: events need streams (`XADD`), so every event would be
//! refused (and counted in `opentime_events_failed_total`). Lock-on-open needs no particular
//! version: it claims with a Lua script rather than `SET … NX GET` (Redis ≥ 7.0, see [`lock`]).

pub(crate) mod consumer;
mod context;
mod events;
mod link;
mod lock;
pub(crate) mod replication;
mod sentinel;
pub(crate) mod slots;
pub(crate) mod streams;
mod tally;
pub(crate) mod target;

use crate::context::StoreError;
use link::{Connection, Link, LinkSettings};
use replication::{ReplicaView, WritePolicy};
use sentinel::SentinelWatch;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use streams::EventStreams;
use target::RedisTarget;

/// How long to wait between first-connection attempts while Redis is unreachable.
const CONNECT_RETRY: Duration = Duration::from_millis(250);

/// What the Redis store is told at start-up.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub target: RedisTarget,
    /// The open path's store deadline (`OPENTIME_STORE_TIMEOUT_MS`).
    pub command_timeout: Duration,
    pub streams: EventStreams,
    pub writes: WritePolicy,
}

pub(crate) struct RedisStore {
    /// Opens: context lookups and lock claims.
    reads: Link,
    /// The context API's writes and erasures (each followed by a `WAIT`).
    writes: Link,
    /// The event writer's batches.
    events: Link,
    replicas: ReplicaView,
    streams: EventStreams,
    target: Arc<RedisTarget>,
    /// Whether every master the event writer wrote to last has its two scripts (`events.rs`).
    event_scripts_loaded: AtomicBool,
    /// Whether the event writer's last batch failed (the next routes by slot, `events.rs`).
    event_batch_failed: AtomicBool,
}

impl RedisStore {
    /// How many event streams (shards) the store writes and reads.
    pub(crate) fn stream_shards(&self) -> u16 {
        self.streams.shards()
    }

    /// Prepares a store; does not connect yet (see [`RedisStore::connect_in_background`]).
    pub(crate) fn new(settings: RedisSettings) -> Result<Self, StoreError> {
        let target = Arc::new(settings.target);
        let sentinel = match target.as_ref() {
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
                credentials,
            } => Some(
                SentinelWatch::start(
                    sentinels,
                    master,
                    *db,
                    credentials,
                    settings.command_timeout.max(Duration::from_millis(500)),
                )
                .map_err(|e| StoreError::Unavailable(format!("Sentinel: {}", e.category())))?,
            ),
            _ => None,
        };
        if let RedisTarget::Single { url } = target.as_ref() {
            redis::Client::open(url.as_str())
                .map_err(|e| StoreError::Unavailable(format!("bad Redis URL: {}", e.category())))?;
        }
        // A write waits up to the WAIT, and a Cluster may redirect it once or twice.
        let slow = (settings.writes.wait + Duration::from_secs(1)).max(Duration::from_secs(2));
        let link = |name, response_timeout| {
            Link::new(
                Arc::clone(&target),
                sentinel.clone(),
                LinkSettings {
                    name,
                    response_timeout,
                },
            )
        };
        Ok(Self {
            reads: link(
                "opens",
                settings.command_timeout.max(Duration::from_millis(500)),
            ),
            writes: link("writes", slow),
            events: link("events", slow),
            replicas: ReplicaView::new(settings.writes),
            streams: settings.streams,
            target,
            event_scripts_loaded: AtomicBool::new(false),
            event_batch_failed: AtomicBool::new(false),
        })
    }

    /// Keeps trying to make the first connections (all three at once) until they are made.
    /// Spawned once at start-up.
    pub(crate) async fn connect_in_background(self: Arc<Self>) {
        tokio::join!(
            self.keep_connecting(&self.reads),
            self.keep_connecting(&self.writes),
            self.keep_connecting(&self.events),
        );
    }

    async fn keep_connecting(&self, link: &Link) {
        let mut warned = false;
        loop {
            match link.connect().await {
                Ok(mut connection) => {
                    if link.name() == "opens" {
                        tracing::info!(target = %self.target.describe(), "connected to Redis");
                        check_version(&mut connection).await;
                    }
                    return;
                }
                Err(error) => {
                    if !warned && link.name() == "opens" {
                        tracing::warn!(
                            error = error.category(),
                            target = %self.target.describe(),
                            "Redis not reachable yet; serving fallbacks meanwhile"
                        );
                        warned = true;
                    }
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
            }
        }
    }

    /// Connects every link now (tests and the `events` command).
    pub(crate) async fn connect(&self) -> Result<(), StoreError> {
        for link in [&self.reads, &self.writes, &self.events] {
            link.connect().await.map_err(to_store_error)?;
        }
        Ok(())
    }
}

/// The oldest Redis with everything opentime uses (streams).
const OLDEST_REDIS: (u32, u32) = (5, 0);

/// Logs the server's version; an error when it is too old for events.
async fn check_version(connection: &mut Connection) {
    // On a Cluster, one node answers for all (they run the same version).
    let info: Result<String, _> = connection
        .on_any_node(redis::cmd("INFO").arg("server"))
        .await
        .and_then(|value| Ok(redis::from_redis_value(value)?));
    let version = match info.as_deref().map(redis_version) {
        Ok(Some(version)) => version,
        Ok(None) => {
            tracing::warn!("INFO server has no redis_version; cannot check the Redis version");
            return;
        }
        Err(error) => {
            tracing::warn!(
                error = error.category(),
                "cannot read the Redis version (INFO server)"
            );
            return;
        }
    };
    if version < OLDEST_REDIS {
        tracing::error!(
            version = %format!("{}.{}", version.0, version.1),
            "Redis is older than 5.0: it has no streams, so events cannot be written (each is dropped and counted in opentime_events_failed_total)"
        );
    } else {
        tracing::info!(version = %format!("{}.{}", version.0, version.1), "Redis version");
    }
}

/// `redis_version:7.2.4` in `INFO server` text → (7, 2).
fn redis_version(info: &str) -> Option<(u32, u32)> {
    let value = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))?;
    let mut parts = value.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

pub(super) fn to_store_error(error: redis::RedisError) -> StoreError {
    if error.is_timeout() {
        StoreError::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
    {
        StoreError::Unavailable(error.category().to_string())
    } else {
        StoreError::Backend(error.category().to_string())
    }
}

/// A real `redis-server` for the unit tests of this folder, on a free port, killed when
/// dropped (like `tests/common/redis.rs`; `scripts/test` installs redis-server).
#[cfg(test)]
pub(crate) mod testkit {
    use super::{EventStreams, RedisSettings, RedisStore, RedisTarget, WritePolicy};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub(crate) struct TestRedis {
        port: u16,
        child: Child,
        _dir: tempfile::TempDir,
    }

    impl TestRedis {
        pub(crate) fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free local port");
            let dir = tempfile::tempdir().expect("temp dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (scripts/test installs it)");
            let redis = Self {
                port,
                child,
                _dir: dir,
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(mut connection) =
                    redis::Client::open(redis.url()).and_then(|c| c.get_connection())
                {
                    if redis::cmd("PING").query::<String>(&mut connection).is_ok() {
                        return redis;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("redis-server did not start on port {port}");
        }

        pub(super) fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
        }

        pub(super) fn connection(&self) -> redis::Connection {
            redis::Client::open(self.url())
                .and_then(|c| c.get_connection())
                .expect("connect to the test redis")
        }

        pub(super) fn hset(&self, key: &str, field: &str, value: &str) {
            redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value)
                .query::<()>(&mut self.connection())
                .expect("HSET");
        }

        /// A connected store on this server (one event stream, waiting for one replica).
        pub(crate) async fn store(&self) -> RedisStore {
            self.store_with(1).await
        }

        /// A connected store on this server whose events go to `shards` streams.
        pub(super) async fn store_with(&self, shards: u16) -> RedisStore {
            let settings = RedisSettings {
                target: RedisTarget::Single { url: self.url() },
                command_timeout: Duration::from_secs(2),
                streams: EventStreams::new(shards),
                writes: WritePolicy {
                    replicas: 1,
                    wait: Duration::from_millis(500),
                },
            };
            let store = RedisStore::new(settings).expect("store");
            store.connect().await.expect("connect");
            store
        }
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_from_info() {
        let info = "# Server\r\nredis_version:6.2.14\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(redis_version(info), Some((6, 2)));
        assert_eq!(redis_version("redis_version:7.0.15\n"), Some((7, 0)));
        assert_eq!(redis_version("# Server\n"), None);
        assert!(redis_version("redis_version:4.0.9").unwrap() < OLDEST_REDIS);
    }
}
