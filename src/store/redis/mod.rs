//! The Redis store: subscriber contexts ([`context`]), lock-on-open ([`lock`]) and events
//! ([`events`]) in one Redis.
//!
//! One multiplexed connection (`ConnectionManager`) serves every request and reconnects by
//! itself. The first connection is made in the background, so the server starts and answers
//! with fallbacks even while Redis is down; until it is up, lookups fail at once instead of
//! waiting for a connect timeout on every open.
//!
//! When the first connection is made, the server's `redis_version` (`INFO server`) is logged,
//! and an error if it is older than 5.0: events need streams (`XADD`), so every event would be
//! refused (and counted in `opentime_events_failed_total`). Lock-on-open needs no particular
//! version: it claims with a Lua script rather than `SET … NX GET` (Redis ≥ 7.0, see [`lock`]).

mod context;
mod events;
mod lock;

use crate::context::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long to wait between first-connection attempts while Redis is unreachable.
const CONNECT_RETRY: Duration = Duration::from_millis(250);

pub(crate) struct RedisStore {
    client: redis::Client,
    config: ConnectionManagerConfig,
    connection: OnceCell<ConnectionManager>,
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://host:port/db`); does not connect yet.
    pub(crate) fn new(url: &str, command_timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("bad Redis URL: {}", e.category())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(command_timeout.max(Duration::from_millis(500))))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            client,
            config,
            connection: OnceCell::new(),
        })
    }

    /// Keeps trying to make the first connection until it succeeds. Spawned once at start-up.
    pub(crate) async fn connect_in_background(self: std::sync::Arc<Self>) {
        loop {
            match self.try_connect().await {
                Ok(_) => {
                    tracing::info!("connected to Redis");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "Redis not reachable yet; serving fallbacks meanwhile");
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
            }
        }
    }

    async fn try_connect(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get_or_try_init(|| async {
                let mut connection =
                    ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                        .await
                        .map_err(to_store_error)?;
                check_version(&mut connection).await;
                Ok(connection)
            })
            .await
            .cloned()
    }

    /// The shared connection, or `Unavailable` while the first connection is not made yet.
    pub(crate) fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }
}

/// The oldest Redis with everything opentime uses (streams).
const OLDEST_REDIS: (u32, u32) = (5, 0);

/// Logs the server's version; an error when it is too old for events.
async fn check_version(connection: &mut ConnectionManager) {
    let info: Result<String, _> = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await;
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
mod testkit {
    use super::RedisStore;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub(super) struct TestRedis {
        port: u16,
        child: Child,
        _dir: tempfile::TempDir,
    }

    impl TestRedis {
        pub(super) fn start() -> Self {
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

        /// A connected store on this server.
        pub(super) async fn store(&self) -> RedisStore {
            let store = RedisStore::new(&self.url(), Duration::from_secs(2)).expect("store");
            store.try_connect().await.expect("connect");
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
