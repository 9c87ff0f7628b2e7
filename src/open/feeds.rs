//! 4c. The block's live data feeds, fetched at once (`crate::sources::feeds`) after the
//! context, each within its own deadline and never past the part of the open's deadline
//! left for rendering. A feed without a value is `null` to the template, unless it is
//! `required`: then the open gets the block's fallback.

use super::error::OpenError;
use super::input::TemplateInput;
use crate::blocks::{Block, Campaign};
use crate::metrics::Metrics;
use crate::sources::feeds::Feeds;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Part of what is left of the open's deadline that feeds may use (the rest renders).
const FEED_SHARE: u32 = 2;
/// Feeds never take the last this-much of the open's deadline.
const RENDER_RESERVE_MAX: Duration = Duration::from_millis(250);

/// Fills `input.feeds` for `block`, counting each outcome in `opentime_feed_values_total`.
pub(super) async fn fetch(
    feeds: &Feeds,
    metrics: &Metrics,
    campaign: &Campaign,
    block: &Block,
    input: &mut TemplateInput,
    open_deadline: Instant,
) -> Result<(), OpenError> {
    if block.feeds.is_empty() {
        return Ok(());
    }
    let now = Instant::now();
    let left = open_deadline.saturating_duration_since(now);
    let latest = now
        + (left / FEED_SHARE)
            .max(left.saturating_sub(RENDER_RESERVE_MAX))
            .min(left);
    let context = input.to_tera_context(block);
    let mut pending = Vec::with_capacity(block.feeds.len());
    for name in &block.feeds {
        let Some(feed) = campaign.feed(name).cloned() else {
            continue;
        };
        let request = feed.resolve(&context);
        let feeds = feeds.clone();
        let deadline = (now + feed.deadline).min(latest);
        let task = tokio::spawn(async move {
            match request {
                Ok(request) => feeds
                    .get(&request, deadline)
                    .await
                    .map_err(|e| (e.reason(), e.to_string())),
                Err(reason) => Err(("unresolved", reason)),
            }
        });
        pending.push((feed, task));
    }
    for (feed, task) in pending {
        let value = match task.await {
            Ok(Ok(value)) => {
                metrics.feed_value(if value.stale { "stale" } else { "fresh" });
                Some(value.value.as_ref().clone())
            }
            Ok(Err((outcome, reason))) => {
                metrics.feed_value(outcome);
                tracing::debug!(feed = %feed.name, %reason, "feed without a value");
                None
            }
            Err(_) => {
                metrics.feed_value("internal");
                None
            }
        };
        match value {
            Some(value) => {
                input.feeds.insert(feed.name.clone(), value);
            }
            None if feed.required => return Err(OpenError::Feed(feed.name.clone())),
            None => {
                input.feeds.insert(feed.name.clone(), Value::Null);
            }
        }
    }
    Ok(())
}
