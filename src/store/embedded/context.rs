//! Subscriber contexts in the embedded store: one JSON object per subscriber, merged field by
//! field like the Redis hash. A write is in the file when it returns: one copy.

use super::{backend, EmbeddedStore};
use crate::context::{
    ContextFields, ContextStore, Copies, Removed, StoreError, StoreKind, SubscriberId,
};
use async_trait::async_trait;
use redb::ReadableDatabase;

#[async_trait]
impl ContextStore for EmbeddedStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Embedded
    }

    async fn load(&self, subscriber: &SubscriberId) -> Result<ContextFields, StoreError> {
        self.read_fields(subscriber.as_str())
    }

    async fn merge(
        &self,
        subscriber: &SubscriberId,
        fields: ContextFields,
    ) -> Result<Copies, StoreError> {
        self.update(subscriber, move |current| {
            current
                .get_or_insert_with(ContextFields::new)
                .extend(fields);
        })
        .await?;
        Ok(Copies::ONE)
    }

    async fn remove_fields(
        &self,
        subscriber: &SubscriberId,
        fields: &[&str],
    ) -> Result<Removed, StoreError> {
        let names: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        let existed = self
            .update(subscriber, move |current| {
                let Some(stored) = current.as_mut() else {
                    return false;
                };
                let removed: Vec<bool> = names
                    .iter()
                    .map(|name| stored.remove(name).is_some())
                    .collect();
                removed.first().copied().unwrap_or(false)
            })
            .await?;
        Ok(Removed {
            existed,
            copies: Copies::ONE,
        })
    }

    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<Removed, StoreError> {
        let existed = self
            .update(subscriber, |current| current.take().is_some())
            .await?;
        Ok(Removed {
            existed,
            copies: Copies::ONE,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.slot().run(StoreError::Unavailable, |database| {
            database.begin_read().map(|_| ()).map_err(backend)
        })
    }
}
