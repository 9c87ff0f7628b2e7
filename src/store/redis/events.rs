//! Events into Redis: per batch, one non-atomic pipeline per Redis master — per event one
//! `EVALSHA` of a small Lua script that appends it to its stream and, for a subscriber, one that
//! folds it into `ctx:{SUB}`'s `email` field (the same rules as `events/email_field.rs`), then
//! `WAIT` for the master's replicas. The scripts' text goes over the wire only when a master may
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
//!   script error) drops that one event — reported to the writer, which counts it — while the
//!   others are written. A reply that says "not now" rather than "never" (`LOADING`, `BUSY`,
//!   `READONLY` after a failover, `NOSCRIPT`, cluster redirects…), no reply at all (I/O error,
//!   timeout, dropped connection) or fewer replicas than waited for makes the whole batch an
//!   error, and the writer sends it again. So an event the writer counts as written is on as
//!   many copies as the policy asks: a failover cannot take it back.
//! - **Sending a batch again changes nothing that was applied.** Each script first looks the
//!   event's id up in a sorted set of recently applied ids (id → applied-at ms) kept next to
//!   the key it changes, and does nothing when it is there; otherwise it applies the event
//!   and then records the id (last, so a script that fails half-way is not marked done).
//!   The sets forget ids older than [`DEDUP_WINDOW`] (trimmed on every write, and the key
//!   expires when idle), which bounds their size; a batch retried later than that could be
//!   counted twice. A script's effects and its id are replicated together, so a promoted
//!   replica knows what it applied.
//! - **Each script touches one Cluster slot.** The stream script uses the event's stream
//!   (`streams.rs`: `events:opens`, or the subscriber's shard `events:opens:{N}`) and the set
//!   of ids applied to it, in the same slot; the `email` script uses `ctx:{SUB}` and
//!   `evdone:{SUB}`. So the stream entry and the `email` update are two commands, each
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
use crate::context::StoreError;
use crate::events::{Event, EventError, EventSink, Refused, Written};
use async_trait::async_trait;
use chrono::SecondsFormat;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

/// How long the ids of applied events are remembered (a retry later than that may count twice).
const DEDUP_WINDOW: Duration = Duration::from_secs(3600);

/// KEYS[1] = the stream, KEYS[2] = its applied ids; ARGV = id, now ms, forget-before ms,
/// window ms, max_len, then the entry's field/value pairs. Returns 1 when appended, 2 when the
/// id was appended before.
const STREAM_SCRIPT: &str = r#"
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 2 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"#;

/// KEYS[1] = ctx:{SUB}, KEYS[2] = evdone:{SUB}; ARGV = kind, at, campaign, machine ("1"/"0"),
/// id, now ms, forget-before ms, window ms. Returns 1 when applied, 0 when the subscriber has
/// no context, 2 when the id was applied before.
/// A subscriber with no context gets none: an open must not make up a context (the open path
/// would then render instead of serving the `no-context` fallback).
const EMAIL_SCRIPT: &str = r#"
if redis.call('ZSCORE', KEYS[2], ARGV[5]) then return 2 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'email')
local email = {}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then email = decoded end
end
local kind, at, campaign, machine = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if machine == '1' then
  email.last_prefetch = at
else
  if kind == 'click' then
    email.last_click = at
    email.click_count = (tonumber(email.click_count) or 0) + 1
  elseif kind == 'vote' then
    email.last_vote = at
  else
    email.last_open = at
    email.open_count = (tonumber(email.open_count) or 0) + 1
  end
  email.last_campaign = campaign
end
redis.call('HSET', KEYS[1], 'email', cjson.encode(email))
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return 1
"#;

fn stream_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(STREAM_SCRIPT))
}

fn email_script() -> &'static redis::Script {
    static SCRIPT: OnceLock<redis::Script> = OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(EMAIL_SCRIPT))
}

