//! How a test picks an arm, without any I/O: by weight (a point fixed per subscriber, so the
//! same subscriber always lands on the same arm), or by Thompson sampling on clicks per human
//! open — each arm's click rate drawn from Beta(1 + clicks, 1 + opens − clicks), the highest
//! draw wins — so arms get opens in proportion to their chance of being the best. The same
//! draws estimate each arm's probability of being best for the report.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use xxhash_rust::xxh3::xxh3_64;

/// One arm's counts: human opens it was shown for, and clicks that followed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmStats {
    pub name: String,
    pub weight: u32,
    pub opens: u64,
    pub clicks: u64,
}

impl ArmStats {
    /// Clicks per open (0 before the first open).
    pub fn rate(&self) -> f64 {
        if self.opens == 0 {
            0.0
        } else {
            self.clicks as f64 / self.opens as f64
        }
    }

    /// The posterior of the arm's click rate (clicks are capped at opens).
    fn posterior(&self) -> Option<Beta<f64>> {
        let clicks = self.clicks.min(self.opens);
        Beta::new(1.0 + clicks as f64, 1.0 + (self.opens - clicks) as f64).ok()
    }
}

/// A subscriber's fixed point in `[0, 2^64)` for one test block.
pub fn sticky_point(subscriber: &str, campaign: &str, block: &str) -> u64 {
    xxh3_64(format!("{campaign}\u{0}{block}\u{0}{subscriber}").as_bytes())
}

/// The arm whose share of the weights holds `point`.
pub fn by_weight(arms: &[ArmStats], point: u64) -> usize {
    let total: u64 = arms.iter().map(|arm| u64::from(arm.weight.max(1))).sum();
    if total == 0 {
        return 0;
    }
    let mut target = ((u128::from(point) * u128::from(total)) >> 64) as u64;
    for (index, arm) in arms.iter().enumerate() {
        let weight = u64::from(arm.weight.max(1));
        if target < weight {
            return index;
        }
        target -= weight;
    }
    arms.len().saturating_sub(1)
}

/// One Thompson draw: the arm with the highest sampled click rate.
pub fn thompson<R: Rng + ?Sized>(arms: &[ArmStats], rng: &mut R) -> usize {
    let mut best = (0, f64::MIN);
    for (index, arm) in arms.iter().enumerate() {
        let draw = arm.posterior().map_or(0.0, |beta| beta.sample(rng));
        if draw > best.1 {
            best = (index, draw);
        }
    }
    best.0
}

/// Each arm's probability of having the best click rate, from `draws` Thompson draws.
pub fn probability_best<R: Rng + ?Sized>(arms: &[ArmStats], draws: u32, rng: &mut R) -> Vec<f64> {
    let mut wins = vec![0u32; arms.len()];
    if arms.is_empty() || draws == 0 {
        return Vec::new();
    }
    for _ in 0..draws {
        wins[thompson(arms, rng)] += 1;
    }
    wins.into_iter()
        .map(|w| f64::from(w) / f64::from(draws))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    fn arm(name: &str, weight: u32) -> ArmStats {
        ArmStats {
            name: name.into(),
            weight,
            opens: 0,
            clicks: 0,
        }
    }

    #[test]
    fn weights_split_subscribers_in_proportion_and_each_keeps_their_arm() {
        let arms = [arm("a", 1), arm("b", 3)];
        let mut b = 0;
        for n in 0..20_000 {
            let subscriber = format!("s{n}");
            let point = sticky_point(&subscriber, "demo", "hero");
            let index = by_weight(&arms, point);
            assert_eq!(
                index,
                by_weight(&arms, sticky_point(&subscriber, "demo", "hero"))
            );
            b += index;
        }
        assert!((14_500..15_500).contains(&b), "{b} of 20000 on the 3/4 arm");
    }

    /// Three arms at 2 %, 3 % and 5 % clicks per open: once learning has seen enough, the
    /// best arm gets most opens.
    #[test]
    fn thompson_sampling_sends_most_late_opens_to_the_best_arm() {
        let rates = [0.02, 0.03, 0.05];
        let mut arms: Vec<ArmStats> = ["a", "b", "c"].iter().map(|n| arm(n, 1)).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut late_best = 0;
        for open in 0..20_000 {
            let chosen = thompson(&arms, &mut rng);
            arms[chosen].opens += 1;
            if rng.random::<f64>() < rates[chosen] {
                arms[chosen].clicks += 1;
            }
            if open >= 15_000 && chosen == 2 {
                late_best += 1;
            }
        }
        assert!(
            late_best >= 4_000,
            "{late_best} of the last 5000 to the best arm"
        );
        let best = probability_best(&arms, 2_000, &mut rng);
        assert!(best[2] > 0.8, "{best:?}");
    }
}
