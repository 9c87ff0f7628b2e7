//! The embedded store: a redb file on local disk, for running without Redis. It keeps
//! contexts ([`context`]), lock-on-open ([`lock`]) and events ([`events`]).
//!
//! It keeps each subscriber's context as one JSON object, so it behaves like the Redis hash
//! (fields are merged, never replaced wholesale). On first start it is seeded with the demo
//! subscribers (`templates/demo/samples/*.json`: the file name is the subscriber id), so
//! `opentime serve` shows real blocks with no set-up at all.

mod context;
mod database_slot;
mod events;
mod lock;
mod tally;

use crate::context::{ContextFields, StoreError, SubscriberId};
use database_slot::DatabaseSlot;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

const CONTEXTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contexts");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const SEEDED_KEY: &str = "seeded_from";

pub(crate) struct EmbeddedStore {
    slot: Arc<DatabaseSlot>,
}

pub(super) fn backend<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, seeding it from `seed_dir` the first time.
    pub(crate) fn open(path: &Path, seed_dir: Option<&Path>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(backend)?;
        }
        let store = Self {
            slot: Arc::new(DatabaseSlot::open(path).map_err(backend)?),
        };
        store.ensure_tables()?;
        if let Some(dir) = seed_dir {
            store.seed_once(dir)?;
        }
        Ok(store)
    }

    /// The database file, for the other tables kept beside contexts (events, locks).
    pub(crate) fn slot(&self) -> &Arc<DatabaseSlot> {
        &self.slot
    }

    fn ensure_tables(&self) -> Result<(), StoreError> {
        self.slot.run(StoreError::Unavailable, |database| {
            let txn = database.begin_write().map_err(backend)?;
            txn.open_table(CONTEXTS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.commit().map_err(backend)
        })
    }

    fn seed_once(&self, dir: &Path) -> Result<(), StoreError> {
        let database = self.slot.database().map_err(StoreError::Unavailable)?;
        let read = database.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        if meta.get(SEEDED_KEY).map_err(backend)?.is_some() {
            return Ok(());
        }
        drop(meta);
        drop(read);
        let samples = read_seed_dir(dir)?;
        let txn = database.begin_write().map_err(backend)?;
        {
            let mut contexts = txn.open_table(CONTEXTS).map_err(backend)?;
            for (subscriber, fields) in &samples {
                let json = serde_json::to_vec(fields).map_err(backend)?;
                contexts
                    .insert(subscriber.as_str(), json.as_slice())
                    .map_err(backend)?;
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(SEEDED_KEY, dir.to_string_lossy().as_ref())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        tracing::info!(subscribers = samples.len(), dir = %dir.display(), "seeded the embedded store");
        Ok(())
    }

    fn read_fields(&self, key: &str) -> Result<ContextFields, StoreError> {
        // Decoded outside `run`: a context that does not parse is not a failure of the file,
        // and must not make `run` probe the database (a probe waits for any write in progress,
        // and this runs on an async worker).
        let stored = self
            .slot
            .run(StoreError::Unavailable, |database: &Database| {
                let txn = database.begin_read().map_err(backend)?;
                let table = txn.open_table(CONTEXTS).map_err(backend)?;
                let value = table.get(key).map_err(backend)?;
                Ok(value.map(|bytes| bytes.value().to_vec()))
            })?;
        match stored {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(backend),
            None => Ok(ContextFields::new()),
        }
    }

    /// Runs a read-modify-write of one subscriber's context in one write transaction, off the
    /// async workers (a commit waits for the disk).
    pub(crate) async fn update<R, F>(
        &self,
        subscriber: &SubscriberId,
        change: F,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Option<ContextFields>) -> R + Send + 'static,
    {
        let slot = Arc::clone(&self.slot);
        let key = subscriber.as_str().to_owned();
        tokio::task::spawn_blocking(move || {
            slot.run(StoreError::Unavailable, |database| {
                let txn = database.begin_write().map_err(backend)?;
                let result;
                {
                    let mut table = txn.open_table(CONTEXTS).map_err(backend)?;
                    let mut fields = match table.get(key.as_str()).map_err(backend)? {
                        Some(bytes) => Some(
                            serde_json::from_slice::<ContextFields>(bytes.value())
                                .map_err(backend)?,
                        ),
                        None => None,
                    };
                    result = change(&mut fields);
                    match fields {
                        Some(fields) if !fields.is_empty() => {
                            let json = serde_json::to_vec(&fields).map_err(backend)?;
                            table
                                .insert(key.as_str(), json.as_slice())
                                .map_err(backend)?;
                        }
                        _ => {
                            table.remove(key.as_str()).map_err(backend)?;
                        }
                    }
                }
                txn.commit().map_err(backend)?;
                Ok(result)
            })
        })
        .await
        .map_err(backend)?
    }
}

/// Reads `NAME.json` files (each a JSON object of context fields) from a directory.
fn read_seed_dir(dir: &Path) -> Result<Vec<(String, ContextFields)>, StoreError> {
    let mut samples = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::Backend(format!("seed directory {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(subscriber) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(backend)?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(fields)) => samples.push((subscriber.to_owned(), fields)),
            _ => tracing::warn!(file = %path.display(), "seed file is not a JSON object; skipped"),
        }
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextStore;
    use serde_json::json;

    fn subscriber(id: &str) -> SubscriberId {
        SubscriberId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn seeds_once_and_persists_merges() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = dir.path().join("seeds");
        std::fs::create_dir(&seeds).unwrap();
        std::fs::write(
            seeds.join("alice.json"),
            r#"{"profile":{"first_name":"Alice"}}"#,
        )
        .unwrap();
        std::fs::write(seeds.join("notes.txt"), "ignored").unwrap();
        let file = dir.path().join("store.redb");

        let store = EmbeddedStore::open(&file, Some(&seeds)).unwrap();
        let alice = subscriber("alice");
        assert_eq!(
            store.load(&alice).await.unwrap()["profile"]["first_name"],
            "Alice"
        );
        store
            .merge(
                &alice,
                json!({"sms": {"intent": "upgrade"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
            .await
            .unwrap();
        drop(store);

        // Re-opening keeps the merge and does not seed over it.
        std::fs::write(
            seeds.join("alice.json"),
            r#"{"profile":{"first_name":"Changed"}}"#,
        )
        .unwrap();
        let store = EmbeddedStore::open(&file, Some(&seeds)).unwrap();
        let fields = store.load(&alice).await.unwrap();
        assert_eq!(fields["profile"]["first_name"], "Alice");
        assert_eq!(fields["sms"]["intent"], "upgrade");
    }

    #[tokio::test]
    async fn removes_fields_and_whole_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), None).unwrap();
        let bob = subscriber("bob");
        assert!(store.load(&bob).await.unwrap().is_empty());
        store
            .merge(&bob, json!({"a": 1, "b": 2}).as_object().unwrap().clone())
            .await
            .unwrap();
        assert!(
            store
                .remove_fields(&bob, &["a", "c"])
                .await
                .unwrap()
                .existed
        );
        assert!(!store.remove_fields(&bob, &["a"]).await.unwrap().existed);
        assert_eq!(
            Value::Object(store.load(&bob).await.unwrap()),
            json!({"b": 2})
        );
        assert!(store.remove_all(&bob).await.unwrap().existed);
        assert!(!store.remove_all(&bob).await.unwrap().existed);
        assert!(store.load(&bob).await.unwrap().is_empty());
    }
}
