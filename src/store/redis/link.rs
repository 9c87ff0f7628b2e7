//! One connection to the configured Redis, whatever its shape: a server (redis-rs's
//! `ConnectionManager`, which reconnects by itself), a master behind Sentinel
//! ([`super::sentinel`], which follows failovers) or a Redis Cluster (redis-rs's cluster
//! connection: one connection per node, commands routed by slot, `MOVED`/`ASK` followed and the
//! slot map rebuilt when the topology changes).
//!
//! A [`Link`] is made in the background, so the server starts (and answers with fallbacks)
//! while Redis is unreachable; until it is up, commands fail at once instead of waiting for a
//! connect timeout on every open.

use super::sentinel::{SentinelConnection, SentinelWatch};
use super::target::{NodeAddress, RedisTarget};
use crate::context::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// A connection of any shape; clones share it.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Sentinel(SentinelConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Sentinel(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// Sends a non-atomic pipeline and returns one reply per command, error replies included
    /// (as `Value::ServerError`). On a Cluster it goes to `node` when one is given — it may then
    /// hold keys of several slots, all held by that node — else to the node of its first key.
    pub(super) async fn send(
        &mut self,
        pipeline: &Pipeline,
        node: Option<&NodeAddress>,
    ) -> RedisResult<Vec<Value>> {
        match (self, node) {
            (Connection::Cluster(cluster), Some(node)) => {
                let route = SingleNodeRoutingInfo::ByAddress {
                    host: node.host.clone(),
                    port: node.port,
                };
                cluster
                    .route_pipeline(pipeline.clone(), 0, pipeline.len(), route)
                    .await
            }
            (connection, _) => {
                connection
                    .req_packed_commands(pipeline, 0, pipeline.len())
                    .await
            }
        }
    }

    /// Runs `command` (one without a key, such as `SCAN`) on the master that holds `slot`.
    pub(super) async fn on_slot(&mut self, command: &Cmd, slot: u16) -> RedisResult<Value> {
        match self {
            Connection::Cluster(cluster) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                cluster.route_command(command.clone(), route).await
            }
            connection => connection.req_packed_command(command).await,
        }
    }

    /// Runs `command` on one node chosen at random (a liveness check that one failed master
    /// does not fail; on one server, that server).
    pub(super) async fn on_any_node(&mut self, command: &Cmd) -> RedisResult<Value> {
        match self {
            Connection::Cluster(cluster) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                cluster.route_command(command.clone(), route).await
            }
            connection => connection.req_packed_command(command).await,
        }
    }
}

/// What a link is for: named in the logs, and it decides how long a reply may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkSettings {
    pub name: &'static str,
    /// Longest wait for one reply (the callers keep their own, shorter deadlines too).
    pub response_timeout: Duration,
}

/// One lazily made connection to the target.
pub(super) struct Link {
    target: Arc<RedisTarget>,
    sentinel: Option<Arc<SentinelWatch>>,
    settings: LinkSettings,
    connection: OnceCell<Connection>,
}

impl Link {
    pub(super) fn new(
        target: Arc<RedisTarget>,
        sentinel: Option<Arc<SentinelWatch>>,
        settings: LinkSettings,
    ) -> Self {
        Self {
            target,
            sentinel,
            settings,
            connection: OnceCell::new(),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        self.settings.name
    }

    /// The connection, or `Unavailable` while the first connection is not made yet.
    pub(super) fn get(&self) -> Result<Connection, StoreError> {
        self.connection
            .get()
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }

    /// Makes the first connection, or returns it when it is made already.
    pub(super) async fn connect(&self) -> RedisResult<Connection> {
        self.connection
            .get_or_try_init(|| open(&self.target, self.sentinel.as_ref(), self.settings))
            .await
            .cloned()
    }
}

async fn open(
    target: &RedisTarget,
    sentinel: Option<&Arc<SentinelWatch>>,
    settings: LinkSettings,
) -> RedisResult<Connection> {
    match target {
        RedisTarget::Single { url } => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(settings.response_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let client = redis::Client::open(url.as_str())?;
            Ok(Connection::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
        RedisTarget::Sentinel { .. } => {
            let watch = sentinel.ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "no Sentinel watch for a Sentinel target",
                ))
            })?;
            let connection =
                SentinelConnection::connect(Arc::clone(watch), settings.response_timeout).await?;
            Ok(Connection::Sentinel(connection))
        }
        RedisTarget::Cluster { seeds, credentials } => {
            let nodes: Vec<String> = seeds.iter().map(|n| format!("redis://{n}")).collect();
            let mut builder = ClusterClientBuilder::new(nodes)
                .connection_timeout(Duration::from_secs(1))
                .response_timeout(settings.response_timeout)
                // Redirects and topology changes are retried inside the response timeout;
                // after that the caller's own rules apply (fallback, batch retry, 503).
                .overall_response_timeout(Some(settings.response_timeout))
                .retries(6)
                .min_retry_wait(10)
                .max_retry_wait(400);
            if let Some(username) = &credentials.username {
                builder = builder.username(username);
            }
            if let Some(password) = &credentials.password {
                builder = builder.password(password);
            }
            let client = builder.build()?;
            Ok(Connection::Cluster(client.get_async_connection().await?))
        }
    }
}
