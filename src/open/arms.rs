//! 4'''. A test block's arm for this subscriber (`crate::blocks::variants`, `crate::arm_choice`):
//! the arm recorded for them, else one picked now — by weight at the subscriber's fixed point,
//! or, for a learning test past its minimum sample, by Thompson sampling on the counts in the
//! store (so every renderer of a fleet learns from every open) — and recorded, so a reopen
//! shows the same arm. A person's first open of the arm counts as its open; a machine's
//! fetch is shown the arm but never counted. Clicks count once, after a counted open.
//!
//! If the store cannot be reached the weighted pick is shown, uncounted: a test never fails
//! an open.

use super::Pipeline;
use crate::arm_choice::{self, ArmStats};
use crate::blocks::variants::{Choice, Variants};
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::tally::{ArmMark, HUMAN_OPEN};
use std::collections::BTreeMap;

/// How long a subscriber keeps their arm.
const ARM_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// The counter names of an arm.
pub(crate) fn opens_counter(arm: &str) -> String {
    format!("{arm}:opens")
}

pub(crate) fn clicks_counter(arm: &str) -> String {
    format!("{arm}:clicks")
}

/// The arms of `variants` with their counts from the store's counters.
pub(crate) fn arm_stats(variants: &Variants, counts: &BTreeMap<String, u64>) -> Vec<ArmStats> {
    variants
        .iter()
        .map(|variant| ArmStats {
            name: variant.name.clone(),
            weight: variant.weight,
            opens: counts
                .get(&opens_counter(&variant.name))
                .copied()
                .unwrap_or(0),
            clicks: counts
                .get(&clicks_counter(&variant.name))
                .copied()
                .unwrap_or(0),
        })
        .collect()
}

impl Pipeline {
    /// The arm `subscriber` sees of test block `block`; `None` when the block runs no test.
    pub(super) async fn arm(
        &self,
        campaign: &str,
        block: &Block,
        subscriber: Option<&SubscriberId>,
        person: bool,
    ) -> Option<String> {
        let variants = block.variants.as_ref().filter(|v| v.is_test())?;
        let point = arm_choice::sticky_point(
            subscriber.map_or("", SubscriberId::as_str),
            campaign,
            &block.name,
        );
        let no_counts = arm_stats(variants, &BTreeMap::new());
        let by_weight = no_counts[arm_choice::by_weight(&no_counts, point)]
            .name
            .clone();
        let Some(subscriber) = subscriber else {
            return Some(by_weight);
        };
        let candidate = match variants.choice {
            Choice::Learn { min_opens } => {
                match self.tallies.test_counts(campaign, &block.name).await {
                    Ok(counts) => {
                        let arms = arm_stats(variants, &counts);
                        let opens: u64 = arms.iter().map(|arm| arm.opens).sum();
                        if opens < min_opens {
                            by_weight.clone()
                        } else {
                            let index = arm_choice::thompson(&arms, &mut rand::rng());
                            arms[index].name.clone()
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "test counts unavailable; weighted arm");
                        by_weight.clone()
                    }
                }
            }
            Choice::Split | Choice::Rules => by_weight.clone(),
        };
        let mark = ArmMark {
            candidate: Some(&candidate),
            flag: person.then_some(HUMAN_OPEN),
            needs: None,
            ttl: ARM_TTL,
        };
        let record = match self
            .tallies
            .mark_arm(subscriber, campaign, &block.name, mark)
            .await
        {
            Ok(Some(record)) => record,
            Ok(None) => return Some(candidate),
            Err(error) => {
                tracing::debug!(%error, "arm record unavailable; weighted arm, uncounted");
                return Some(by_weight);
            }
        };
        if variants.get(&record.arm).is_none() {
            // An arm the manifest no longer has: show the pick, count nothing.
            return Some(candidate);
        }
        if record.flagged_now {
            let counter = opens_counter(&record.arm);
            if let Err(error) = self.tallies.count(campaign, &block.name, &counter).await {
                tracing::warn!(%error, "test open not counted");
            }
        }
        Some(record.arm)
    }
}
