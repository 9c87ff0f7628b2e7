//! How many copies of a write exist before opentime says it is written: after a write, `WAIT n`
//! on the same connection blocks until `n` replicas of that master acknowledged it (or the wait
//! runs out) and answers how many did.
//!
//! `n` is the setting `OPENTIME_WRITE_REPLICAS` (1 by default) capped by the replicas the master
//! has, so a server without replicas (a single Redis, a replica promoted while its old master
//! is still down) answers at once with one copy instead of waiting in vain, and the answer says
//! so. What the masters have is a [`ReplicaView`], refreshed at most every second (and after a
//! failed write): `INFO replication` of the one master, or `CLUSTER SHARDS` of a Cluster (each
//! slot range's master and its replicas whose health is `online`; `CLUSTER SLOTS` before Redis
//! 7.0, which leaves out failed replicas and those that have not received data yet). The
//! Cluster view also says which node holds a slot, so the event writer can send each node one
//! pipeline.
//!
//! A master that had a replica a moment ago and has none now may be the loser of a failover:
//! its replica was just promoted, and what it accepts now will be thrown away when it rejoins
//! as a replica. So one master (one server, or Sentinel's) counts the replicas it had within
//! the last [`REMEMBER`] under the same replication id (`master_replid`, which a promotion
//! changes): writes on it wait for them, and fail as `not-replicated` rather than be
//! acknowledged on one copy, until the replica has been gone that long. (A Cluster master on
//! the losing side stops taking writes itself once it cannot reach the majority.)

use super::link::Connection;
use super::slots::SLOTS;
use super::target::NodeAddress;
use crate::context::Copies;
use arc_swap::ArcSwap;
use redis::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How old the view may be before a write refreshes it.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// How long one master's replicas are still counted after they went away.
const REMEMBER: Duration = Duration::from_secs(30);

/// Replicas a write waits for, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WritePolicy {
    /// `OPENTIME_WRITE_REPLICAS`: replicas to wait for, at most (0 = do not wait).
    pub replicas: u32,
    /// `OPENTIME_WRITE_WAIT_MS`: the longest `WAIT`.
    pub wait: Duration,
}

/// One range of slots: the master that holds it and its usable replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub first: u16,
    pub last: u16,
    pub master: NodeAddress,
    pub replicas: u32,
}

/// What the masters look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Topology {
    /// Not known yet: wait for as many replicas as the setting asks (and learn more).
    Unknown,
    /// One master with this many online replicas.
    Single { replicas: u32 },
    /// A Cluster's slot ranges, sorted.
    Cluster(Vec<SlotRange>),
}

/// Where a write of one slot goes and how many replicas it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// The Cluster node holding the slot (`None` for one server, or when not known).
    pub node: Option<NodeAddress>,
    /// The `n` of `WAIT n` (0: send no `WAIT`).
    pub wait_for: u32,
}

struct Seen {
    topology: Topology,
    at: Option<Instant>,
}

/// The most replicas one master (one replication id) had lately.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remembered {
    replid: String,
    replicas: u32,
    seen: Instant,
}

/// One master's replicas now, or as many as it had lately under the same replication id.
fn remember(last: Option<&Remembered>, replid: &str, online: u32, now: Instant) -> Remembered {
    match last {
        Some(last)
            if last.replid == replid
                && last.replicas > online
                && now.duration_since(last.seen) < REMEMBER =>
        {
            last.clone()
        }
        _ => Remembered {
            replid: replid.to_owned(),
            replicas: online,
            seen: now,
        },
    }
}

/// The masters as last seen, shared by a store's connections.
pub(super) struct ReplicaView {
    policy: WritePolicy,
    seen: ArcSwap<Seen>,
    refreshing: AtomicBool,
    /// Per replication id (a few: two connections may briefly see two masters).
    remembered: std::sync::Mutex<Vec<Remembered>>,
}

