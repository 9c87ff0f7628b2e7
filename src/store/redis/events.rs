//! Events into Redis: per batch, one non-atomic pipeline per Redis master — per stream one
//! `EVALSHA` of a small Lua script that appends the batch's events of that stream, and per
//! subscriber one that folds all of that subscriber's events of the batch into `ctx:{SUB}`'s
//! `email` field with one read and one write (the same rules as `events/email_field.rs`), then
//! `WAIT` for the master's replicas. Folding per batch keeps Redis's work per open small: under
//! load a batch holds hundreds of opens and costs a few script calls, not two per open. The scripts' text goes over the wire only when a master may
//! not have them: the pipelines start with their `SCRIPT LOAD` on the first batch and after any
//! `NOSCRIPT` (a restarted or newly promoted master), not on every batch. On one server (or a master
//! behind Sentinel) that is one pipeline; on a Cluster, one per master, sent at once, each
//! holding only the commands of the slots that master holds (from the replica view,
//! `replication.rs`; a slot the view does not place gets a pipeline of its own, routed by key,
//! and so does every slot in the batch after a failed one, until one goes through).
//!
//! Why it is built this way:
//!
//! - **Every reply is read.** Each command's reply is checked on its own, so one refused
//!   command (a `ctx:{X}` that is not a hash, a wrong-type stream, `OOM` under `maxmemory`, a
//!   script error) drops the events it carries (that subscriber's, or that stream's) — reported
//!   to the writer, which counts them — while the others are written. A reply that says "not now" rather than "never" (`LOADING`, `BUSY`,
//!   `READONLY` after a failover, `NOSCRIPT`, cluster redirects…), no reply at all (I/O error,
//!   timeout, dropped connection) or fewer replicas than waited for makes the whole batch an
//!   error, and the writer sends it again. So an event the writer counts as written is on as
//!   many copies as the policy asks: a failover cannot take it back.
//! - **Sending a batch again changes nothing that was applied.** The writer names each batch
//!   by its writer (one per process) and a sequence number, and sends batches strictly one
//!   after the other, retrying a batch under the same name. So each script keeps, next to the
//!   key it changes, a small hash of writer → last batch sequence applied there: a script whose
//!   batch is not above that number does nothing; otherwise it applies its events and then
//!   records the sequence (last, so a script that fails half-way is not marked done). That is
//!   one field per writer, whatever the traffic (an id per event, kept for an hour, would grow
//!   with it); the hash expires after [`DEDUP_WINDOW`] without writes, and a batch retried
//!   later than that could be counted twice. A script's effects and its record are replicated
//!   together, so a promoted replica knows what it applied.
//! - **Each script touches one Cluster slot.** The stream script uses the event's stream
//!   (`streams.rs`: `events:opens`, or the subscriber's shard `events:opens:{N}`) and its
//!   writers hash, in the same slot; the `email` script uses `ctx:{SUB}` and
//!   `evbatch:{SUB}`. So the stream entry and the `email` update are two commands, each
//!   idempotent on its own, rather than one script spanning two slots. Stream ids stay `*`
//!   (server-assigned): ids derived from event ids would be refused whenever two servers'
//!   clocks or queues disagree, and the entry carries the event id in its `id` field.
//!
//! The writer has its own connection, so a batch (and its `WAIT`) never queues in front of an
//! open's context lookup.

use super::link::Connection;
use super::replication::{Plan, ReplicaView};
use super::slots::slot;
use super::target::NodeAddress;
use super::RedisStore;
use crate::context::{StoreError, SubscriberId};
use crate::events::{BatchId, Event, EventError, EventSink, Refused, Written};
use async_trait::async_trait;
use chrono::SecondsFormat;
use redis::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

/// How long a writer's last applied batch is remembered after its last write (a retry later
/// than that may count twice).
const DEDUP_WINDOW: Duration = Duration::from_secs(3600);

