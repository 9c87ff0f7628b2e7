//! Lock-on-open on the open path: a locked block is rendered from the inputs its first human
//! open stored (see [`crate::lock`]), so every reopen gets the same image.
//!
//! - a lock exists → its inputs (the live context is not even read);
//! - no lock, a person opens → the live inputs, claimed as the lock (`SET NX`); when another
//!   open claimed first, the winner's inputs are served instead, so both see the same;
//! - no lock, a machine prefetches (Apple's proxy) → the live inputs, no lock;
//! - the lock store fails or is slow → the live inputs, no lock (never a broken image).

use super::block_route::BlockError;
use super::state::AppState;
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::lock::{lock_key, Claim};
use crate::opener::Opener;
use crate::render::TemplateInput;
use std::future::Future;
use std::time::Duration;

/// The inputs a locked block renders from.
pub(super) async fn input(
    state: &AppState,
    campaign: &str,
    block: &Block,
    subscriber: &SubscriberId,
    ttl: Duration,
    opener: Opener,
    live: impl Future<Output = Result<TemplateInput, BlockError>>,
) -> Result<TemplateInput, BlockError> {
    let key = lock_key(subscriber, campaign, &block.name);
    match stored(state, &key).await {
        Lookup::Locked(input) => return Ok(input),
        Lookup::Unknown => return live.await,
        Lookup::Free => {}
    }
    let input = live.await?;
    if opener.prefetch {
        return Ok(input);
    }
    let Ok(json) = serde_json::to_string(&input) else {
        return Ok(input);
    };
    let claim = tokio::time::timeout(
        state.config.store_timeout(),
        state.locks.claim(&key, &json, ttl),
    )
    .await;
    match claim {
        Ok(Ok(Claim::Won)) => Ok(input),
        Ok(Ok(Claim::Lost(theirs))) => Ok(serde_json::from_str(&theirs).unwrap_or(input)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not store a lock; serving unlocked");
            Ok(input)
        }
        Err(_) => {
            tracing::warn!("lock store timed out; serving unlocked");
            Ok(input)
        }
    }
}

/// What the lock store says about a block.
pub(super) enum Lookup {
    Locked(TemplateInput),
    Free,
    /// The store failed or was slow: locked or not, nobody knows.
    Unknown,
}

/// Reads a lock within the store deadline.
pub(super) async fn stored(state: &AppState, key: &str) -> Lookup {
    match tokio::time::timeout(state.config.store_timeout(), state.locks.get(key)).await {
        Ok(Ok(Some(json))) => match serde_json::from_str(&json) {
            Ok(input) => Lookup::Locked(input),
            Err(error) => {
                tracing::warn!(%error, "unreadable lock; serving live");
                Lookup::Unknown
            }
        },
        Ok(Ok(None)) => Lookup::Free,
        Ok(Err(error)) => {
            tracing::debug!(%error, "lock lookup failed");
            Lookup::Unknown
        }
        Err(_) => Lookup::Unknown,
    }
}