impl ReplicaView {
    pub(super) fn new(policy: WritePolicy) -> Self {
        Self {
            policy,
            seen: ArcSwap::from_pointee(Seen {
                topology: Topology::Unknown,
                at: None,
            }),
            refreshing: AtomicBool::new(false),
            remembered: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Where a write to `slot` goes and how many replicas it waits for.
    pub(super) fn plan(&self, slot: u16) -> Plan {
        let seen = self.seen.load();
        plan_for(&seen.topology, self.policy.replicas, slot)
    }

    /// Refreshes the view when it is older than a second (or `force`), through `connection`.
    /// One refresh at a time; the others keep the view they have.
    pub(super) async fn refresh(&self, connection: &mut Connection, force: bool) {
        if self.policy.replicas == 0 && !matches!(connection, Connection::Cluster(_)) {
            return;
        }
        let stale = self
            .seen
            .load()
            .at
            .is_none_or(|at| at.elapsed() >= FRESH_FOR);
        if !(stale || force) || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        match read_topology(connection).await {
            Ok(Observed::Cluster(ranges)) => self.seen.store(Arc::new(Seen {
                topology: Topology::Cluster(ranges),
                at: Some(Instant::now()),
            })),
            Ok(Observed::Single { replid, online }) => {
                let now = Instant::now();
                let replicas = match self.remembered.lock() {
                    Ok(mut remembered) => {
                        let last = remembered.iter().find(|r| r.replid == replid);
                        let kept = remember(last, &replid, online, now);
                        let replicas = kept.replicas;
                        remembered.retain(|r| r.replid != replid);
                        remembered.insert(0, kept);
                        remembered.truncate(8);
                        replicas
                    }
                    Err(_) => online,
                };
                self.seen.store(Arc::new(Seen {
                    topology: Topology::Single { replicas },
                    at: Some(now),
                }));
            }
            Err(error) => tracing::debug!(
                error = error.category(),
                "cannot read the Redis topology; keeping the last one"
            ),
        }
        self.refreshing.store(false, Ordering::Release);
    }

    /// Copies from a `WAIT` reply (`None`: no `WAIT` was sent).
    pub(super) fn copies(wait_for: u32, acknowledged: Option<&Value>) -> Copies {
        let held = match acknowledged {
            Some(Value::Int(n)) => 1 + u32::try_from(*n).unwrap_or(0),
            _ => 1,
        };
        Copies {
            held,
            wanted: 1 + wait_for,
        }
    }

    /// Appends `WAIT n ms` to a pipeline when the plan waits.
    pub(super) fn add_wait(&self, pipeline: &mut redis::Pipeline, plan: &Plan) {
        if plan.wait_for > 0 {
            pipeline
                .cmd("WAIT")
                .arg(plan.wait_for)
                .arg(self.policy.wait.as_millis().max(1) as u64);
        }
    }
}

fn plan_for(topology: &Topology, wanted: u32, slot: u16) -> Plan {
    match topology {
        Topology::Unknown => Plan {
            node: None,
            wait_for: wanted,
        },
        Topology::Single { replicas } => Plan {
            node: None,
            wait_for: wanted.min(*replicas),
        },
        Topology::Cluster(ranges) => {
            let index = ranges.partition_point(|range| range.last < slot);
            match ranges.get(index).filter(|range| range.first <= slot) {
                Some(range) => Plan {
                    node: Some(range.master.clone()),
                    wait_for: wanted.min(range.replicas),
                },
                None => Plan {
                    node: None,
                    wait_for: wanted,
                },
            }
        }
    }
}

/// What one look at the masters showed.
enum Observed {
    Cluster(Vec<SlotRange>),
    Single { replid: String, online: u32 },
}

async fn read_topology(connection: &mut Connection) -> redis::RedisResult<Observed> {
    match connection {
        Connection::Cluster(_) => {
            let shards = connection
                .on_any_node(redis::cmd("CLUSTER").arg("SHARDS"))
                .await
                .ok()
                .and_then(|reply| parse_cluster_shards(&reply));
            if let Some(ranges) = shards {
                return Ok(Observed::Cluster(ranges));
            }
            let slots: Value = connection
                .on_any_node(redis::cmd("CLUSTER").arg("SLOTS"))
                .await?;
            Ok(Observed::Cluster(parse_cluster_slots(&slots)))
        }
        _ => {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(connection)
                .await?;
            let replid = info
                .lines()
                .find_map(|line| line.trim().strip_prefix("master_replid:"))
                .unwrap_or_default()
                .to_owned();
            Ok(Observed::Single {
                replid,
                online: online_replicas(&info),
            })
        }
    }
}

/// Replicas in `INFO replication` that are online (`slaveN:ip=…,state=online,…`).
pub(super) fn online_replicas(info: &str) -> u32 {
    let online = info
        .lines()
        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
        .count();
    u32::try_from(online).unwrap_or(u32::MAX)
}

/// `CLUSTER SLOTS`: `[[first, last, [host, port, id, …], [replica host, port, id, …]…]…]`.
/// Redis leaves out replicas it marked failed. Entries that do not read as such are skipped.
pub(super) fn parse_cluster_slots(reply: &Value) -> Vec<SlotRange> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    let mut ranges: Vec<SlotRange> = entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let number = |value: &Value| match value {
                Value::Int(n) => u16::try_from(*n).ok().filter(|n| *n < SLOTS),
                _ => None,
            };
            let first = number(parts.first()?)?;
            let last = number(parts.get(1)?)?;
            let master = node_of(parts.get(2)?)?;
            let replicas = parts.iter().skip(3).filter_map(node_of).count();
            (first <= last).then(|| SlotRange {
                first,
                last,
                master,
                replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
            })
        })
        .collect();
    ranges.sort_by_key(|range| range.first);
    ranges
}