/// KEYS[1] = the stream, KEYS[2] = its writers' last applied batches (writer → sequence);
/// ARGV = writer, batch sequence, window ms, max_len, the number of entries, then per entry:
/// its field/value count and its field/value pairs. Returns one status per entry, in order: 1
/// when appended, 2 when the batch was applied before.
const STREAM_SCRIPT: &str = r#"
local writer, seq, window, max_len = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local count, statuses = tonumber(ARGV[5]), {}
local last = tonumber(redis.call('HGET', KEYS[2], writer))
if last and seq <= last then
  for entry = 1, count do statuses[entry] = 2 end
  return statuses
end
local at = 6
for entry = 1, count do
  local fields = tonumber(ARGV[at])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', max_len, '*', unpack(ARGV, at + 1, at + fields))
  statuses[entry] = 1
  at = at + 1 + fields
end
redis.call('HSET', KEYS[2], writer, seq)
redis.call('PEXPIRE', KEYS[2], window)
return statuses
"#;

/// KEYS[1] = ctx:{SUB}, KEYS[2] = evbatch:{SUB} (writer → last applied batch sequence);
/// ARGV = writer, batch sequence, window ms, the number of events, then per event: kind, at,
/// campaign, machine ("1"/"0"). Folds them all into the `email` field with one read and one
/// write. Returns one status per event, in order: 1 when applied, 0 when the subscriber has no
/// context, 2 when the batch was applied before. A subscriber with no context gets none: an
/// open must not make up a context (the open path would then render instead of serving the
/// `no-context` fallback).
const EMAIL_SCRIPT: &str = r#"
local writer, seq, window, count = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local statuses = {}
local last = tonumber(redis.call('HGET', KEYS[2], writer))
if last and seq <= last then
  for event = 1, count do statuses[event] = 2 end
  return statuses
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  for event = 1, count do statuses[event] = 0 end
  return statuses
end
local email = {}
local raw = redis.call('HGET', KEYS[1], 'email')
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then email = decoded end
end
for event = 1, count do
  local at = 5 + (event - 1) * 4
  local kind, when, campaign, machine = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if machine == '1' then
    email.last_prefetch = when
  elseif kind == 'vote' then
    email.last_vote = when
  else
    if kind == 'click' then
      email.last_click = when
      email.click_count = (tonumber(email.click_count) or 0) + 1
    else
      email.last_open = when
      email.open_count = (tonumber(email.open_count) or 0) + 1
    end
    email.last_campaign = campaign
  end
  statuses[event] = 1
end
redis.call('HSET', KEYS[1], 'email', cjson.encode(email))
redis.call('HSET', KEYS[2], writer, seq)
redis.call('PEXPIRE', KEYS[2], window)
return statuses
"#;

fn stream_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(STREAM_SCRIPT))
}

fn email_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(EMAIL_SCRIPT))
}

/// The key of the last event batches folded into a subscriber's `email` field, per writer
/// (same Cluster slot as `ctx:{SUB}`).
pub(super) fn email_applied_key(subscriber: &crate::context::SubscriberId) -> String {
    format!("evbatch:{{{}}}", subscriber.as_str())
}

fn unavailable(error: redis::RedisError) -> EventError {
    EventError::Unavailable(error.category().to_string())
}

/// What one error reply means for its event.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The store may take it later: retry the batch.
    Retry,
    /// The store refuses this command: drop the event, counted under this reason.
    Refuse(&'static str),
}

/// Sorts an error reply into "try the batch again" and "this event is refused". A script's
/// error carries the failing call's code in its text on Redis < 7, so the text is read too.
fn verdict(code: &str, details: &str) -> Verdict {
    const TRANSIENT: [&str; 11] = [
        "LOADING",
        "BUSY",
        "READONLY",
        "NOSCRIPT",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "MOVED",
        "ASK",
        "NOREPLICAS",
        "UNBLOCKED",
    ];
    if TRANSIENT.contains(&code) {
        return Verdict::Retry;
    }
    let text = format!("{code} {details}");
    if text.contains("WRONGTYPE") {
        Verdict::Refuse("wrong-type")
    } else if text.contains("OOM") {
        Verdict::Refuse("out-of-memory")
    } else if text.contains("script") || text.contains("Script") {
        Verdict::Refuse("script-error")
    } else {
        Verdict::Refuse("refused")
    }
}

