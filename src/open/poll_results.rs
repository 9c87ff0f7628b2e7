//! 4d. A results block's poll counts, read from the store within the store deadline (one
//! `HGETALL` on the campaign's counters), as the template sees them: `poll.total`, and per
//! option (in the manifest's order) `name`, `label`, `votes` and `share` (whole percent).
//! The counts are part of the render input, so a new vote makes a new picture.

use super::error::OpenError;
use super::Pipeline;
use crate::blocks::polls::Poll;
use crate::context::StoreError;
use crate::tally::TallyError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

impl From<TallyError> for OpenError {
    fn from(error: TallyError) -> Self {
        match error {
            TallyError::Store(error) => OpenError::Store(error),
            TallyError::Backend(reason) => OpenError::Store(StoreError::Backend(reason)),
        }
    }
}

impl Pipeline {
    /// The live counts of `poll` of `campaign` for a results block.
    pub(super) async fn poll_results(
        &self,
        campaign: &str,
        poll: &Poll,
    ) -> Result<Value, OpenError> {
        let counts = tokio::time::timeout(
            self.limits.store_timeout,
            self.tallies.poll_counts(campaign, &poll.name),
        )
        .await
        .map_err(|_| OpenError::Store(StoreError::Timeout))??;
        Ok(results(poll, &counts))
    }
}

/// The template's view of a poll's counts.
pub(crate) fn results(poll: &Poll, counts: &BTreeMap<String, u64>) -> Value {
    let votes = |option: &str| counts.get(option).copied().unwrap_or(0);
    let total: u64 = poll.options.iter().map(|option| votes(option)).sum();
    let options: Vec<Value> = poll
        .options
        .iter()
        .map(|option| {
            let share = (votes(option) * 100 + total / 2)
                .checked_div(total)
                .unwrap_or(0);
            json!({
                "name": option,
                "label": poll.label(option),
                "votes": votes(option),
                "share": share,
            })
        })
        .collect();
    json!({"name": poll.name, "total": total, "options": options})
}
