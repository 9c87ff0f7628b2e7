//! Subscriber contexts in Redis: `ctx:{SUB}` hashes, one JSON value per field, read with one
//! `HGETALL` per open.

use super::{to_store_error, RedisStore};
use crate::context::{
    parse_field_value, ContextFields, ContextStore, StoreError, StoreKind, SubscriberId,
};
use async_trait::async_trait;

#[async_trait]
impl ContextStore for RedisStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }

    async fn load(&self, subscriber: &SubscriberId) -> Result<ContextFields, StoreError> {
        let mut connection = self.connection()?;
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(subscriber.context_key())
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(raw
            .into_iter()
            .map(|(field, value)| (field, parse_field_value(&value)))
            .collect())
    }

    async fn merge(
        &self,
        subscriber: &SubscriberId,
        fields: ContextFields,
    ) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection()?;
        let mut command = redis::cmd("HSET");
        command.arg(subscriber.context_key());
        for (field, value) in &fields {
            command.arg(field).arg(value.to_string());
        }
        command
            .query_async::<()>(&mut connection)
            .await
            .map_err(to_store_error)
    }

    async fn remove_field(
        &self,
        subscriber: &SubscriberId,
        field: &str,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection()?;
        let removed: i64 = redis::cmd("HDEL")
            .arg(subscriber.context_key())
            .arg(field)
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(removed > 0)
    }

    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<bool, StoreError> {
        let mut connection = self.connection()?;
        // The context, then the record of which events it already counted (`events.rs`).
        let (removed,): (i64,) = redis::pipe()
            .cmd("DEL")
            .arg(subscriber.context_key())
            .cmd("DEL")
            .arg(super::events::email_applied_key(subscriber))
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(removed > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(to_store_error)
    }
}