/// What the replies to a batch's commands say. Each command carries some of the batch's events
/// (`owners`, indexes into the batch) and answers one status per event, in the same order, or
/// one error for all of them. An event with a refused command is reported refused even if its
/// other command went through (the stream entry and the `email` update are separate commands,
/// see the module notes).
fn read_replies(events: usize, replies: &[(&[usize], &Value)]) -> Result<Written, EventError> {
    let mut refused: Vec<Option<&'static str>> = vec![None; events];
    let mut duplicate = vec![false; events];
    for (owners, reply) in replies {
        match reply {
            Value::ServerError(error) => {
                match verdict(error.code(), error.details().unwrap_or("")) {
                    Verdict::Retry => return Err(EventError::Unavailable(error.code().to_owned())),
                    Verdict::Refuse(reason) => {
                        for owner in owners.iter() {
                            if let Some(slot) = refused.get_mut(*owner) {
                                slot.get_or_insert(reason);
                            }
                        }
                    }
                }
            }
            Value::Array(statuses) if statuses.len() == owners.len() => {
                for (owner, status) in owners.iter().zip(statuses) {
                    // Both scripts answer 2 for a batch applied before.
                    if matches!(status, Value::Int(2)) {
                        if let Some(flag) = duplicate.get_mut(*owner) {
                            *flag = true;
                        }
                    }
                }
            }
            other => {
                return Err(EventError::Unavailable(format!(
                    "unexpected reply to an event script: {other:?}"
                )))
            }
        }
    }
    let mut written = Written::default();
    for (index, (refused, duplicate)) in refused.into_iter().zip(duplicate).enumerate() {
        match refused {
            Some(reason) => written.refused.push(Refused { index, reason }),
            None if duplicate => written.duplicates += 1,
            None => {}
        }
    }
    Ok(written)
}

/// Which pipeline a command goes in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Destination {
    /// The one server (or Sentinel's master).
    Server,
    /// The Cluster master the view places the slot on.
    Node(String, u16),
    /// A Cluster slot the view does not place: routed by key.
    Slot(u16),
}

/// One pipeline of a batch, and whose replies it carries.
struct Part {
    node: Option<NodeAddress>,
    pipeline: redis::Pipeline,
    /// How many `SCRIPT LOAD`s it starts with (0 or 2).
    loads: usize,
    /// The events each command (after the `SCRIPT LOAD`s) carries, as indexes into the batch.
    owners: Vec<Vec<usize>>,
    wait_for: u32,
}

impl Part {
    fn new(node: Option<NodeAddress>, load_scripts: bool) -> Self {
        let mut pipeline = redis::pipe();
        if load_scripts {
            pipeline.load_script(stream_script());
            pipeline.load_script(email_script());
        }
        Self {
            node,
            pipeline,
            loads: if load_scripts { 2 } else { 0 },
            owners: Vec::new(),
            wait_for: 0,
        }
    }
}

/// The commands of a batch, split by master.
struct Parts {
    cluster: bool,
    /// Group a Cluster's slots by the master the view places them on (else one part per slot).
    by_node: bool,
    load_scripts: bool,
    parts: BTreeMap<Destination, Part>,
}

