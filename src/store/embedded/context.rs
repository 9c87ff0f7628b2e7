//! Subscriber contexts in the embedded store: one JSON object per subscriber, merged field by
//! field like the Redis hash.

use super::{backend, EmbeddedStore};
use crate::context::{ContextFields, ContextStore, StoreError, StoreKind, SubscriberId};
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
    ) -> Result<(), StoreError> {
        self.update(subscriber, move |current| {
            current
                .get_or_insert_with(ContextFields::new)
                .extend(fields);
        })
        .await
    }

    async fn remove_field(
        &self,
        subscriber: &SubscriberId,
        field: &str,
    ) -> Result<bool, StoreError> {
        let field = field.to_owned();
        self.update(subscriber, move |current| {
            current
                .as_mut()
                .is_some_and(|fields| fields.remove(&field).is_some())
        })
        .await
    }

    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<bool, StoreError> {
        self.update(subscriber, |current| current.take().is_some())
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.slot().run(StoreError::Unavailable, |database| {
            database.begin_read().map(|_| ()).map_err(backend)
        })
    }
}
