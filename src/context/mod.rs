//! Subscriber context: the live, per-subscriber data that templates read.
//!
//! A context is a map of top-level fields (`cart`, `profile`, `location`, `sms`, …), each owned
//! by one channel and stored as one JSON value — in Redis, one field of the `ctx:{SUB}` hash.
//! [`ContextStore`] is the small trait both stores implement (`crate::store`: Redis for
//! production, a local redb file for running without Redis).

mod subscriber;

pub(crate) use subscriber::{SubscriberId, SubscriberIdError};

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// A subscriber's context: field name → that field's JSON value.
pub(crate) type ContextFields = Map<String, Value>;

/// A subscriber's context as stored, before any parsing: (field name, stored text) pairs. The
/// open path keys its render cache on these, so a cache hit parses no JSON.
pub(crate) type RawContextFields = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store-timeout")]
    Timeout,
    #[error("store-unavailable: {0}")]
    Unavailable(String),
    #[error("store-error: {0}")]
    Backend(String),
}

impl StoreError {
    /// The short reason used in fallback headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Timeout => "store-timeout",
            StoreError::Unavailable(_) => "store-unavailable",
            StoreError::Backend(_) => "store-error",
        }
    }
}

/// Which store backs the service; named in the first log line and in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Redis,
    Embedded,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Embedded => "embedded",
        }
    }
}

/// How many copies of a write the store holds when it answers: its own, plus the replicas
/// that acknowledged it (Redis `WAIT`), and how many it waited for. The context API says both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copies {
    /// The master's copy plus the replicas that acknowledged the write.
    pub held: u32,
    /// The master's copy plus the replicas the store waited for.
    pub wanted: u32,
}

impl Copies {
    /// One copy, and no more asked for (a store without replicas).
    pub(crate) const ONE: Copies = Copies { held: 1, wanted: 1 };

    /// Whether as many copies hold the write as were asked for.
    pub(crate) fn enough(&self) -> bool {
        self.held >= self.wanted
    }
}

/// What a removal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Whether there was something to remove.
    pub existed: bool,
    pub copies: Copies,
}

/// Where subscriber contexts live. Every method is one round trip to the backend.
#[async_trait]
pub trait ContextStore: Send + Sync {
    fn kind(&self) -> StoreKind;

    /// All fields of a subscriber's context; empty when the subscriber has none.
    async fn load(&self, subscriber: &SubscriberId) -> Result<ContextFields, StoreError>;

    /// All fields of a subscriber's context as stored text (what [`parse_field_value`] reads),
    /// in no particular order; empty when the subscriber has none. A store that keeps parsed
    /// values writes them back as JSON.
    async fn load_raw(&self, subscriber: &SubscriberId) -> Result<RawContextFields, StoreError> {
        Ok(self
            .load(subscriber)
            .await?
            .into_iter()
            .map(|(field, value)| (field, value.to_string()))
            .collect())
    }

    /// The fields named in `fields` of a subscriber's context as stored text (those it lacks
    /// left out); `None` when the subscriber has no context at all. An open reads only what its
    /// block reads: the rest of a context is never sent, decoded or copied. A store may take a
    /// second round trip when none of the fields is there, to tell the two cases apart.
    async fn load_raw_fields(
        &self,
        subscriber: &SubscriberId,
        fields: &[String],
    ) -> Result<Option<RawContextFields>, StoreError> {
        let all = self.load_raw(subscriber).await?;
        if all.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            all.into_iter()
                .filter(|(field, _)| fields.contains(field))
                .collect(),
        ))
    }

    /// Sets the given top-level fields, leaving every other field as it is; says how many
    /// copies hold the write.
    async fn merge(
        &self,
        subscriber: &SubscriberId,
        fields: ContextFields,
    ) -> Result<Copies, StoreError>;

    /// Removes fields (one field and its companions); says whether the first existed.
    async fn remove_fields(
        &self,
        subscriber: &SubscriberId,
        fields: &[&str],
    ) -> Result<Removed, StoreError>;

    /// Removes the whole context; says whether there was one.
    async fn remove_all(&self, subscriber: &SubscriberId) -> Result<Removed, StoreError>;

    /// Whether the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A shared handle to whichever store is configured.
pub(crate) type SharedStore = Arc<dyn ContextStore>;

/// [`ContextStore::load_raw_fields`] (every field when `fields` is `None`), giving up after
/// `deadline` so a slow store never holds up an open.
pub(crate) async fn load_raw_fields_within(
    store: &dyn ContextStore,
    subscriber: &SubscriberId,
    fields: Option<&[String]>,
    deadline: Duration,
) -> Result<Option<RawContextFields>, StoreError> {
    let load = async {
        match fields {
            Some(fields) => store.load_raw_fields(subscriber, fields).await,
            None => Ok(Some(store.load_raw(subscriber).await?).filter(|all| !all.is_empty())),
        }
    };
    match tokio::time::timeout(deadline, load).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout),
    }
}

/// Parses one stored field value. Channels are asked to write JSON, but a plain string written
/// by hand (`HSET ctx:{bob} tier gold`) is kept as a string rather than dropped.
pub(crate) fn parse_field_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_are_json_or_kept_as_text() {
        assert_eq!(parse_field_value(r#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(parse_field_value("42"), serde_json::json!(42));
        assert_eq!(parse_field_value("gold"), serde_json::json!("gold"));
    }
}
