//! Lock-on-open in the embedded store: the `locks` table, each lock with its expiry; a claim
//! reads and writes in one write transaction, so the first claim wins.

use super::EmbeddedStore;
use crate::context::{StoreError, SubscriberId};
use crate::lock::{lock_prefix, Claim, LockError, LockStore};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;
use std::time::Duration;

const LOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("locks");

/// An embedded lock: expiry (Unix seconds) and value.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredLock {
    expires: i64,
    value: String,
}

fn backend<E: std::fmt::Display>(error: E) -> LockError {
    LockError::Backend(error.to_string())
}

fn unavailable(reason: String) -> LockError {
    LockError::Store(StoreError::Unavailable(reason))
}

fn unexpired(bytes: &[u8], now: i64) -> Option<String> {
    serde_json::from_slice::<StoredLock>(bytes)
        .ok()
        .filter(|lock| lock.expires > now)
        .map(|lock| lock.value)
}

#[async_trait]
impl LockStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<String>, LockError> {
        let slot = Arc::clone(self.slot());
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            slot.run(unavailable, |database| {
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
                    .and_then(|bytes| unexpired(bytes.value(), now)))
            })
        })
        .await
        .map_err(backend)?
    }

    async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<Claim, LockError> {
        let slot = Arc::clone(self.slot());
        let (key, value) = (key.to_owned(), value.to_owned());
        tokio::task::spawn_blocking(move || {
            slot.run(unavailable, |database| {
                let now = chrono::Utc::now().timestamp();
                let txn = database.begin_write().map_err(backend)?;
                let claim;
                {
                    let mut table = txn.open_table(LOCKS).map_err(backend)?;
                    let existing = table
                        .get(key.as_str())
                        .map_err(backend)?
                        .and_then(|bytes| unexpired(bytes.value(), now));
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
        })
        .await
        .map_err(backend)?
    }

    async fn remove_all_of(&self, subscriber: &SubscriberId) -> Result<u64, LockError> {
        let slot = Arc::clone(self.slot());
        let prefix = lock_prefix(subscriber);
        tokio::task::spawn_blocking(move || {
            slot.run(unavailable, |database| {
                let txn = database.begin_write().map_err(backend)?;
                let removed;
                {
                    let mut table = txn.open_table(LOCKS).map_err(backend)?;
                    let keys: Vec<String> = table
                        .range(prefix.as_str()..)
                        .map_err(backend)?
                        .map_while(|entry| {
                            let key = entry.ok()?.0.value().to_owned();
                            key.starts_with(&prefix).then_some(key)
                        })
                        .collect();
                    for key in &keys {
                        table.remove(key.as_str()).map_err(backend)?;
                    }
                    removed = keys.len() as u64;
                }
                txn.commit().map_err(backend)?;
                Ok(removed)
            })
        })
        .await
        .map_err(backend)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::lock_key;

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
        assert_eq!(unexpired(br#"{"expires":1,"value":"old"}"#, 2), None);
        assert_eq!(unexpired(b"junk", 2), None);
    }

    #[tokio::test]
    async fn erasing_a_subscriber_removes_only_their_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), None).unwrap();
        crate::lock::conformance::erasing_removes_only_their_locks(&store, "alice").await;
    }
}
