//! Subscriber contexts in Redis: `ctx:{SUB}` hashes, one JSON value per field, read with one
//! `HMGET` of the fields the block reads per open (`HGETALL` for a block that reads them all).
//!
//! The context API's writes go on their own connection, each as one pipeline to the
//! subscriber's slot — the write, then `WAIT` for the replicas the plan asks for
//! ([`super::replication`]) — so the answer can say how many copies hold it, and a failover
//! cannot take back a write the API acknowledged.

use super::replication::Plan;
use super::slots::slot;
use super::{to_store_error, RedisStore};
use crate::context::{
    parse_field_value, ContextFields, ContextStore, Copies, RawContextFields, Removed, StoreError,
    StoreKind, SubscriberId,
};
use async_trait::async_trait;
use redis::Value;

impl RedisStore {
    /// Sends `pipeline` (commands on `subscriber`'s keys) on the writes connection, followed by
    /// a `WAIT` when the plan asks for one; returns the commands' replies and the copies.
    pub(super) async fn write_and_wait(
        &self,
        subscriber: &SubscriberId,
        mut pipeline: redis::Pipeline,
    ) -> Result<(Vec<Value>, Copies), StoreError> {
        let mut connection = self.writes.get()?;
        self.replicas.refresh(&mut connection, false).await;
        let Plan { wait_for, .. } = self.replicas.plan(slot(&subscriber.context_key()));
        let commands = pipeline.len();
        self.replicas.add_wait(
            &mut pipeline,
            &Plan {
                node: None,
                wait_for,
            },
        );
        let mut replies = connection
            .send(&pipeline, None)
            .await
            .map_err(to_store_error)?;
        if let Some(error) = replies.iter().find_map(|reply| match reply {
            Value::ServerError(error) => Some(error),
            _ => None,
        }) {
            return Err(StoreError::Backend(error.code().to_owned()));
        }
        let wait = (wait_for > 0).then(|| replies.get(commands)).flatten();
        let copies = super::replication::ReplicaView::copies(wait_for, wait);
        if !copies.enough() {
            // Perhaps a replica went away: look again before the next write.
            self.replicas.refresh(&mut connection, true).await;
        }
        replies.truncate(commands);
        Ok((replies, copies))
    }
}

#[async_trait]
impl ContextStore for RedisStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }

    async fn load(&self, subscriber: &SubscriberId) -> Result<ContextFields, StoreError> {
        Ok(self
            .load_raw(subscriber)
            .await?
            .into_iter()
            .map(|(field, value)| (field, parse_field_value(&value)))
            .collect())
    }

    async fn load_raw(&self, subscriber: &SubscriberId) -> Result<RawContextFields, StoreError> {
        let mut connection = self.reads.get()?;
        redis::cmd("HGETALL")
            .arg(subscriber.context_key())
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)
    }

    async fn load_raw_fields(
        &self,
        subscriber: &SubscriberId,
        fields: &[String],
    ) -> Result<Option<RawContextFields>, StoreError> {
        let key = subscriber.context_key();
        let mut connection = self.reads.get()?;
        if !fields.is_empty() {
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&key)
                .arg(fields)
                .query_async(&mut connection)
                .await
                .map_err(to_store_error)?;
            let found: RawContextFields = fields
                .iter()
                .zip(values)
                .filter_map(|(field, value)| Some((field.clone(), value?)))
                .collect();
            if !found.is_empty() {
                return Ok(Some(found));
            }
        }
        // None of the fields: a context without them, or none at all (a second round trip,
        // only on this rare path).
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(to_store_error)?;
        Ok(exists.then(RawContextFields::new))
    }

    async fn merge(
        &self,
        subscriber: &SubscriberId,
        fields: ContextFields,
    ) -> Result<Copies, StoreError> {
        if fields.is_empty() {
            return Ok(Copies::ONE);
        }
        let mut pipeline = redis::pipe();
        let command = pipeline.cmd("HSET").arg(subscriber.context_key());
        for (field, value) in &fields {
            command.arg(field).arg(value.to_string());
        }
        let (_, copies) = self.write_and_wait(subscriber, pipeline).await?;
        Ok(copies)
    }

    async fn remove_fields(
        &self,
        subscriber: &SubscriberId,
        fields: &[&str],
    ) -> Result<Removed, StoreError> {
        let Some(first) = fields.first() else {
            return Ok(Removed {
                existed: false,
                copies: Copies::ONE,
            });
        };
        let key = subscriber.context_key();
        let mut pipeline = redis::pipe();
        pipeline.cmd("HEXISTS").arg(&key).arg(first);
        pipeline.cmd("HDEL").arg(&key).arg(fields);
        let (replies, copies) = self.write_and_wait(subscriber, pipeline).await?;
        Ok(Removed {
            existed: matches!(replies.first(), Some(Value::Int(1))),
            copies,
        })
    }

    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<Removed, StoreError> {
        // The context, then the record of which events it already counted (`events.rs`).
        let mut pipeline = redis::pipe();
        pipeline.cmd("DEL").arg(subscriber.context_key());
        pipeline
            .cmd("DEL")
            .arg(super::events::email_applied_key(subscriber));
        let (replies, copies) = self.write_and_wait(subscriber, pipeline).await?;
        Ok(Removed {
            existed: matches!(replies.first(), Some(Value::Int(n)) if *n > 0),
            copies,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Ready once every connection is made (the API's and the event writer's too). On a
        // Cluster, any one node answers: a master failing over must not make every renderer
        // unready (they serve fallbacks for its slots meanwhile).
        self.writes.get()?;
        self.events.get()?;
        let mut connection = self.reads.get()?;
        connection
            .on_any_node(&redis::cmd("PING"))
            .await
            .and_then(|reply| match reply {
                Value::ServerError(error) => Err(error.into()),
                _ => Ok(()),
            })
            .map_err(to_store_error)
    }
}
