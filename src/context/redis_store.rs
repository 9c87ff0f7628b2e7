//! The Redis context store: `ctx:{SUB}` hashes, one JSON value per field.
//!
//! One multiplexed connection (`ConnectionManager`) serves every request and reconnects by
//! itself. The first connection is made in the background, so the server starts and answers
//! with fallbacks even while Redis is down; until it is up, lookups fail at once instead of
//! waiting for a connect timeout on every open.

use super::{parse_field_value, ContextFields, ContextStore, StoreError, StoreKind, SubscriberId};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long to wait between first-connection attempts while Redis is unreachable.
const CONNECT_RETRY: Duration = Duration::from_millis(250);

pub struct RedisStore {
    client: redis::Client,
    config: ConnectionManagerConfig,
    connection: OnceCell<ConnectionManager>,
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://host:port/db`); does not connect yet.
    pub fn new(url: &str, command_timeout: Duration) -> Result<Self, StoreError> {
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
    pub async fn connect_in_background(self: std::sync::Arc<Self>) {
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
    pub fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }
}

fn to_store_error(error: redis::RedisError) -> StoreError {
    if error.is_timeout() {
        StoreError::Timeout
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
    {
        StoreError::Unavailable(error.category().to_string())
    } else {
        StoreError::Backend(error.category().to_string())
    }
}

#[async_trait]
impl ContextStore for RedisStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }

    async fn load(&self, subscriber: &SubscriberId) -> Result<ContextFields, StoreError> {
        let mut connection = self.connection()?;
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(subscriber.context_key())
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(raw
            .into_iter()
            .map(|(field, value)| (field, parse_field_value(&value)))
            .collect())
    }

    async fn merge(
        &self,
        subscriber: &SubscriberId,
        fields: ContextFields,
    ) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection()?;
        let mut command = redis::cmd("HSET");
        command.arg(subscriber.context_key());
        for (field, value) in &fields {
            command.arg(field).arg(value.to_string());
        }
        command
            .query_async::<()>(&mut connection)
            .await
            .map_err(to_store_error)
    }

    async fn remove_field(
        &self,
        subscriber: &SubscriberId,
        field: &str,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection()?;
        let removed: i64 = redis::cmd("HDEL")
            .arg(subscriber.context_key())
            .arg(field)
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(removed > 0)
    }

    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<bool, StoreError> {
        let mut connection = self.connection()?;
        let removed: i64 = redis::cmd("DEL")
            .arg(subscriber.context_key())
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(removed > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(to_store_error)
    }
}