/// The key of a subscriber's applied event ids (same Cluster slot as `ctx:{SUB}`).
pub(super) fn email_applied_key(subscriber: &crate::context::SubscriberId) -> String {
    format!("evdone:{{{}}}", subscriber.as_str())
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

/// What the replies to a batch's commands say: `replies[i]` are event `i`'s. An event with a
/// refused command is reported refused even if its other command went through (the stream
/// entry and the `email` update are separate commands, see the module notes).
fn read_replies(replies: &[Vec<&Value>]) -> Result<Written, EventError> {
    let mut written = Written::default();
    for (index, replies) in replies.iter().enumerate() {
        let mut refused = None;
        let mut duplicate = false;
        for reply in replies {
            match reply {
                Value::ServerError(error) => {
                    match verdict(error.code(), error.details().unwrap_or("")) {
                        Verdict::Retry => {
                            return Err(EventError::Unavailable(error.code().to_owned()))
                        }
                        Verdict::Refuse(reason) => {
                            refused.get_or_insert(reason);
                        }
                    }
                }
                // Both scripts answer 2 for an id applied before.
                Value::Int(2) => duplicate = true,
                _ => {}
            }
        }
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
    /// The event each command (after the `SCRIPT LOAD`s) belongs to.
    owners: Vec<usize>,
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
        owner: usize,
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
        part.owners.push(owner);
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
    async fn write(&self, batch: &[Event], max_len: u64) -> Result<Written, EventError> {
        let mut connection = self.events.get().map_err(|e| match e {
            StoreError::Backend(reason) => EventError::Backend(reason),
            other => EventError::Unavailable(other.to_string()),
        })?;
        self.replicas.refresh(&mut connection, false).await;
        let window = DEDUP_WINDOW.as_millis() as i64;
        let now = chrono::Utc::now().timestamp_millis();
        let forget_before = now - window;
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
        for (index, event) in batch.iter().enumerate() {
            let subscriber = event.subscriber_id();
            let stream = self.streams.key_for(subscriber.as_ref());
            let mut append = stream_script().key(&stream);
            append
                .key(self.streams.applied_key(&stream))
                .arg(&event.id)
                .arg(now)
                .arg(forget_before)
                .arg(window)
                .arg(max_len);
            for (field, value) in event.fields() {
                append.arg(field).arg(value);
            }
            parts.add(&self.replicas, &stream, index, &append);
            let Some(subscriber) = subscriber else {
                continue;
            };
            let context_key = subscriber.context_key();
            let mut fold = email_script().key(&context_key);
            fold.key(email_applied_key(&subscriber))
                .arg(event.kind.as_str())
                .arg(event.at.to_rfc3339_opts(SecondsFormat::Millis, true))
                .arg(&event.campaign)
                .arg(if event.machine { "1" } else { "0" })
                .arg(&event.id)
                .arg(now)
                .arg(forget_before)
                .arg(window);
            parts.add(&self.replicas, &context_key, index, &fold);
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
        let mut per_event: Vec<Vec<&Value>> = vec![Vec::new(); batch.len()];
        for (part, replies) in &sent {
            for (owner, reply) in part.owners.iter().zip(replies) {
                if let Some(replies) = per_event.get_mut(*owner) {
                    replies.push(reply);
                }
            }
        }
        read_replies(&per_event)
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

        let first = store.write(&batch, 1000).await.unwrap();
        assert_eq!(first, Written::default());
        let again = store.write(&batch, 1000).await.unwrap();
        assert_eq!(again.refused, vec![]);
        assert_eq!(again.duplicates, 3, "every event was applied already");

        assert_eq!(stream_len(&redis), 3);
        assert_eq!(open_count(&store, "alice").await, Some(2));
        assert_eq!(open_count(&store, "carol").await, Some(1));
        let ttl: i64 = redis::cmd("PTTL")
            .arg("evdone:{alice}")
            .query(&mut redis.connection())
            .unwrap();
        assert!(ttl > 0 && ttl <= DEDUP_WINDOW.as_millis() as i64, "{ttl}");

        // A new event of the same subscriber is still counted.
        store.write(&[open("alice")], 1000).await.unwrap();
        assert_eq!(open_count(&store, "alice").await, Some(3));
        assert_eq!(stream_len(&redis), 4);
    }

    #[tokio::test]
    async fn shards_keep_each_subscribers_events_and_applied_ids_together() {
        let redis = TestRedis::start();
        let store = redis.store_with(4).await;
        let subscribers: Vec<String> = (0..24).map(|n| format!("s{n}")).collect();
        for subscriber in &subscribers {
            redis.hset(&format!("ctx:{{{subscriber}}}"), "profile", "{}");
        }
        let batch: Vec<Event> = subscribers.iter().map(|s| open(s)).collect();
        store.write(&batch, 1000).await.unwrap();

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
            let applied: usize = redis::cmd("ZCARD")
                .arg(streams.applied_key(&key))
                .query(&mut redis.connection())
                .unwrap();
            assert_eq!(applied, entries.len(), "{key}'s ids are kept beside it");
            total += entries.len();
        }
        assert_eq!(total, 24);
        assert_eq!(stream_len(&redis), 0, "no single stream");
        for subscriber in &subscribers {
            assert_eq!(open_count(&store, subscriber).await, Some(1));
        }
    }

    /// Calls of `SCRIPT LOAD` so far (`INFO commandstats`).
    fn script_loads(redis: &TestRedis) -> u64 {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut redis.connection())
            .unwrap();
        stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_script|load:calls="))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn the_scripts_are_sent_once_and_again_when_redis_lost_them() {
        let redis = TestRedis::start();
        let store = redis.store().await;
        redis.hset("ctx:{alice}", "profile", "{}");
        store.write(&[open("alice")], 1000).await.unwrap();
        let loaded = script_loads(&redis);
        assert_eq!(loaded, 2, "both scripts with the first batch");
        store.write(&[open("alice")], 1000).await.unwrap();
        assert_eq!(script_loads(&redis), loaded, "not with the next");

        // A restarted (or newly promoted) master has no scripts: the batch is retried with them.
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<()>(&mut redis.connection())
            .unwrap();
        let batch = [open("alice")];
        assert!(
            store.write(&batch, 1000).await.is_err(),
            "NOSCRIPT: try again"
        );
        store.write(&batch, 1000).await.unwrap();
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

        let written = store.write(&batch, 1000).await.unwrap();
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
        let written = store.write(&[open("alice")], 1000).await.unwrap();
        assert_eq!(written.refused.len(), 1);
        assert_eq!(written.refused[0].reason, "wrong-type");
    }
}
