//! The Redis store: subscriber contexts ([`context`]), lock-on-open ([`lock`]) and events
//! ([`events`]) in one Redis.
//!
//! One multiplexed connection (`ConnectionManager`) serves every request and reconnects by
//! itself. The first connection is made in the background, so the server starts and answers
//! with fallbacks even while Redis is down; until it is up, lookups fail at once instead of
//! waiting for a connect timeout on every open.

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
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                    .await
                    .map_err(to_store_error)
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
