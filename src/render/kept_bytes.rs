//! The renderer's caches weighed in bytes (kept glyph coverage, text tiles, PNG row bands),
//! with few shards, and the count of how often their work was reused ([`ReuseCounts`]).
//!
//! quick_cache splits its weight capacity evenly between its shards and keeps no entry heavier
//! than (97% of) one shard. By default it makes four shards per core, so on a large machine a
//! big entry (the tile of a full-width text at `scale=2`) would not fit a shard and would never
//! be kept; a fixed number of shards keeps them as large on every machine. (quick_cache makes
//! fewer when a shard would expect fewer than 32 entries: `items` should be realistic.)

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cache whose entries weigh what [`Weigh`]'s function says of their values.
pub(super) type KeptBytes<K, V> = Cache<K, V, Weigh<V>>;

/// An entry's weight in bytes, from its value.
pub(super) struct Weigh<V>(fn(&V) -> u64);

impl<V> Clone for Weigh<V> {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

impl<K, V> Weighter<K, V> for Weigh<V> {
    fn weight(&self, _: &K, value: &V) -> u64 {
        (self.0)(value)
    }
}

/// Shards of each cache: few enough that a shard holds the largest entry, enough that renders
/// on different threads seldom wait for one another.
const SHARDS: usize = 8;

/// A cache of at most `bytes`, as `weigh` weighs its values, for about `items` entries.
pub(super) fn cache<K, V>(items: usize, bytes: u64, weigh: fn(&V) -> u64) -> KeptBytes<K, V>
where
    K: Eq + Hash,
    V: Clone,
{
    let options = OptionsBuilder::new()
        .estimated_items_capacity(items)
        .weight_capacity(bytes)
        .shards(SHARDS)
        .build()
        .expect("both capacities are set");
    Cache::with_options(
        options,
        Weigh(weigh),
        DefaultHashBuilder::default(),
        DefaultLifecycle::default(),
    )
}

/// How often a kept cache's work was found already done and how often it was done anew (for
/// benchmarks and metrics).
#[derive(Default)]
pub(super) struct ReuseCounts {
    reused: AtomicU64,
    made: AtomicU64,
}

impl ReuseCounts {
    /// One piece of work found already done.
    pub(super) fn reused(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    /// One piece of work done anew.
    pub(super) fn made(&self) {
        self.made.fetch_add(1, Ordering::Relaxed);
    }

    /// Reused and made anew, so far.
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.reused.load(Ordering::Relaxed),
            self.made.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_half_a_shard_is_kept_on_any_machine() {
        // 8 MB in 8 shards of 1 MB, whatever the number of cores.
        let kept: KeptBytes<u32, Vec<u8>> = cache(512, 8 << 20, |v| v.len() as u64);
        assert_eq!(kept.num_shards(), SHARDS);
        kept.insert(1, vec![0; 1 << 19]);
        assert_eq!(kept.get(&1).map(|v| v.len()), Some(1 << 19));
        assert_eq!(kept.weight(), 1 << 19);
        // Heavier than a shard: not kept (drawn again next time), never an error.
        kept.insert(2, vec![0; (1 << 20) + 1]);
        assert!(kept.get(&2).is_none());
        assert_eq!(kept.weight(), 1 << 19);
    }
}