/// `CLUSTER SHARDS` (Redis ≥ 7.0): per shard, `slots` (first/last pairs) and `nodes` (each with
/// `endpoint` or `ip`, `port`, `role` and `health`). `None` when the reply does not read as such (an older
/// Redis answers with an error).
pub(super) fn parse_cluster_shards(reply: &Value) -> Option<Vec<SlotRange>> {
    let Value::Array(shards) = reply else {
        return None;
    };
    let mut ranges = Vec::new();
    for shard in shards {
        let slots = match field(shard, "slots")? {
            Value::Array(slots) => slots,
            _ => return None,
        };
        let Value::Array(nodes) = field(shard, "nodes")? else {
            return None;
        };
        let text = |node: &Value, name: &str| match field(node, name) {
            Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
            Some(Value::SimpleString(text)) => Some(text.clone()),
            _ => None,
        };
        let online = |node: &&Value| text(node, "health").as_deref() == Some("online");
        let master = nodes
            .iter()
            .filter(online)
            .find(|node| text(node, "role").as_deref() == Some("master"))
            .and_then(|node| {
                // The preferred endpoint, as CLUSTER SLOTS (and so the cluster client) names
                // the node; its IP when there is none.
                let usable = |h: &String| !h.is_empty() && h != "?";
                let host = text(node, "endpoint")
                    .filter(usable)
                    .or_else(|| text(node, "ip").filter(usable))?;
                let port = match field(node, "port")? {
                    Value::Int(port) => u16::try_from(*port).ok()?,
                    _ => return None,
                };
                Some(NodeAddress { host, port })
            });
        let Some(master) = master else {
            continue; // no online master (failing over): writes there are routed by key
        };
        let replicas = nodes
            .iter()
            .filter(online)
            .filter(|node| text(node, "role").as_deref() == Some("replica"))
            .count();
        for pair in slots.chunks(2) {
            let number = |value: Option<&Value>| match value {
                Some(Value::Int(n)) => u16::try_from(*n).ok().filter(|n| *n < SLOTS),
                _ => None,
            };
            let (Some(first), Some(last)) = (number(pair.first()), number(pair.get(1))) else {
                return None;
            };
            if first <= last {
                ranges.push(SlotRange {
                    first,
                    last,
                    master: master.clone(),
                    replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
                });
            }
        }
    }
    ranges.sort_by_key(|range| range.first);
    Some(ranges)
}

/// One field of a reply that is a map (RESP3) or a flat key/value array (RESP2).
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let is = |key: &Value| match key {
        Value::BulkString(bytes) => bytes == name.as_bytes(),
        Value::SimpleString(text) => text == name,
        _ => false,
    };
    match value {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| is(k)).map(|(_, v)| v),
        Value::Array(items) => items
            .chunks(2)
            .find(|pair| pair.first().is_some_and(is))
            .and_then(|pair| pair.get(1)),
        _ => None,
    }
}

