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

/// Checks shared by the lock stores' tests: every backend must behave the same.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    /// Erasing `erased` removes its two locks and leaves `kept`'s (an id `erased` is a prefix
    /// of, so a prefix match that is too wide would take it too).
    pub(crate) async fn erasing_removes_only_their_locks(store: &dyn LockStore, erased: &str) {
        let erased = SubscriberId::parse(erased).unwrap();
        let kept = SubscriberId::parse(&format!("{}2", erased.as_str())).unwrap();
        let ttl = Duration::from_secs(60);
        for (subscriber, block) in [(&erased, "cart"), (&erased, "points"), (&kept, "cart")] {
            let key = lock_key(subscriber, "demo", block);
            assert_eq!(store.claim(&key, "x", ttl).await.unwrap(), Claim::Won);
        }
        assert_eq!(store.remove_all_of(&erased).await.unwrap(), 2);
        let gone = store.get(&lock_key(&erased, "demo", "cart")).await.unwrap();
        assert_eq!(gone, None);
        let theirs = store.get(&lock_key(&kept, "demo", "cart")).await.unwrap();
        assert_eq!(theirs.as_deref(), Some("x"));
    }
}
