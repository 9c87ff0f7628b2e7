//! The render budget: at most `OPENTIME_RENDER_CONCURRENCY` renders use the CPU at once, and
//! blocks whose renders run long share a smaller lane of that budget, so a runaway template (or
//! two) cannot take every permit and leave the other blocks of every campaign falling back.
//!
//! A block becomes *heavy* when one of its renders spends more than [`HEAVY_RENDER`] on the CPU,
//! and stays heavy for [`HEAVY_FOR`] after its last slow render (a fast render clears it). A heavy
//! block's render waits for a permit of the heavy lane (half the budget, at least one) before a
//! permit of the whole budget. Neither Tera nor resvg can be stopped mid-render, so a render that
//! outlives its open's deadline still finishes (into the cache); the lane bounds how much of the
//! machine such renders hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// CPU time of one render above which its block is heavy.
pub(crate) const HEAVY_RENDER: Duration = Duration::from_millis(250);
/// How long a block stays heavy after its last slow render.
pub(crate) const HEAVY_FOR: Duration = Duration::from_secs(300);
/// Blocks remembered as heavy at most (the oldest are forgotten first).
const MAX_HEAVY_BLOCKS: usize = 10_000;

/// Permits held by one render step; released when dropped.
pub(crate) struct RenderPermit {
    _budget: OwnedSemaphorePermit,
    _heavy_lane: Option<OwnedSemaphorePermit>,
}

pub(crate) struct RenderBudget {
    all: Arc<Semaphore>,
    heavy_lane: Arc<Semaphore>,
    /// (campaign, block) → heavy until.
    heavy: Mutex<HashMap<(String, String), Instant>>,
}

impl RenderBudget {
    /// A budget of `concurrency` renders at once (at least one).
    pub(crate) fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            all: Arc::new(Semaphore::new(concurrency)),
            heavy_lane: Arc::new(Semaphore::new((concurrency / 2).max(1))),
            heavy: Mutex::new(HashMap::new()),
        }
    }

    /// Whether renders of `block` of `campaign` go through the heavy lane now.
    pub(crate) fn is_heavy(&self, campaign: &str, block: &str) -> bool {
        let Ok(heavy) = self.heavy.lock() else {
            return false;
        };
        heavy
            .get(&(campaign.to_owned(), block.to_owned()))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Records that a render of `block` spent `cpu` on the CPU.
    pub(crate) fn record(&self, campaign: &str, block: &str, cpu: Duration) {
        let Ok(mut heavy) = self.heavy.lock() else {
            return;
        };
        let key = (campaign.to_owned(), block.to_owned());
        if cpu > HEAVY_RENDER {
            if heavy.len() >= MAX_HEAVY_BLOCKS {
                let now = Instant::now();
                heavy.retain(|_, until| *until > now);
                if heavy.len() >= MAX_HEAVY_BLOCKS {
                    heavy.clear();
                }
            }
            if !heavy.contains_key(&key) {
                tracing::warn!(
                    campaign,
                    block,
                    cpu_ms = cpu.as_millis() as u64,
                    "slow render: the block now shares the heavy lane of the render budget"
                );
            }
            heavy.insert(key, Instant::now() + HEAVY_FOR);
        } else {
            heavy.remove(&key);
        }
    }

    /// A permit for one CPU step, waiting at most until `deadline`; `None` when the budget
    /// stays exhausted until then.
    pub(crate) async fn acquire(
        &self,
        heavy: bool,
        deadline: tokio::time::Instant,
    ) -> Option<RenderPermit> {
        let acquire = async {
            let heavy_lane = match heavy {
                true => Some(Arc::clone(&self.heavy_lane).acquire_owned().await.ok()?),
                false => None,
            };
            let budget = Arc::clone(&self.all).acquire_owned().await.ok()?;
            Some(RenderPermit {
                _budget: budget,
                _heavy_lane: heavy_lane,
            })
        };
        tokio::time::timeout_at(deadline, acquire)
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn slow_renders_make_a_block_heavy_and_fast_ones_clear_it() {
        let budget = RenderBudget::new(4);
        assert!(!budget.is_heavy("demo", "cart"));
        budget.record("demo", "cart", Duration::from_secs(1));
        assert!(budget.is_heavy("demo", "cart"));
        assert!(!budget.is_heavy("demo", "points"), "per block");
        budget.record("demo", "cart", Duration::from_millis(5));
        assert!(!budget.is_heavy("demo", "cart"));
    }

    #[tokio::test]
    async fn heavy_renders_never_take_the_whole_budget() {
        let budget = RenderBudget::new(2);
        let first_heavy = budget.acquire(true, soon(100)).await.expect("a permit");
        // A second heavy render waits for the heavy lane…
        assert!(budget.acquire(true, soon(50)).await.is_none());
        // …while another block still renders.
        let normal = budget.acquire(false, soon(50)).await;
        assert!(normal.is_some(), "a normal block is not starved");
        drop((first_heavy, normal));
        assert!(budget.acquire(true, soon(50)).await.is_some());
    }
}