fn node_of(value: &Value) -> Option<NodeAddress> {
    let Value::Array(parts) = value else {
        return None;
    };
    let host = match parts.first()? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    let port = match parts.get(1)? {
        Value::Int(port) => u16::try_from(*port).ok()?,
        _ => return None,
    };
    (!host.is_empty() && host != "?").then_some(NodeAddress { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![bulk(host), Value::Int(port), bulk("0123abcd")])
    }

    #[test]
    fn counts_only_online_replicas() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=0\r\n\
                    slave1:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=0\r\n";
        assert_eq!(online_replicas(info), 1);
        assert_eq!(online_replicas("role:master\r\nconnected_slaves:0\r\n"), 0);
    }

    #[test]
    fn reads_cluster_slots_and_plans_each_slot() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node("?", 7002)]),
            Value::Int(3),
        ]);
        let ranges = parse_cluster_slots(&reply);
        assert_eq!(ranges.len(), 2, "the unknown endpoint's range is skipped");
        assert_eq!(ranges[0].first, 0);
        assert_eq!(ranges[0].replicas, 1);
        let topology = Topology::Cluster(ranges);
        let at = |slot| plan_for(&topology, 1, slot);
        assert_eq!(at(0).wait_for, 1);
        assert_eq!(at(5460).node.unwrap().port, 7000);
        assert_eq!(at(5461).node.unwrap().port, 7001);
        assert_eq!(
            at(6000).wait_for,
            0,
            "a master without replicas is not waited for"
        );
        assert_eq!(
            at(12000),
            Plan {
                node: None,
                wait_for: 1
            },
            "a slot nobody holds: route by key, wait as asked"
        );
        assert_eq!(plan_for(&topology, 0, 0).wait_for, 0);
    }

    #[test]
    fn a_master_that_just_lost_its_replica_still_waits_for_it() {
        let start = Instant::now();
        let had_one = remember(None, "aaa", 1, start);
        // The replica goes away: still counted for a while, under the same replication id.
        let later = start + Duration::from_secs(5);
        assert_eq!(remember(Some(&had_one), "aaa", 0, later).replicas, 1);
        assert_eq!(
            remember(Some(&had_one), "aaa", 0, start + REMEMBER).replicas,
            0
        );
        // A promoted replica has a new replication id: its own count.
        assert_eq!(remember(Some(&had_one), "bbb", 0, later).replicas, 0);
        // More replicas than before count at once.
        assert_eq!(remember(Some(&had_one), "aaa", 2, later).replicas, 2);
    }

    #[test]
    fn reads_cluster_shards_counting_online_replicas() {
        let node = |port: i64, role: &str, health: &str| {
            Value::Array(vec![
                bulk("id"),
                bulk("abc"),
                bulk("port"),
                Value::Int(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("endpoint"),
                bulk(if port == 7001 {
                    "redis-b.internal"
                } else {
                    "127.0.0.1"
                }),
                bulk("role"),
                bulk(role),
                bulk("replication-offset"),
                Value::Int(0),
                bulk("health"),
                bulk(health),
            ])
        };
        let shard = |slots: Vec<i64>, nodes: Vec<Value>| {
            Value::Array(vec![
                bulk("slots"),
                Value::Array(slots.into_iter().map(Value::Int).collect()),
                bulk("nodes"),
                Value::Array(nodes),
            ])
        };
        let reply = Value::Array(vec![
            shard(
                vec![0, 100, 200, 5460],
                vec![
                    node(7000, "master", "online"),
                    node(7003, "replica", "online"),
                ],
            ),
            shard(
                vec![5461, 16383],
                vec![
                    node(7001, "master", "online"),
                    node(7004, "replica", "loading"),
                    node(7005, "replica", "failed"),
                ],
            ),
            shard(vec![101, 199], vec![node(7002, "master", "failed")]),
        ]);
        let ranges = parse_cluster_shards(&reply).unwrap();
        assert_eq!(ranges.len(), 3, "{ranges:?}");
        assert_eq!(
            (ranges[0].first, ranges[0].last, ranges[0].replicas),
            (0, 100, 1)
        );
        assert_eq!((ranges[1].first, ranges[1].master.port), (200, 7000));
        assert_eq!((ranges[2].first, ranges[2].replicas), (5461, 0));
        assert_eq!(
            ranges[2].master.host, "redis-b.internal",
            "named as CLUSTER SLOTS names it"
        );
        let topology = Topology::Cluster(ranges);
        assert_eq!(
            plan_for(&topology, 1, 150).node,
            None,
            "a shard failing over"
        );
        assert_eq!(parse_cluster_shards(&Value::Int(1)), None);
        assert_eq!(
            parse_cluster_shards(&Value::Array(vec![Value::Array(vec![bulk("x")])])),
            None
        );
    }

    #[test]
    fn copies_come_from_the_wait_reply() {
        assert_eq!(
            ReplicaView::copies(1, Some(&Value::Int(1))),
            Copies { held: 2, wanted: 2 }
        );
        assert!(!ReplicaView::copies(1, Some(&Value::Int(0))).enough());
        assert_eq!(ReplicaView::copies(0, None), Copies::ONE);
        assert_eq!(
            plan_for(&Topology::Single { replicas: 0 }, 1, 7).wait_for,
            0
        );
        assert_eq!(plan_for(&Topology::Unknown, 2, 7).wait_for, 2);
    }
}
