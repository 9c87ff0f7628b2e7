//! The subscriber's context for one open: one round trip (`HGETALL ctx:{SUB}`) within the
//! store deadline, timed in `opentime_store_seconds`, as stored text (parsed later, and only
//! on a miss: [`super::raw_key`]). No context at all is an error (the block's `no-context`
//! fallback), never an empty render.

use super::error::OpenError;
use super::Pipeline;
use crate::context::{self, RawContextFields, SubscriberId};
use crate::metrics::OutcomeLabels;
use tokio::time::Instant;

pub(super) async fn load(
    pipeline: &Pipeline,
    subscriber: &SubscriberId,
) -> Result<RawContextFields, OpenError> {
    let started = Instant::now();
    let result = context::load_raw_within(
        pipeline.contexts.as_ref(),
        subscriber,
        pipeline.limits.store_timeout,
    )
    .await;
    let outcome = match &result {
        Ok(fields) if fields.is_empty() => "empty",
        Ok(_) => "found",
        Err(error) => error.reason(),
    };
    pipeline
        .metrics
        .store_seconds
        .get_or_create(&OutcomeLabels { outcome })
        .observe(started.elapsed().as_secs_f64());
    let fields = result?;
    if fields.is_empty() {
        return Err(OpenError::NoContext);
    }
    Ok(fields)
}
