//! Lock-on-open: what a `lock = "first_open"` block showed a subscriber at the first human
//! open, kept under `lock:{SUB}:{campaign}:{block}` for the block's `lock_ttl`.
//!
//! The lock holds the render's [`crate::render::TemplateInput`] as JSON (context fields read,
//! `now`, query). Rendering it again gives the same bytes (the render cache even serves the
//! very same ones), in every format and scale, and click-throughs compute their links from it.
//! A changed template does change a locked image: the lock pins the data, not the design.
//!
//! The first claim wins: Redis `SET key value NX GET EX ttl` decides in one command and gives
//! the loser the winner's value; the embedded store does the same in one write transaction.

use crate::context::{EmbeddedStore, RedisStore, StoreError, SubscriberId};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;
use std::time::Duration;

const LOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("locks");

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock store: {0}")]
    Store(#[from] StoreError),
    #[error("lock store: {0}")]
    Backend(String),
}

/// The Redis key of a lock (the braces keep it in the subscriber's Cluster slot).
pub fn lock_key(subscriber: &SubscriberId, campaign: &str, block: &str) -> String {
    format!("lock:{{{}}}:{campaign}:{block}", subscriber.as_str())
}

/// The outcome of a claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This value is now the lock.
    Won,
    /// Someone locked first; this is what they stored.
    Lost(String),
}

/// Where locks live.
#[async_trait]
pub trait LockStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError>;
    /// Stores `value` under `key` for `ttl` unless a live lock is there already.
    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError>;
}

pub type SharedLocks = Arc<dyn LockStore>;

fn redis_error(error: redis::RedisError) -> LockError {
    LockError::Backend(error.category().to_string())
}

#[async_trait]
impl LockStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError> {
        let mut connection = self.connection()?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError> {
        let mut connection = self.connection()?;
        let previous: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(match previous {
            None => Claim::Won,
            Some(theirs) => Claim::Lost(theirs),
        })
    }
}

/// An embedded lock: expiry (Unix seconds) and value.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredLock {
    expires: i64,
    value: String,
}

fn backend<E: std::fmt::Display>(error: E) -> LockError {
    LockError::Backend(error.to_string())
}

fn live(bytes: &[u8], now: i64) -> Option<String> {
    serde_json::from_slice::<StoredLock>(bytes)
        .ok()
        .filter(|lock| lock.expires > now)
        .map(|lock| lock.value)
}

#[async_trait]
impl LockStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError> {
        let database = Arc::clone(self.database());
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let txn = database.begin_read().map_err(backend)?;
            let table = match txn.open_table(LOCKS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(error) => return Err(backend(error)),
            };
            let now = chrono::Utc::now().timestamp();
            Ok(table
                .get(key.as_str())
                .map_err(backend)?
                .and_then(|bytes| live(bytes.value(), now)))
        })
        .await
        .map_err(backend)?
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError> {
        let database = Arc::clone(self.database());
        let (key, value) = (key.to_owned(), value.to_owned());
        tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now().timestamp();
            let txn = database.begin_write().map_err(backend)?;
            let claim;
            {
                let mut table = txn.open_table(LOCKS).map_err(backend)?;
                let existing = table
                    .get(key.as_str())
                    .map_err(backend)?
                    .and_then(|bytes| live(bytes.value(), now));
                claim = match existing {
                    Some(theirs) => Claim::Lost(theirs),
                    None => {
                        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
                        let stored = StoredLock {
                            expires: now.saturating_add(secs.max(1)),
                            value,
                        };
                        let bytes = serde_json::to_vec(&stored).map_err(backend)?;
                        table
                            .insert(key.as_str(), bytes.as_slice())
                            .map_err(backend)?;
                        Claim::Won
                    }
                };
            }
            txn.commit().map_err(backend)?;
            Ok(claim)
        })
        .await
        .map_err(backend)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_first_claim_wins_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), None).unwrap();
        let alice = SubscriberId::parse("alice").unwrap();
        let key = lock_key(&alice, "demo", "cart");
        assert_eq!(key, "lock:{alice}:demo:cart");
        assert_eq!(store.get(&key).await.unwrap(), None);
        let ttl = Duration::from_secs(60);
        assert_eq!(store.claim(&key, "first", ttl).await.unwrap(), Claim::Won);
        assert_eq!(
            store.claim(&key, "second", ttl).await.unwrap(),
            Claim::Lost("first".into())
        );
        assert_eq!(store.get(&key).await.unwrap().as_deref(), Some("first"));
        assert_eq!(live(br#"{"expires":1,"value":"old"}"#, 2), None);
        assert_eq!(live(b"junk", 2), None);
    }
}
