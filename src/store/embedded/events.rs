//! Events into the embedded store: the stream is the redb table `events` (sequence number →
//! the entry's fields as a JSON object, trimmed to the cap), and the `email` field is updated
//! in the subscriber's context like the Redis script does.
//!
//! A whole batch — stream entries and `email` updates — is one write transaction, so it is in
//! or not at all: a failed write changed nothing, and the writer's retry cannot count an event
//! twice (the Redis sink needs batch ids for that; here the entries carry the `id` field
//! only for consumers). A subscriber whose stored context cannot be read is refused alone
//! (`corrupt-context`): its event is dropped and counted, the rest of the batch is written.

use super::{EmbeddedStore, CONTEXTS};
use crate::context::ContextFields;
use crate::events::{
    apply_to_email_field, BatchId, Event, EventError, EventSink, Refused, Written,
};
use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use std::sync::Arc;

pub(super) const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");

fn backend<E: std::fmt::Display>(error: E) -> EventError {
    EventError::Backend(error.to_string())
}

/// Appends `batch` to the `events` table, trimming it to `max_len`, and folds each event into
/// its subscriber's `email` field — all in one transaction.
fn append(database: &redb::Database, batch: &[Event], max_len: u64) -> Result<Written, EventError> {
    let mut written = Written::default();
    let txn = database.begin_write().map_err(backend)?;
    {
        let mut table = txn.open_table(EVENTS).map_err(backend)?;
        let mut next = match table.last().map_err(backend)? {
            Some((key, _)) => key.value().saturating_add(1),
            None => 0,
        };
        let mut contexts = txn.open_table(CONTEXTS).map_err(backend)?;
        for (index, event) in batch.iter().enumerate() {
            if let Some(subscriber) = event.subscriber_id() {
                let stored = contexts
                    .get(subscriber.as_str())
                    .map_err(backend)?
                    .map(|bytes| serde_json::from_slice::<ContextFields>(bytes.value()));
                match stored {
                    // Like the Redis script: no context, no made-up one.
                    None => {}
                    Some(Ok(mut fields)) => {
                        let email = apply_to_email_field(fields.get("email"), event);
                        fields.insert("email".into(), email);
                        let json = serde_json::to_vec(&fields).map_err(backend)?;
                        contexts
                            .insert(subscriber.as_str(), json.as_slice())
                            .map_err(backend)?;
                    }
                    Some(Err(_)) => {
                        written.refused.push(Refused {
                            index,
                            reason: "corrupt-context",
                        });
                        continue;
                    }
                }
            }
            let entry: serde_json::Map<String, serde_json::Value> = event
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                .collect();
            let json = serde_json::Value::Object(entry).to_string();
            table.insert(next, json.as_str()).map_err(backend)?;
            next = next.saturating_add(1);
        }
        while table.len().map_err(backend)? > max_len {
            if table.pop_first().map_err(backend)?.is_none() {
                break;
            }
        }
    }
    txn.commit().map_err(backend)?;
    Ok(written)
}

#[async_trait]
impl EventSink for EmbeddedStore {
    /// One transaction per batch: it is in or it is not, so `_id` is not needed.
    async fn write(
        &self,
        batch: &[Event],
        _id: BatchId,
        max_len: u64,
    ) -> Result<Written, EventError> {
        let slot = Arc::clone(self.slot());
        let owned = batch.to_vec();
        tokio::task::spawn_blocking(move || {
            slot.run(EventError::Unavailable, |database| {
                append(database, &owned, max_len)
            })
        })
        .await
        .map_err(backend)?
    }
}

/// The stored events, oldest first.
#[cfg(test)]
fn read_all(store: &EmbeddedStore) -> Result<Vec<serde_json::Value>, EventError> {
    use redb::ReadableDatabase;
    let txn = store
        .slot()
        .database()
        .map_err(EventError::Unavailable)?
        .begin_read()
        .map_err(backend)?;
    let table = match txn.open_table(EVENTS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(error) => return Err(backend(error)),
    };
    let mut events = Vec::new();
    for entry in table.iter().map_err(backend)? {
        let (_, value) = entry.map_err(backend)?;
        events.push(serde_json::from_str(value.value()).map_err(backend)?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ContextStore, SubscriberId};
    use crate::events::EventKind;
    use crate::sources::mail_clients::{Client, ClientKind};

    const BATCH: BatchId = BatchId { writer: 1, seq: 0 };

    #[tokio::test]
    async fn events_are_appended_capped_and_fold_into_the_email_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), None).unwrap();
        let alice = SubscriberId::parse("alice").unwrap();
        let profile = serde_json::json!({"profile": {"first_name": "Alice"}});
        store
            .merge(&alice, profile.as_object().unwrap().clone())
            .await
            .unwrap();
        let browser = Client::of_kind(ClientKind::Browser, "browser");
        let open = |kind| Event::now(kind, "demo", "cart", Some("alice"), &browser);
        let batch = [
            open(EventKind::Open),
            open(EventKind::Open),
            open(EventKind::Click),
        ];
        assert_eq!(
            store.write(&batch, BATCH, 2).await.unwrap(),
            Written::default()
        );
        let stored = read_all(&store).unwrap();
        assert_eq!(stored.len(), 2, "capped at max_len: {stored:?}");
        assert_eq!(stored[0]["type"], "open");
        assert_eq!(stored[1]["type"], "click");
        let email = &store.load(&alice).await.unwrap()["email"];
        assert_eq!(email["open_count"], 2);
        assert_eq!(email["click_count"], 1);
        assert_eq!(email["last_campaign"], "demo");
        assert_eq!(stored[1]["id"], batch[2].id.as_str());
    }

    #[tokio::test]
    async fn an_unreadable_context_refuses_its_event_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), None).unwrap();
        let txn = store.slot().database().unwrap().begin_write().unwrap();
        txn.open_table(CONTEXTS)
            .unwrap()
            .insert("bob", b"not json".as_slice())
            .unwrap();
        txn.commit().unwrap();
        let browser = Client::of_kind(ClientKind::Browser, "browser");
        let open = |who| Event::now(EventKind::Open, "demo", "cart", Some(who), &browser);
        let written = store
            .write(&[open("alice"), open("bob")], BATCH, 10)
            .await
            .unwrap();
        assert_eq!(
            written.refused,
            vec![Refused {
                index: 1,
                reason: "corrupt-context"
            }]
        );
        let stored = read_all(&store).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["subscriber"], "alice");
    }
}
