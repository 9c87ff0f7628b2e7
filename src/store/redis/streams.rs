//! The event streams: one `events:opens` stream, or N shards `events:opens:{0}` …
//! `events:opens:{N-1}` (`OPENTIME_EVENT_STREAMS`; 16 by default on a Redis Cluster, so no one
//! slot takes every event). A subscriber's events always go to the same shard — shard =
//! `CLUSTER KEYSLOT ctx:{SUB}` mod N — so each subscriber's events stay in order. Each stream
//! has beside it, in its own slot, the set of event ids recently appended to it (see
//! `events.rs`).

use super::slots::slot;
use crate::context::SubscriberId;
use crate::events::STREAM_KEY;

/// Most shards allowed: more only splits the consumers' reads further.
pub(crate) const MAX_SHARDS: u16 = 1024;
/// Shards on a Redis Cluster when none are configured.
pub(crate) const CLUSTER_DEFAULT_SHARDS: u16 = 16;

/// How the event stream is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventStreams {
    shards: u16,
}

impl EventStreams {
    /// `shards` streams (1 = the single `events:opens`); clamped to 1..=[`MAX_SHARDS`].
    pub(crate) fn new(shards: u16) -> Self {
        Self {
            shards: shards.clamp(1, MAX_SHARDS),
        }
    }

    pub(crate) fn shards(&self) -> u16 {
        self.shards
    }

    /// The stream a subscriber's events go to (shard 0 for an event without one).
    pub(crate) fn key_for(&self, subscriber: Option<&SubscriberId>) -> String {
        let shard = subscriber.map_or(0, |s| slot(&s.context_key()) % self.shards);
        self.key(shard)
    }

    /// The stream of one shard.
    pub(crate) fn key(&self, shard: u16) -> String {
        if self.shards == 1 {
            STREAM_KEY.to_owned()
        } else {
            format!("{STREAM_KEY}:{{{shard}}}")
        }
    }

    /// Every stream, shard 0 first.
    pub(crate) fn keys(&self) -> Vec<String> {
        (0..self.shards).map(|shard| self.key(shard)).collect()
    }

    /// The last event batch each writer appended to `stream` (a hash, writer → sequence), in
    /// the stream's slot.
    pub(crate) fn applied_key(&self, stream: &str) -> String {
        if self.shards == 1 {
            format!("{{{stream}}}:writers")
        } else {
            format!("{stream}:writers")
        }
    }

    /// Each shard's `MAXLEN ~`, so that all of them together hold about `total` events.
    pub(crate) fn max_len_each(&self, total: u64) -> u64 {
        (total / u64::from(self.shards)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_is_the_single_stream_of_before() {
        let streams = EventStreams::new(1);
        let alice = SubscriberId::parse("alice").unwrap();
        assert_eq!(streams.key_for(Some(&alice)), "events:opens");
        assert_eq!(streams.keys(), vec!["events:opens"]);
        assert_eq!(
            streams.applied_key("events:opens"),
            "{events:opens}:writers"
        );
        assert_eq!(streams.max_len_each(1000), 1000);
    }

    #[test]
    fn shards_follow_the_subscribers_slot_and_keep_their_ids_beside_them() {
        let streams = EventStreams::new(16);
        let alice = SubscriberId::parse("alice").unwrap();
        let shard = slot("ctx:{alice}") % 16;
        assert_eq!(
            streams.key_for(Some(&alice)),
            format!("events:opens:{{{shard}}}")
        );
        assert_eq!(streams.key_for(None), "events:opens:{0}");
        let keys = streams.keys();
        assert_eq!(keys.len(), 16);
        for key in &keys {
            assert_eq!(slot(key), slot(&streams.applied_key(key)), "{key}");
        }
        // Many subscribers spread over every shard.
        let mut used = std::collections::HashSet::new();
        for n in 0..400 {
            let id = SubscriberId::parse(&format!("s{n}")).unwrap();
            used.insert(streams.key_for(Some(&id)));
        }
        assert_eq!(used.len(), 16);
        assert_eq!(streams.max_len_each(1_000_000), 62_500);
        assert_eq!(EventStreams::new(0).shards(), 1);
        assert_eq!(EventStreams::new(u16::MAX).shards(), MAX_SHARDS);
    }
}
