//! 4b. A test block's arm for this subscriber (`crate::blocks::variants`, `crate::arm_choice`):
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
use crate::tally::{ArmMark, TallyStore, HUMAN_OPEN};
use rand::SeedableRng;
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
        let test = TestOpen {
            campaign,
            block: &block.name,
            variants,
            subscriber,
            person,
        };
        // A generator of its own (the thread's cannot be held across an await).
        let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
        Some(choose_arm(self.tallies.as_ref(), &test, &mut rng).await)
    }
}

/// One open of a test block.
pub(crate) struct TestOpen<'a> {
    pub campaign: &'a str,
    pub block: &'a str,
    pub variants: &'a Variants,
    pub subscriber: Option<&'a SubscriberId>,
    /// A person opened (not a machine's fetch): the first such open of the arm counts.
    pub person: bool,
}

/// The arm of one open: recorded, else picked (by weight, or by Thompson sampling with `rng`
/// once a learning test has its minimum sample) and recorded; a person's first open of it
/// counted.
pub(crate) async fn choose_arm<R: rand::Rng + ?Sized>(
    tallies: &dyn TallyStore,
    test: &TestOpen<'_>,
    rng: &mut R,
) -> String {
    let TestOpen {
        campaign,
        block,
        variants,
        subscriber,
        person,
    } = *test;
    let point =
        arm_choice::sticky_point(subscriber.map_or("", SubscriberId::as_str), campaign, block);
    let no_counts = arm_stats(variants, &BTreeMap::new());
    let by_weight = no_counts[arm_choice::by_weight(&no_counts, point)]
        .name
        .clone();
    let Some(subscriber) = subscriber else {
        return by_weight;
    };
    let candidate = match variants.choice {
        Choice::Learn { min_opens } => match tallies.test_counts(campaign, block).await {
            Ok(counts) => {
                let arms = arm_stats(variants, &counts);
                let opens: u64 = arms.iter().map(|arm| arm.opens).sum();
                if opens < min_opens {
                    by_weight.clone()
                } else {
                    arms[arm_choice::thompson(&arms, rng)].name.clone()
                }
            }
            Err(error) => {
                tracing::debug!(%error, "test counts unavailable; weighted arm");
                by_weight.clone()
            }
        },
        Choice::Split | Choice::Rules => by_weight.clone(),
    };
    let mark = ArmMark {
        candidate: Some(&candidate),
        flag: person.then_some(HUMAN_OPEN),
        needs: None,
        ttl: ARM_TTL,
    };
    let record = match tallies.mark_arm(subscriber, campaign, block, mark).await {
        Ok(Some(record)) => record,
        Ok(None) => return candidate,
        Err(error) => {
            tracing::debug!(%error, "arm record unavailable; weighted arm, uncounted");
            return by_weight;
        }
    };
    if variants.get(&record.arm).is_none() {
        // An arm the manifest no longer has: show the pick, count nothing.
        return candidate;
    }
    if record.flagged_now {
        if let Err(error) = tallies
            .count(campaign, block, &opens_counter(&record.arm))
            .await
        {
            tracing::warn!(%error, "test open not counted");
        }
    }
    record.arm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::variants::{TestSettings, VariantSettings};
    use crate::store::redis::testkit::TestRedis;
    use crate::tally::CLICKED;
    use rand::rngs::StdRng;
    use rand::RngExt;

    fn learning_arms(names: &[&str], min_opens: u64) -> Variants {
        let arms = names
            .iter()
            .map(|name| VariantSettings {
                name: (*name).into(),
                when: None,
                template: None,
                html: None,
                image: None,
                link: None,
                weight: None,
            })
            .collect();
        let test = TestSettings {
            mode: "learn".into(),
            min_opens: Some(min_opens),
        };
        Variants::compile(arms, Some(test), |_| true).unwrap()
    }

    /// Three arms at 2 %, 3 % and 5 % clicks per open, 20,000 people each opening once, the
    /// counts kept in a real Redis as a fleet would keep them: after the minimum sample the
    /// best arm gets at least 80 % of the last 5,000 opens. Reopens keep their arm and are
    /// not counted again; machines' fetches are never counted.
    #[tokio::test]
    async fn a_learning_test_sends_most_late_opens_to_the_best_arm() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        let variants = learning_arms(&["low", "mid", "best"], 300);
        let rates = [0.02, 0.03, 0.05];
        let mut rng = StdRng::seed_from_u64(13);
        let mut late_best = 0;
        let mut shown = Vec::new();
        for n in 0..20_000 {
            let subscriber = SubscriberId::parse(&format!("s{n}")).unwrap();
            let open = TestOpen {
                campaign: "live",
                block: "offer",
                variants: &variants,
                subscriber: Some(&subscriber),
                person: true,
            };
            let arm = choose_arm(&store, &open, &mut rng).await;
            let index = ["low", "mid", "best"]
                .iter()
                .position(|a| *a == arm)
                .unwrap();
            if n >= 15_000 && arm == "best" {
                late_best += 1;
            }
            if rng.random::<f64>() < rates[index] {
                let click = ArmMark {
                    candidate: None,
                    flag: Some(CLICKED),
                    needs: Some(HUMAN_OPEN),
                    ttl: ARM_TTL,
                };
                let record = store
                    .mark_arm(&subscriber, "live", "offer", click)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(record.flagged_now);
                store
                    .count("live", "offer", &clicks_counter(&record.arm))
                    .await
                    .unwrap();
            }
            if n % 1000 == 0 {
                shown.push((subscriber, arm));
            }
        }
        assert!(
            late_best >= 4_000,
            "{late_best} of the last 5000 opens went to the best arm"
        );

        let counts = store.test_counts("live", "offer").await.unwrap();
        let arms = arm_stats(&variants, &counts);
        let best = arm_choice::probability_best(&arms, 20_000, &mut StdRng::seed_from_u64(1));
        // The figures the README quotes (`cargo test --lib a_learning_test -- --nocapture`).
        eprintln!("last 5000 opens to the best arm: {late_best}");
        for (arm, best) in arms.iter().zip(&best) {
            eprintln!("{arm:?} rate {:.4} P(best) {best:.3}", arm.rate());
        }
        let opens: u64 = arms.iter().map(|a| a.opens).sum();
        assert_eq!(opens, 20_000, "{counts:?}");
        for (subscriber, arm) in &shown {
            for person in [true, false] {
                let open = TestOpen {
                    campaign: "live",
                    block: "offer",
                    variants: &variants,
                    subscriber: Some(subscriber),
                    person,
                };
                assert_eq!(
                    &choose_arm(&store, &open, &mut rng).await,
                    arm,
                    "a reopen keeps its arm"
                );
            }
        }
        let machine = SubscriberId::parse("scanner").unwrap();
        let open = TestOpen {
            campaign: "live",
            block: "offer",
            variants: &variants,
            subscriber: Some(&machine),
            person: false,
        };
        choose_arm(&store, &open, &mut rng).await;
        let after = store.test_counts("live", "offer").await.unwrap();
        assert_eq!(
            after, counts,
            "reopens and machines' fetches are not counted"
        );
    }
}
