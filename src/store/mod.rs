//! Where opentime keeps data: a Redis ([`redis`]) or an embedded redb file ([`embedded`]).
//! Each store holds the three kinds of data an open touches — subscriber contexts
//! ([`crate::context::ContextStore`]), lock-on-open ([`crate::lock::LockStore`]) and events
//! ([`crate::events::EventSink`]) — in one folder, so a backend is read in one place.

pub(crate) mod embedded;
pub(crate) mod redis;

pub(crate) use embedded::EmbeddedStore;
pub(crate) use redis::{RedisSettings, RedisStore};

use crate::context::{SharedStore, StoreError};
use crate::events::EventSink;
use crate::lock::SharedLocks;
use crate::tally::SharedTallies;
use std::path::Path;
use std::sync::Arc;

/// Where the embedded store keeps its file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmbeddedPlace<'a> {
    /// The data folder (`OPENTIME_DATA_DIR`): the file is `embedded.redb` in it.
    pub data_dir: &'a Path,
    /// The demo subscribers it is seeded with on first start, when the folder exists.
    pub seed: &'a Path,
}

/// The open store, as the three handles an open uses. One backend serves all three.
pub(crate) struct Opened {
    pub contexts: SharedStore,
    pub locks: SharedLocks,
    pub events: Arc<dyn EventSink>,
    /// Poll votes and test counts.
    pub tallies: SharedTallies,
}

/// Opens Redis (one server, Sentinel's master or a Cluster), else the embedded store; its log
/// line says which one and how to switch. Redis is connected in the background (the server
/// answers with fallbacks until it is up); the store keeps separate connections for opens,
/// the context API's writes and the event writer (see `redis/mod.rs`).
pub(crate) fn open(
    redis: Option<RedisSettings>,
    embedded: EmbeddedPlace<'_>,
) -> Result<Opened, StoreError> {
    match redis {
        Some(settings) => {
            tracing::info!(
                target = %settings.target.describe(),
                event_streams = settings.streams.shards(),
                write_replicas = settings.writes.replicas,
                "context store: Redis (from OPENTIME_REDIS_URL / OPENTIME_REDIS_CLUSTER); unset both to run on the embedded store"
            );
            let store = Arc::new(RedisStore::new(settings)?);
            tokio::spawn(Arc::clone(&store).connect_in_background());
            Ok(Opened {
                contexts: store.clone(),
                locks: store.clone(),
                tallies: store.clone(),
                events: store,
            })
        }
        None => {
            let path = embedded.data_dir.join("embedded.redb");
            tracing::info!(
                "context store: embedded ({}), seeded with the demo subscribers; set OPENTIME_REDIS_URL=redis://HOST:6379 to use Redis",
                path.display()
            );
            let seed = embedded.seed.is_dir().then_some(embedded.seed);
            let store = Arc::new(EmbeddedStore::open(&path, seed)?);
            Ok(Opened {
                contexts: store.clone(),
                locks: store.clone(),
                tallies: store.clone(),
                events: store,
            })
        }
    }
}
