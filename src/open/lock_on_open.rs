//! Lock-on-open on the open path: a locked block is rendered from the inputs its first human
//! open stored (see [`crate::lock`]), so every reopen gets the same image.
//!
//! - a lock exists → its inputs (the live context is not even read);
//! - no lock, a person opens → the context's inputs, claimed as the lock (`SET NX`); when another
//!   open claimed first, the winner's inputs are served instead, so both see the same;
//! - no lock, a machine fetches (Apple's or Gmail's prefetch, a scanner, a HEAD request) →
//!   the context's inputs, no lock;
//! - the lock store fails or is slow → the context's inputs, no lock (never a broken image).

use super::error::OpenError;
use super::input::TemplateInput;
use super::opener::Opener;
use super::Pipeline;
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::lock::{lock_key, Claim};
use std::future::Future;
use std::time::Duration;

/// The inputs a locked block renders from.
pub(super) async fn input(
    pipeline: &Pipeline,
    campaign: &str,
    block: &Block,
    subscriber: &SubscriberId,
    ttl: Duration,
    opener: &Opener,
    context_input: impl Future<Output = Result<TemplateInput, OpenError>>,
) -> Result<TemplateInput, OpenError> {
    let key = lock_key(subscriber, campaign, &block.name);
    match stored(pipeline, &key).await {
        Lookup::Locked(input) => return Ok(*input),
        Lookup::Unknown => return context_input.await,
        Lookup::Free => {}
    }
    let input = context_input.await?;
    if !opener.is_person() {
        return Ok(input);
    }
    let Ok(json) = serde_json::to_string(&input) else {
        return Ok(input);
    };
    let claim = tokio::time::timeout(
        pipeline.limits.store_timeout,
        pipeline.locks.claim(&key, &json, ttl),
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
    Locked(Box<TemplateInput>),
    Free,
    /// The store failed or was slow: locked or not, nobody knows.
    Unknown,
}

/// Reads a lock within the store deadline.
pub(super) async fn stored(pipeline: &Pipeline, key: &str) -> Lookup {
    match tokio::time::timeout(pipeline.limits.store_timeout, pipeline.locks.get(key)).await {
        Ok(Ok(Some(json))) => match serde_json::from_str(&json) {
            Ok(input) => Lookup::Locked(Box::new(input)),
            Err(error) => {
                tracing::warn!(%error, "unreadable lock; serving from the context");
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
