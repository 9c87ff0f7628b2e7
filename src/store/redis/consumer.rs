//! Reading the event streams as a consumer: one consumer group per stream (per shard when the
//! stream is sharded), every shard read by one helper (`opentime events`, `cli/events.rs`).
//!
//! Each shard is read with its own `XREADGROUP` (a read of several streams would span slots on
//! a Cluster), without `BLOCK`: a blocking read would hold up the connection it shares with
//! the other shards on the same node, so the helper polls instead. A consumer first gets back
//! what was delivered to it before and never acknowledged (a crash between reading and
//! `XACK`), then new entries. Delivery is at least once; each entry carries the event's `id`,
//! so a consumer that must count once can skip ids it has seen.

use super::{to_store_error, RedisStore};
use crate::context::StoreError;
use redis::streams::StreamReadReply;
use redis::Value;

/// One stream entry delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// The stream (shard) it came from.
    pub stream: String,
    /// The entry's stream id (`XACK` needs it).
    pub entry: String,
    /// The event's fields (see the README's table), sorted by name.
    pub fields: Vec<(String, String)>,
}

/// Which entries of its group a consumer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Entries delivered to this consumer before and not acknowledged (`XREADGROUP … 0`).
    Pending,
    /// Entries never delivered to anyone in the group (`XREADGROUP … >`).
    New,
}

impl RedisStore {
    /// Creates `group` on every stream that lacks it (`MKSTREAM`), reading from the oldest
    /// entry kept (`from_start`) or from the next one appended. Returns how many it created.
    pub(crate) async fn create_group(
        &self,
        group: &str,
        from_start: bool,
    ) -> Result<usize, StoreError> {
        let mut connection = self.events.get()?;
        let mut created = 0;
        for stream in self.streams.keys() {
            let reply: Result<Value, _> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&stream)
                .arg(group)
                .arg(if from_start { "0" } else { "$" })
                .arg("MKSTREAM")
                .query_async(&mut connection)
                .await;
            match reply {
                Ok(_) => created += 1,
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(to_store_error(error)),
            }
        }
        Ok(created)
    }

    /// Up to `count` entries of each stream for `consumer` of `group`.
    pub(crate) async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        wanted: Wanted,
    ) -> Result<Vec<Delivered>, StoreError> {
        let mut reads = tokio::task::JoinSet::new();
        for stream in self.streams.keys() {
            let mut connection = self.events.get()?;
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(count.max(1))
                .arg("STREAMS")
                .arg(&stream)
                .arg(match wanted {
                    Wanted::Pending => "0",
                    Wanted::New => ">",
                });
            reads.spawn(async move {
                read.query_async::<Option<StreamReadReply>>(&mut connection)
                    .await
            });
        }
        let mut delivered = Vec::new();
        while let Some(joined) = reads.join_next().await {
            let reply = joined
                .map_err(|_| StoreError::Unavailable("read task failed".into()))?
                .map_err(to_store_error)?;
            for stream in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in stream.ids {
                    let mut fields: Vec<(String, String)> = entry
                        .map
                        .iter()
                        .filter_map(|(name, value)| {
                            let text: String = redis::from_redis_value_ref(value).ok()?;
                            Some((name.clone(), text))
                        })
                        .collect();
                    fields.sort();
                    delivered.push(Delivered {
                        stream: stream.key.clone(),
                        entry: entry.id,
                        fields,
                    });
                }
            }
        }
        delivered.sort_by(|a, b| (&a.stream, &a.entry).cmp(&(&b.stream, &b.entry)));
        Ok(delivered)
    }

    /// Acknowledges delivered entries (`XACK`, one per stream).
    pub(crate) async fn acknowledge(
        &self,
        group: &str,
        delivered: &[Delivered],
    ) -> Result<(), StoreError> {
        let mut connection = self.events.get()?;
        let mut by_stream: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for entry in delivered {
            by_stream
                .entry(entry.stream.as_str())
                .or_default()
                .push(entry.entry.as_str());
        }
        for (stream, entries) in by_stream {
            redis::cmd("XACK")
                .arg(stream)
                .arg(group)
                .arg(&entries)
                .query_async::<()>(&mut connection)
                .await
                .map_err(to_store_error)?;
        }
        Ok(())
    }
}
