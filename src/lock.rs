//! Lock-on-open: what a `lock = "first_open"` block showed a subscriber at the first human
//! open, kept under `lock:{SUB}:{campaign}:{block}` for the block's `lock_ttl`.
//!
//! The lock holds the render's [`crate::render::TemplateInput`] as JSON (context fields read,
//! `now`, query). Rendering it again gives the same bytes (the render cache even serves the
//! very same ones), in every format and scale, and click-throughs compute their links from it.
//! A changed template does change a locked image: the lock pins the data, not the design.
//!
//! The first claim wins: in Redis a small Lua script (get the value, else set it with its TTL)
//! decides atomically and gives the loser the winner's value, on any Redis version; the
//! embedded store does the same in one write transaction (`store/`).

use crate::context::{StoreError, SubscriberId};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock store: {0}")]
    Store(#[from] StoreError),
    #[error("lock store: {0}")]
    Backend(String),
}

/// The Redis key of a lock (the braces keep it in the subscriber's Cluster slot).
pub(crate) fn lock_key(subscriber: &SubscriberId, campaign: &str, block: &str) -> String {
    format!("lock:{{{}}}:{campaign}:{block}", subscriber.as_str())
}

/// The key prefix of every lock of `subscriber`.
pub(crate) fn lock_prefix(subscriber: &SubscriberId) -> String {
    format!("lock:{{{}}}:", subscriber.as_str())
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
    /// Removes every lock of `subscriber` (erasure); returns how many there were.
    async fn remove_all_of(&self, subscriber: &SubscriberId) -> Result<u64, LockError>;
}

pub(crate) type SharedLocks = Arc<dyn LockStore>;
