//! A master found through Redis Sentinel, and followed when Sentinel fails it over.
//!
//! redis-rs finds the master (asking the sentinels, then checking that the node it names says
//! it is a master) but hands out a plain connection to that one address. This file keeps that
//! connection current:
//!
//! - a watch task asks a sentinel for the master's address every second
//!   (`SENTINEL get-master-addr-by-name`), and every connection switches to a newly named master
//!   on its next command;
//! - a command that fails in a way that says "not the master any more" (the connection drops or
//!   is refused, a timeout, `READONLY` from a demoted master) drops the connection, and the next
//!   command finds the master again.
//!
//! The failed command itself is not sent again: its caller decides (an open falls back, the
//! event writer retries its batch, the context API answers 503).

use super::target::{Credentials, NodeAddress};
use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the watch task asks where the master is.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The sentinels and what they last said, shared by every connection of one store.
pub(super) struct SentinelWatch {
    client: tokio::sync::Mutex<SentinelClient>,
    master_name: String,
    /// `host:port` of the master the sentinels named last (`None` until first asked).
    named: ArcSwapOption<String>,
    config: AsyncConnectionConfig,
    db: i64,
}

impl SentinelWatch {
    /// Prepares the watch and starts its task (it ends when the last connection is dropped).
    pub(super) fn start(
        sentinels: &[NodeAddress],
        master: &str,
        db: i64,
        credentials: &Credentials,
        response_timeout: Duration,
    ) -> RedisResult<Arc<Self>> {
        let nodes: Vec<String> = sentinels
            .iter()
            .map(|node| format!("redis://{node}"))
            .collect();
        let mut redis = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(username) = &credentials.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &credentials.password {
            redis = redis.set_password(password);
        }
        let node_info = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
        let client = SentinelClient::build(
            nodes,
            master.to_owned(),
            Some(node_info),
            SentinelServerType::Master,
        )?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(response_timeout));
        let watch = Arc::new(Self {
            client: tokio::sync::Mutex::new(client),
            master_name: master.to_owned(),
            named: ArcSwapOption::empty(),
            config,
            db,
        });
        tokio::spawn(watch_master(Arc::downgrade(&watch)));
        Ok(watch)
    }

    /// Connects to the master the sentinels name now (checked to be a master).
    async fn connect_master(&self, config: &AsyncConnectionConfig) -> RedisResult<Master> {
        let client = self.client.lock().await.async_get_client().await?;
        let address = client.get_connection_info().addr().to_string();
        let connection = client
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        self.named.store(Some(Arc::new(address.clone())));
        Ok(Master {
            address,
            connection,
        })
    }

    /// Asks a sentinel where the master is now.
    async fn ask(&self, sentinel: &mut Option<MultiplexedConnection>) -> RedisResult<String> {
        if sentinel.is_none() {
            let client = self.client.lock().await.async_get_sentinel_client().await?;
            *sentinel = Some(
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?,
            );
        }
        let Some(connection) = sentinel.as_mut() else {
            return Err((redis::ErrorKind::Client, "no sentinel connection").into());
        };
        let (host, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query_async(connection)
            .await?;
        Ok(format!("{host}:{port}"))
    }
}

/// Every [`WATCH_EVERY`], the master's address as a sentinel names it.
async fn watch_master(watch: Weak<SentinelWatch>) {
    let mut sentinel = None;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(watch) = watch.upgrade() else { return };
        match watch.ask(&mut sentinel).await {
            Ok(address) => {
                let before = watch.named.load_full();
                if before.as_deref() != Some(&address) {
                    if before.is_some() {
                        tracing::warn!(master = %address, "Sentinel names a new Redis master; switching to it");
                    }
                    watch.named.store(Some(Arc::new(address)));
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = error.category(),
                    "cannot ask Sentinel for the master"
                );
                sentinel = None;
            }
        }
    }
}

/// One connection to the current master.
struct Master {
    address: String,
    connection: MultiplexedConnection,
}

/// A connection that follows the master (cheap to clone: clones share it).
#[derive(Clone)]
pub(super) struct SentinelConnection {
    watch: Arc<SentinelWatch>,
    current: Arc<ArcSwapOption<Master>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
    config: AsyncConnectionConfig,
}

impl SentinelConnection {
    /// Connects to the master now (the first connection of a link).
    pub(super) async fn connect(
        watch: Arc<SentinelWatch>,
        response_timeout: Duration,
    ) -> RedisResult<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(response_timeout));
        let connection = Self {
            watch,
            current: Arc::new(ArcSwapOption::empty()),
            connecting: Arc::new(tokio::sync::Mutex::new(())),
            config,
        };
        connection.master().await?;
        Ok(connection)
    }

    /// The connection to the master the sentinels name, made again when they name another.
    async fn master(&self) -> RedisResult<Arc<Master>> {
        let is_current = |master: &Master| {
            let named = self.watch.named.load();
            named
                .as_deref()
                .is_none_or(|named| *named == master.address)
        };
        if let Some(master) = self.current.load_full().filter(|m| is_current(m)) {
            return Ok(master);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(master) = self.current.load_full().filter(|m| is_current(m)) {
            return Ok(master);
        }
        let master = Arc::new(self.watch.connect_master(&self.config).await?);
        tracing::info!(master = %master.address, "connected to the Redis master (Sentinel)");
        self.current.store(Some(Arc::clone(&master)));
        Ok(master)
    }

    /// Drops `master`'s connection (unless another has replaced it already).
    fn forget(&self, master: &Arc<Master>) {
        let previous = self.current.compare_and_swap(master, None);
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, master)) {
            tracing::warn!(master = %master.address, "dropping the connection to the Redis master; asking Sentinel again");
        }
    }
}

/// Whether an outcome says the connection no longer leads to a usable master.
fn lost_the_master(result: Result<&[Value], &redis::RedisError>) -> bool {
    match result {
        Err(error) => {
            error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_timeout()
                || error.code() == Some("READONLY")
        }
        Ok(values) => values
            .iter()
            .any(|value| matches!(value, Value::ServerError(e) if e.code() == "READONLY")),
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let master = self.master().await?;
            let mut connection = master.connection.clone();
            let result = connection.req_packed_command(cmd).await;
            if lost_the_master(result.as_ref().map(std::slice::from_ref)) {
                self.forget(&master);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let master = self.master().await?;
            let mut connection = master.connection.clone();
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if lost_the_master(result.as_ref().map(Vec::as_slice)) {
                self.forget(&master);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.watch.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demoted_masters_and_dropped_connections_are_left() {
        let reset: redis::RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(lost_the_master(Err(&reset)));
        let readonly =
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica.\r\n")
                .unwrap();
        assert!(lost_the_master(Ok(&[Value::Int(1), readonly])));
        let wrongtype =
            redis::parse_redis_value(b"-WRONGTYPE Operation against a key\r\n").unwrap();
        assert!(!lost_the_master(Ok(&[wrongtype])));
        assert!(!lost_the_master(Ok(&[Value::Okay])));
    }
}