impl Parts {
    fn add(
        &mut self,
        view: &ReplicaView,
        key: &str,
        owners: Vec<usize>,
        invocation: &redis::ScriptInvocation,
    ) {
        let slot = slot(key);
        let Plan { node, wait_for } = view.plan(slot);
        let node = node.filter(|_| self.cluster && self.by_node);
        let destination = match (&node, self.cluster) {
            (_, false) => Destination::Server,
            (Some(node), true) => Destination::Node(node.host.clone(), node.port),
            (None, true) => Destination::Slot(slot),
        };
        let part = self
            .parts
            .entry(destination)
            .or_insert_with(|| Part::new(node, self.load_scripts));
        part.pipeline.invoke_script(invocation);
        part.owners.push(owners);
        part.wait_for = part.wait_for.max(wait_for);
    }
}

/// Sends every part at once; returns each part's replies to its commands (without the
/// `SCRIPT LOAD`s and the `WAIT`), or an error when any part's outcome is unknown or its
/// replicas did not all acknowledge it.
async fn send_parts(
    connection: &Connection,
    view: &ReplicaView,
    parts: Vec<Part>,
) -> Result<Vec<(Part, Vec<Value>)>, EventError> {
    let mut sending = tokio::task::JoinSet::new();
    for (index, mut part) in parts.into_iter().enumerate() {
        view.add_wait(
            &mut part.pipeline,
            &Plan {
                node: None,
                wait_for: part.wait_for,
            },
        );
        let mut connection = connection.clone();
        sending.spawn(async move {
            let replies = connection.send(&part.pipeline, part.node.as_ref()).await;
            (index, part, replies)
        });
    }
    let mut sent = Vec::new();
    let mut failure = None;
    while let Some(joined) = sending.join_next().await {
        let Ok((index, part, replies)) = joined else {
            failure.get_or_insert_with(|| EventError::Unavailable("writer task failed".into()));
            continue;
        };
        match replies {
            Ok(mut replies) => {
                let commands = part.owners.len();
                let expected = part.loads + commands + usize::from(part.wait_for > 0);
                if replies.len() != expected {
                    failure.get_or_insert_with(|| {
                        EventError::Unavailable(format!(
                            "{} replies to {expected} commands",
                            replies.len()
                        ))
                    });
                    continue;
                }
                if part.wait_for > 0 {
                    let copies = ReplicaView::copies(part.wait_for, replies.last());
                    if !copies.enough() {
                        failure.get_or_insert_with(|| {
                            EventError::Unavailable(format!(
                                "{} of {} copies after WAIT",
                                copies.held, copies.wanted
                            ))
                        });
                        continue;
                    }
                    replies.pop();
                }
                replies.drain(..part.loads);
                sent.push((index, part, replies));
            }
            Err(error) => {
                failure.get_or_insert_with(|| unavailable(error));
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => {
            sent.sort_by_key(|(index, _, _)| *index);
            Ok(sent
                .into_iter()
                .map(|(_, part, replies)| (part, replies))
                .collect())
        }
    }
}

#[async_trait]
impl EventSink for RedisStore {
    async fn write(
        &self,
        batch: &[Event],
        id: BatchId,
        max_len: u64,
    ) -> Result<Written, EventError> {
        let mut connection = self.events.get().map_err(|e| match e {
            StoreError::Backend(reason) => EventError::Backend(reason),
            other => EventError::Unavailable(other.to_string()),
        })?;
        self.replicas.refresh(&mut connection, false).await;
        let window = DEDUP_WINDOW.as_millis() as i64;
        let writer = id.writer_name();
        let max_len = self.streams.max_len_each(max_len);
        // After a failed batch, route each slot by key for one batch: the cluster client's own
        // map is the one that follows redirects, and a node the view names may be gone.
        let by_node = !self.event_batch_failed.load(Ordering::Acquire);
        let mut parts = Parts {
            cluster: matches!(connection, Connection::Cluster(_)),
            by_node,
            load_scripts: !self.event_scripts_loaded.load(Ordering::Acquire),
            parts: BTreeMap::new(),
        };
        // One script call per stream and one per subscriber, each carrying its events in
        // batch order (so an `email` field ends with the latest open).
        let mut by_stream: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut by_subscriber: HashMap<SubscriberId, Vec<usize>> = HashMap::new();
        for (index, event) in batch.iter().enumerate() {
            let subscriber = event.subscriber_id();
            let stream = self.streams.key_for(subscriber.as_ref());
            by_stream.entry(stream).or_default().push(index);
            if let Some(subscriber) = subscriber {
                by_subscriber.entry(subscriber).or_default().push(index);
            }
        }
        for (stream, owners) in by_stream {
            let mut append = stream_script().key(&stream);
            append
                .key(self.streams.applied_key(&stream))
                .arg(&writer)
                .arg(id.seq)
                .arg(window)
                .arg(max_len)
                .arg(owners.len());
            for event in owners.iter().filter_map(|index| batch.get(*index)) {
                let fields = event.fields();
                append.arg(fields.len() * 2);
                for (field, value) in fields {
                    append.arg(field).arg(value);
                }
            }
            parts.add(&self.replicas, &stream, owners, &append);
        }
        for (subscriber, owners) in by_subscriber {
            let context_key = subscriber.context_key();
            let mut fold = email_script().key(&context_key);
            fold.key(email_applied_key(&subscriber))
                .arg(&writer)
                .arg(id.seq)
                .arg(window)
                .arg(owners.len());
            for event in owners.iter().filter_map(|index| batch.get(*index)) {
                fold.arg(event.kind.as_str())
                    .arg(event.at.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .arg(&event.campaign)
                    .arg(if event.machine { "1" } else { "0" });
            }
            parts.add(&self.replicas, &context_key, owners, &fold);
        }
        let sent = match send_parts(
            &connection,
            &self.replicas,
            parts.parts.into_values().collect(),
        )
        .await
        {
            Ok(sent) => sent,
            Err(error) => {
                // A failover or a moved slot, perhaps: look at the masters again before the retry.
                self.event_batch_failed.store(true, Ordering::Release);
                self.replicas.refresh(&mut connection, true).await;
                return Err(error);
            }
        };
        self.event_batch_failed.store(false, Ordering::Release);
        let noscript = sent.iter().any(|(_, replies)| {
            replies
                .iter()
                .any(|reply| matches!(reply, Value::ServerError(e) if e.code() == "NOSCRIPT"))
        });
        // Loaded everywhere this batch went, or some master lacks them: load with the next batch.
        self.event_scripts_loaded
            .store(!noscript, Ordering::Release);
        let replies: Vec<(&[usize], &Value)> = sent
            .iter()
            .flat_map(|(part, replies)| part.owners.iter().map(Vec::as_slice).zip(replies.iter()))
            .collect();
        read_replies(batch.len(), &replies)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::TestRedis;
    use super::*;
    use crate::context::{ContextStore, SubscriberId};
    use crate::events::{EventKind, STREAM_KEY};
    use crate::sources::mail_clients::{Client, ClientKind};

    fn open(subscriber: &str) -> Event {
        let browser = Client::of_kind(ClientKind::Browser, "browser");
        Event::now(EventKind::Open, "demo", "cart", Some(subscriber), &browser)
    }

    /// The name of the test writer's batch `seq`.
    fn batch_id(seq: u64) -> BatchId {
        BatchId { writer: 7, seq }
    }

    fn stream_len(redis: &TestRedis) -> usize {
        redis::cmd("XLEN")
            .arg(STREAM_KEY)
            .query(&mut redis.connection())
            .unwrap()
    }

    async fn open_count(store: &RedisStore, subscriber: &str) -> Option<u64> {
        let fields = store
            .load(&SubscriberId::parse(subscriber).unwrap())
            .await
            .unwrap();
        fields.get("email")?.get("open_count")?.as_u64()
    }

    #[test]
    fn error_replies_are_sorted_into_retry_and_refuse() {
        assert_eq!(verdict("LOADING", "Redis is loading"), Verdict::Retry);
        assert_eq!(verdict("READONLY", "replica"), Verdict::Retry);
        assert_eq!(verdict("NOSCRIPT", "No matching script"), Verdict::Retry);
        assert_eq!(
            verdict("WRONGTYPE", "Operation against a key"),
            Verdict::Refuse("wrong-type")
        );
        assert_eq!(
            verdict(
                "ERR",
                "Error running script: @user_script:3: WRONGTYPE Operation"
            ),
            Verdict::Refuse("wrong-type")
        );
        assert_eq!(
            verdict("OOM", "command not allowed when used memory > 'maxmemory'"),
            Verdict::Refuse("out-of-memory")
        );
        assert_eq!(
            verdict(
                "ERR",
                "user_script:1: Script attempted to access nonexistent global"
            ),
            Verdict::Refuse("script-error")
        );
    }

    /// The dropped-after-apply case: Redis applied a batch but its answer was lost, so the
    /// writer sends the very same batch again. Nothing is counted twice.
    #[tokio::test]
    async fn a_batch_written_twice_counts_once() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        redis.hset("ctx:{alice}", "profile", "{}");
        redis.hset("ctx:{carol}", "profile", "{}");
        let batch = [open("alice"), open("carol"), open("alice")];

        let first = store.write(&batch, batch_id(0), 1000).await.unwrap();
        assert_eq!(first, Written::default());
        let again = store.write(&batch, batch_id(0), 1000).await.unwrap();
        assert_eq!(again.refused, vec![]);
        assert_eq!(again.duplicates, 3, "every event was applied already");

        assert_eq!(stream_len(&redis), 3);
        assert_eq!(open_count(&store, "alice").await, Some(2));
        assert_eq!(open_count(&store, "carol").await, Some(1));
        let ttl: i64 = redis::cmd("PTTL")
            .arg("evbatch:{alice}")
            .query(&mut redis.connection())
            .unwrap();
        assert!(ttl > 0 && ttl <= DEDUP_WINDOW.as_millis() as i64, "{ttl}");

        // A new event of the same subscriber is still counted.
        store
            .write(&[open("alice")], batch_id(1), 1000)
            .await
            .unwrap();
        assert_eq!(open_count(&store, "alice").await, Some(3));
        assert_eq!(stream_len(&redis), 4);
    }

    /// Calls of a command so far (`INFO commandstats`).
    fn calls(redis: &TestRedis, command: &str) -> u64 {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut redis.connection())
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// A batch costs one script call per stream and one per subscriber, however many events
    /// each has: 200 opens of two subscribers are three calls, and every open is counted.
    #[tokio::test]
    async fn a_batch_is_folded_per_stream_and_per_subscriber() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        redis.hset("ctx:{alice}", "profile", "{}");
        redis.hset("ctx:{carol}", "profile", "{}");
        let batch: Vec<Event> = (0..200)
            .map(|n| open(if n % 4 == 0 { "carol" } else { "alice" }))
            .collect();
        let before = calls(&redis, "evalsha");
        assert_eq!(
            store.write(&batch, batch_id(0), 1000).await.unwrap(),
            Written::default()
        );
        assert_eq!(calls(&redis, "evalsha") - before, 3);
        assert_eq!(stream_len(&redis), 200);
        assert_eq!(open_count(&store, "alice").await, Some(150));
        assert_eq!(open_count(&store, "carol").await, Some(50));
        // The stream keeps the batch's order.
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE")
                .arg(STREAM_KEY)
                .arg("-")
                .arg("+")
                .query(&mut redis.connection())
                .unwrap();
        let ids: Vec<&str> = entries.iter().map(|(_, f)| f["id"].as_str()).collect();
        let sent: Vec<&str> = batch.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, sent);
    }

    #[tokio::test]
    async fn shards_keep_each_subscribers_events_and_applied_batches_together() {
        let redis = TestRedis::start();
        let store = redis.store_with(4).await;
        let subscribers: Vec<String> = (0..24).map(|n| format!("s{n}")).collect();
        for subscriber in &subscribers {
            redis.hset(&format!("ctx:{{{subscriber}}}"), "profile", "{}");
        }
        let batch: Vec<Event> = subscribers.iter().map(|s| open(s)).collect();
        store.write(&batch, batch_id(0), 1000).await.unwrap();

        let streams = super::super::streams::EventStreams::new(4);
        let mut total = 0;
        for key in streams.keys() {
            let entries: Vec<(String, std::collections::HashMap<String, String>)> =
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query(&mut redis.connection())
                    .unwrap();
            assert!(!entries.is_empty(), "{key} is used");
            for (_, fields) in &entries {
                let subscriber = SubscriberId::parse(&fields["subscriber"]).unwrap();
                assert_eq!(streams.key_for(Some(&subscriber)), key);
            }
            let applied: Option<u64> = redis::cmd("HGET")
                .arg(streams.applied_key(&key))
                .arg(batch_id(0).writer_name())
                .query(&mut redis.connection())
                .unwrap();
            assert_eq!(applied, Some(0), "{key}'s last batch is kept beside it");
            total += entries.len();
        }
        assert_eq!(total, 24);
        assert_eq!(stream_len(&redis), 0, "no single stream");
        for subscriber in &subscribers {
            assert_eq!(open_count(&store, subscriber).await, Some(1));
        }
    }

    /// Calls of `SCRIPT LOAD` so far.
    fn script_loads(redis: &TestRedis) -> u64 {
        calls(redis, "script|load")
    }

    #[tokio::test]
    async fn the_scripts_are_sent_once_and_again_when_redis_lost_them() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        redis.hset("ctx:{alice}", "profile", "{}");
        store
            .write(&[open("alice")], batch_id(0), 1000)
            .await
            .unwrap();
        let loaded = script_loads(&redis);
        assert_eq!(loaded, 2, "both scripts with the first batch");
        store
            .write(&[open("alice")], batch_id(1), 1000)
            .await
            .unwrap();
        assert_eq!(script_loads(&redis), loaded, "not with the next");

        // A restarted (or newly promoted) master has no scripts: the batch is retried with them.
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<()>(&mut redis.connection())
            .unwrap();
        let batch = [open("alice")];
        assert!(
            store.write(&batch, batch_id(2), 1000).await.is_err(),
            "NOSCRIPT: try again"
        );
        store.write(&batch, batch_id(2), 1000).await.unwrap();
        assert_eq!(script_loads(&redis), loaded + 2);
        assert_eq!(open_count(&store, "alice").await, Some(3));
        assert_eq!(stream_len(&redis), 3);
    }

    #[tokio::test]
    async fn a_refused_command_drops_its_event_alone() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        redis.hset("ctx:{alice}", "profile", "{}");
        redis::cmd("SET")
            .arg("ctx:{bob}")
            .arg("not a hash")
            .query::<()>(&mut redis.connection())
            .unwrap();
        let batch = [open("alice"), open("bob"), open("carol")];

        let written = store.write(&batch, batch_id(0), 1000).await.unwrap();
        assert_eq!(
            written.refused,
            vec![Refused {
                index: 1,
                reason: "wrong-type"
            }]
        );
        assert_eq!(open_count(&store, "alice").await, Some(1));
        // Bob's stream entry went in (a separate command); only his `email` update was refused.
        assert_eq!(stream_len(&redis), 3);

        // A wrong-type stream refuses every append, and the batch still comes back at once.
        redis::cmd("DEL")
            .arg(STREAM_KEY)
            .query::<()>(&mut redis.connection())
            .unwrap();
        redis::cmd("SET")
            .arg(STREAM_KEY)
            .arg("oops")
            .query::<()>(&mut redis.connection())
            .unwrap();
        let written = store
            .write(&[open("alice")], batch_id(1), 1000)
            .await
            .unwrap();
        assert_eq!(written.refused.len(), 1);
        assert_eq!(written.refused[0].reason, "wrong-type");
    }
}
