//! The Redis settings shared by `serve` and `events`: which Redis (one server, Sentinel, or a
//! Cluster) and how the event stream is split. The connection strings may hold passwords, so
//! they are never shown by `--help` or `Debug`.

use super::ConfigError;
use crate::store::redis::streams::{EventStreams, CLUSTER_DEFAULT_SHARDS, MAX_SHARDS};
use crate::store::redis::target::RedisTarget;
use clap::Args;

#[derive(Clone, Args)]
pub struct RedisArgs {
    /// Redis URL: one server (`redis://host:6379/0`), or a master found and followed through
    /// Sentinel (`redis+sentinel://host:26379,host:26379/MASTER[/DB]`). Without it (and without
    /// OPENTIME_REDIS_CLUSTER) `serve` uses the embedded store.
    #[arg(long, env = "OPENTIME_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Redis Cluster seed nodes, `host:port,host:port,…` (or `redis://[user:password@]host:port`
    /// entries); the rest of the cluster is found from them.
    #[arg(long, env = "OPENTIME_REDIS_CLUSTER", hide_env_values = true)]
    pub redis_cluster: Option<String>,
    /// Event streams: 1 writes `events:opens`; N writes `events:opens:{0}` … `{N-1}`, a
    /// subscriber's events always to the same one. Default 1, or 16 on a Redis Cluster.
    #[arg(long, env = "OPENTIME_EVENT_STREAMS")]
    pub event_streams: Option<u16>,
}

impl std::fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("RedisArgs")
            .field("redis_url", &redacted(&self.redis_url))
            .field("redis_cluster", &redacted(&self.redis_cluster))
            .field("event_streams", &self.event_streams)
            .finish()
    }
}

impl RedisArgs {
    /// The Redis the settings name, or `None` for the embedded store.
    pub(crate) fn target(&self) -> Result<Option<RedisTarget>, ConfigError> {
        RedisTarget::from_settings(self.redis_url.as_deref(), self.redis_cluster.as_deref())
            .map_err(|e| ConfigError::Invalid {
                setting: "OPENTIME_REDIS_URL / OPENTIME_REDIS_CLUSTER",
                reason: e.to_string(),
            })
    }

    /// How events are split over streams on `target`.
    pub(crate) fn streams(&self, target: &RedisTarget) -> Result<EventStreams, ConfigError> {
        let shards = match self.event_streams {
            Some(shards) if (1..=MAX_SHARDS).contains(&shards) => shards,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    setting: "OPENTIME_EVENT_STREAMS",
                    reason: format!("must be between 1 and {MAX_SHARDS}"),
                })
            }
            None if target.is_cluster() => CLUSTER_DEFAULT_SHARDS,
            None => 1,
        };
        Ok(EventStreams::new(shards))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(target) = self.target()? {
            self.streams(&target)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>, cluster: Option<&str>, shards: Option<u16>) -> RedisArgs {
        RedisArgs {
            redis_url: url.map(str::to_owned),
            redis_cluster: cluster.map(str::to_owned),
            event_streams: shards,
        }
    }

    #[test]
    fn a_cluster_shards_events_by_default_and_one_server_keeps_one_stream() {
        let cluster = args(None, Some("127.0.0.1:7000"), None);
        let target = cluster.target().unwrap().unwrap();
        assert_eq!(cluster.streams(&target).unwrap().shards(), 16);
        let single = args(Some("redis://127.0.0.1:6379"), None, None);
        let target = single.target().unwrap().unwrap();
        assert_eq!(single.streams(&target).unwrap().shards(), 1);
        let sharded = args(Some("redis://127.0.0.1:6379"), None, Some(8));
        assert_eq!(sharded.streams(&target).unwrap().shards(), 8);
        assert!(args(None, Some("h:1"), Some(0)).validate().is_err());
        assert!(args(None, Some("h:1"), Some(2000)).validate().is_err());
        assert!(args(Some("redis://h:1"), Some("h:1"), None)
            .validate()
            .is_err());
        assert!(args(None, None, None).target().unwrap().is_none());
    }

    #[test]
    fn debug_never_shows_the_connection_strings() {
        let text = format!(
            "{:?}",
            args(
                Some("redis://:hunter2@h:1"),
                Some("redis://:hunter3@h:2"),
                None
            )
        );
        assert!(!text.contains("hunter"), "{text}");
    }
}
