//! The subscriber's context for one open: one round trip (two when none of the fields the
//! block reads is there) within the store deadline, timed in `opentime_store_seconds`, as
//! stored text (parsed later, and only on a miss: [`super::raw_key`]) — only the fields the
//! block reads (`HMGET`), every field for a block that declares no `reads` (`HGETALL`). No
//! context at all is an error (the block's `no-context` fallback), never an empty render; a
//! context that lacks the fields the block reads renders without them.

use super::error::OpenError;
use super::Pipeline;
use crate::blocks::Block;
use crate::context::{self, RawContextFields, SubscriberId};
use crate::metrics::OutcomeLabels;
use tokio::time::Instant;

pub(super) async fn load(
    pipeline: &Pipeline,
    block: &Block,
    subscriber: &SubscriberId,
) -> Result<RawContextFields, OpenError> {
    let started = Instant::now();
    let result = context::load_raw_fields_within(
        pipeline.contexts.as_ref(),
        subscriber,
        block.reads.as_deref(),
        pipeline.limits.store_timeout,
    )
    .await;
    let outcome = match &result {
        Ok(None) => "empty",
        Ok(Some(_)) => "found",
        Err(error) => error.reason(),
    };
    pipeline
        .metrics
        .store_seconds
        .get_or_create(&OutcomeLabels { outcome })
        .observe(started.elapsed().as_secs_f64());
    result?.ok_or(OpenError::NoContext)
}
