//! A campaign's results: per test block, each arm's human opens, clicks, click rate and
//! probability of being the best (from the same Beta posteriors a learning test samples);
//! per poll, each option's votes and share. Served as JSON by `GET /v1/report/{campaign}` and
//! printed by `opentime report CAMPAIGN`.

use super::arms::arm_stats;
use crate::arm_choice::probability_best;
use crate::blocks::Campaign;
use crate::tally::{TallyError, TallyStore};
use rand::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;

/// Draws behind each probability of being best (a fixed seed: the same counts give the same
/// report).
const DRAWS: u32 = 20_000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub campaign: String,
    pub tests: BTreeMap<String, TestReport>,
    pub polls: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct TestReport {
    pub mode: &'static str,
    pub arms: Vec<ArmReport>,
}

#[derive(Debug, Serialize)]
pub struct ArmReport {
    pub name: String,
    pub weight: u32,
    pub opens: u64,
    pub clicks: u64,
    pub rate: f64,
    pub probability_best: f64,
}

/// The report of `campaign` from the counts in `tallies`.
pub async fn report(campaign: &Campaign, tallies: &dyn TallyStore) -> Result<Report, TallyError> {
    let mut tests = BTreeMap::new();
    for block in campaign.blocks() {
        let Some(variants) = block.variants.as_ref().filter(|v| v.is_test()) else {
            continue;
        };
        let counts = tallies.test_counts(&campaign.name, &block.name).await?;
        let arms = arm_stats(variants, &counts);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0b7e_57ed);
        let best = probability_best(&arms, DRAWS, &mut rng);
        let mode = match variants.choice {
            crate::blocks::variants::Choice::Learn { .. } => "learn",
            _ => "split",
        };
        let arms = arms
            .iter()
            .zip(best)
            .map(|(arm, probability_best)| ArmReport {
                name: arm.name.clone(),
                weight: arm.weight,
                opens: arm.opens,
                clicks: arm.clicks.min(arm.opens),
                rate: arm.rate(),
                probability_best,
            })
            .collect();
        tests.insert(block.name.clone(), TestReport { mode, arms });
    }
    let mut polls = BTreeMap::new();
    for poll in campaign.polls() {
        let counts = tallies.poll_counts(&campaign.name, &poll.name).await?;
        polls.insert(
            poll.name.clone(),
            super::poll_results::results(poll, &counts),
        );
    }
    Ok(Report {
        campaign: campaign.name.clone(),
        tests,
        polls,
    })
}

impl Report {
    /// The report as a table for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!("campaign {}\n", self.campaign);
        for (block, test) in &self.tests {
            out.push_str(&format!(
                "\ntest {block} ({})\n  {:<16} {:>6} {:>8} {:>8} {:>8} {:>7}\n",
                test.mode, "arm", "weight", "opens", "clicks", "rate", "P(best)"
            ));
            for arm in &test.arms {
                out.push_str(&format!(
                    "  {:<16} {:>6} {:>8} {:>8} {:>7.2}% {:>6.1}%\n",
                    arm.name,
                    arm.weight,
                    arm.opens,
                    arm.clicks,
                    arm.rate * 100.0,
                    arm.probability_best * 100.0
                ));
            }
        }
        for (poll, results) in &self.polls {
            out.push_str(&format!(
                "\npoll {poll}: {} votes\n",
                results["total"].as_u64().unwrap_or(0)
            ));
            for option in results["options"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  {:<16} {:>8} {:>4}%\n",
                    option["name"].as_str().unwrap_or_default(),
                    option["votes"].as_u64().unwrap_or(0),
                    option["share"].as_u64().unwrap_or(0)
                ));
            }
        }
        out
    }
}
