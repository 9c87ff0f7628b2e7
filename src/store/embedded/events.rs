//! Events into the embedded store: the stream is the redb table `events` (sequence number →
//! the entry's fields as a JSON object, trimmed to the cap), and the `email` field is updated
//! in the subscriber's context like the Redis script does.

use super::EmbeddedStore;
use crate::events::{apply_to_email_field, Event, EventError, EventSink};
use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use std::sync::Arc;

pub(super) const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");

fn backend<E: std::fmt::Display>(error: E) -> EventError {
    EventError::Backend(error.to_string())
}

/// Appends `batch` to the `events` table in one transaction, trimming it to `max_len`.
fn append(database: &redb::Database, batch: &[Event], max_len: u64) -> Result<(), EventError> {
    let txn = database.begin_write().map_err(backend)?;
    {
        let mut table = txn.open_table(EVENTS).map_err(backend)?;
        let mut next = match table.last().map_err(backend)? {
            Some((key, _)) => key.value().saturating_add(1),
            None => 0,
        };
        for event in batch {
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
    txn.commit().map_err(backend)
}

#[async_trait]
impl EventSink for EmbeddedStore {
    async fn write(&self, batch: &[Event], max_len: u64) -> Result<(), EventError> {
        let database = Arc::clone(self.database());
        let owned = batch.to_vec();
        tokio::task::spawn_blocking(move || append(&database, &owned, max_len))
            .await
            .map_err(backend)??;
        for event in batch {
            let Some(subscriber) = event.subscriber_id() else {
                continue;
            };
            let event = event.clone();
            // Like the Redis script: no context, no made-up one.
            self.update(&subscriber, move |fields| {
                if let Some(fields) = fields {
                    let email = apply_to_email_field(fields.get("email"), &event);
                    fields.insert("email".into(), email);
                }
            })
            .await
            .map_err(|e| EventError::Backend(e.to_string()))?;
        }
        Ok(())
    }
}

/// The stored events, oldest first.
#[cfg(test)]
fn read_all(store: &EmbeddedStore) -> Result<Vec<serde_json::Value>, EventError> {
    use redb::ReadableDatabase;
    let txn = store.database().begin_read().map_err(backend)?;
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
    use crate::sources::mail_clients::ClientKind;

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
        let open = |kind| {
            Event::now(
                kind,
                "demo",
                "cart",
                Some("alice"),
                ClientKind::Browser,
                false,
            )
        };
        let batch = [
            open(EventKind::Open),
            open(EventKind::Open),
            open(EventKind::Click),
        ];
        store.write(&batch, 2).await.unwrap();
        let stored = read_all(&store).unwrap();
        assert_eq!(stored.len(), 2, "capped at max_len: {stored:?}");
        assert_eq!(stored[0]["type"], "open");
        assert_eq!(stored[1]["type"], "click");
        let email = &store.load(&alice).await.unwrap()["email"];
        assert_eq!(email["open_count"], 2);
        assert_eq!(email["click_count"], 1);
        assert_eq!(email["last_campaign"], "demo");
    }
}
