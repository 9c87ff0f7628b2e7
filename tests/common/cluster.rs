//! A real Redis Cluster per test (`redis-server --cluster-enabled yes` nodes joined with
//! `CLUSTER ADDSLOTS`/`MEET`/`REPLICATE`), and a real Sentinel set-up (a master, a replica and
//! one sentinel). Every process is killed and every directory removed when the value is
//! dropped.
//!
//! A cluster node also listens on its port + 10000 (the cluster bus), and the OS hands out
//! ephemeral ports from 32768 up, so cluster ports are taken from 12000-22000 (bus ports
//! 22000-32000) where nothing else in the tests binds; each is checked free (both of them)
//! before use, and a node that still fails to bind is started again on other ports.

use super::free_port;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How long a node may take to start, or the cluster to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// One `redis-server` of a cluster.
pub struct ClusterNode {
    pub port: u16,
    pub id: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    pub fn connection(&self) -> redis::Connection {
        node_connection(self.port).expect("connect to a cluster node")
    }

    pub fn alive(&self) -> bool {
        self.child.is_some()
    }
}

/// A Redis Cluster of `masters` masters, each with `replicas` replicas.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts and joins the cluster; returns once every node sees every slot covered (and each
    /// replica has synced with its master).
    pub fn start(masters: usize, replicas: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let count = masters * (1 + replicas);
        let mut nodes: Vec<ClusterNode> = (0..count)
            .map(|n| launch_node(&dir.path().join(format!("node{n}"))))
            .collect();
        for node in &mut nodes {
            let id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut node.connection())
                .expect("CLUSTER MYID");
            node.id = id;
        }
        // Slots, split evenly over the masters.
        let per = 16384 / masters;
        for (n, node) in nodes.iter().take(masters).enumerate() {
            let first = n * per;
            let last = if n + 1 == masters {
                16383
            } else {
                first + per - 1
            };
            let slots: Vec<usize> = (first..=last).collect();
            redis::cmd("CLUSTER")
                .arg("ADDSLOTS")
                .arg(&slots)
                .query::<()>(&mut node.connection())
                .expect("CLUSTER ADDSLOTS");
        }
        let first = nodes[0].port;
        for node in nodes.iter().skip(1) {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .query::<()>(&mut node_connection(first).expect("node 0"))
                .expect("CLUSTER MEET");
        }
        // Replicas: node masters + k*masters + m replicates master m.
        for r in 0..replicas {
            for m in 0..masters {
                let replica = &nodes[masters + r * masters + m];
                let master_id = nodes[m].id.clone();
                wait_for(
                    || knows(replica.port, &master_id),
                    "a replica to learn its master",
                );
                redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&master_id)
                    .query::<()>(&mut replica.connection())
                    .expect("CLUSTER REPLICATE");
            }
        }
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_until_settled(masters, replicas);
        cluster
    }

    /// Waits until every live node says `cluster_state:ok`, sees `masters` masters holding
    /// every slot with `replicas` replicas each, and every replica's link to its master is up.
    pub fn wait_until_settled(&self, masters: usize, replicas: usize) {
        wait_for(
            || {
                self.nodes.iter().filter(|n| n.alive()).all(|node| {
                    let Ok(mut connection) = node_connection(node.port) else {
                        return false;
                    };
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query(&mut connection)
                        .unwrap_or_default();
                    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query(&mut connection)
                        .unwrap_or_default();
                    let replication: String = redis::cmd("INFO")
                        .arg("replication")
                        .query(&mut connection)
                        .unwrap_or_default();
                    let linked = !replication.contains("role:slave")
                        || replication.contains("master_link_status:up");
                    let shaped = slots.len() == masters
                        && slots.iter().all(|range| match range {
                            redis::Value::Array(parts) => parts.len() == 3 + replicas,
                            _ => false,
                        });
                    info.contains("cluster_state:ok") && shaped && linked
                })
            },
            "the cluster to settle",
        );
    }

    /// Seed nodes for `OPENTIME_REDIS_CLUSTER`: every node.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A connection that follows the cluster (for the test's own reads and writes).
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect();
        redis::cluster::ClusterClient::new(nodes)
            .and_then(|client| client.get_connection())
            .expect("cluster connection")
    }

    /// The slot of `key`, as the cluster computes it.
    pub fn slot(&self, key: &str) -> u16 {
        let node = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node.connection())
            .expect("CLUSTER KEYSLOT")
    }

    /// Which node (by port) is the master of `slot` now, as a live node sees it.
    pub fn master_of(&self, slot: u16) -> u16 {
        self.slot_table()
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, port)| port)
            .expect("every slot is held")
    }

    /// `(first, last, master port)` for every slot range.
    pub fn slot_table(&self) -> Vec<(u16, u16, u16)> {
        let node = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut node.connection())
            .expect("CLUSTER SLOTS")
            .into_iter()
            .filter_map(|range| match range {
                redis::Value::Array(parts) if parts.len() >= 3 => {
                    let first: u16 = redis::from_redis_value_ref(&parts[0]).ok()?;
                    let last: u16 = redis::from_redis_value_ref(&parts[1]).ok()?;
                    let master: Vec<redis::Value> = redis::from_redis_value_ref(&parts[2]).ok()?;
                    let host: String = redis::from_redis_value_ref(master.first()?).ok()?;
                    let port: u16 = redis::from_redis_value_ref(master.get(1)?).ok()?;
                    Some((first, last, (host, port)))
                }
                _ => None,
            })
            .collect();
        ranges
            .into_iter()
            .map(|(first, last, (_, port))| (first, last, port))
            .collect()
    }

    /// The node listening on `port`.
    pub fn node(&self, port: u16) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// Kills a node (SIGKILL, as a crash would).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Every key on one node (by port), read on that node.
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.node(port).connection())
            .expect("KEYS")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A Redis master with one replica, watched by one Sentinel (quorum 1, a master is down after
/// 1 s without answers).
pub struct RedisSentinel {
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    pub const MASTER: &'static str = "opentime";

    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
        let mut children = Vec::new();
        for (port, replica_of) in [(master_port, None), (replica_port, Some(master_port))] {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir);
            if let Some(master) = replica_of {
                command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
            children.push(spawn(&mut command));
            wait_for(|| node_connection(port).is_ok(), "a redis-server to start");
        }
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {m} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {m} 1000\n\
                 sentinel failover-timeout {m} 4000\n\
                 sentinel parallel-syncs {m} 1\n",
                dir.path().display(),
                m = Self::MASTER,
            ),
        )
        .expect("sentinel.conf");
        children.push(spawn(
            Command::new("redis-server").arg(&config).arg("--sentinel"),
        ));
        let sentinel = Self {
            master_port,
            replica_port,
            sentinel_port,
            children,
            _dir: dir,
        };
        // Ready when the replica is synced and the sentinel knows it (a failover needs one).
        wait_for(
            || {
                let synced = node_connection(replica_port)
                    .and_then(|mut c| {
                        redis::cmd("INFO")
                            .arg("replication")
                            .query::<String>(&mut c)
                    })
                    .is_ok_and(|info| info.contains("master_link_status:up"));
                let known = node_connection(sentinel_port)
                    .and_then(|mut c| {
                        redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(Self::MASTER)
                            .query::<Vec<HashMap<String, String>>>(&mut c)
                    })
                    .is_ok_and(|replicas| {
                        replicas
                            .iter()
                            .any(|r| r.get("flags").is_some_and(|f| f == "slave"))
                    });
                synced && known
            },
            "the replica to sync and the sentinel to see it",
        );
        sentinel
    }

    /// `OPENTIME_REDIS_URL` for this set-up.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{}",
            self.sentinel_port,
            Self::MASTER
        )
    }

    /// Stops the replica's process (SIGSTOP): it stays connected but acknowledges nothing.
    pub fn pause_replica(&self) {
        self.signal_replica("-STOP");
    }

    /// Lets a paused replica run again (SIGCONT).
    pub fn resume_replica(&self) {
        self.signal_replica("-CONT");
    }

    fn signal_replica(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.children[1].id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// The port of the master the sentinel names now.
    pub fn current_master(&self) -> u16 {
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(Self::MASTER)
            .query(&mut node_connection(self.sentinel_port).expect("sentinel"))
            .expect("get-master-addr-by-name");
        port
    }

    /// Asks the sentinel to fail the master over to the replica, and waits until the replica
    /// says it is the master.
    pub fn failover(&self) {
        let before = self.current_master();
        redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(Self::MASTER)
            .query::<()>(&mut node_connection(self.sentinel_port).expect("sentinel"))
            .expect("SENTINEL FAILOVER");
        wait_for(
            || {
                let now = self.current_master();
                now != before
                    && node_connection(now)
                        .and_then(|mut c| {
                            redis::cmd("INFO")
                                .arg("replication")
                                .query::<String>(&mut c)
                        })
                        .is_ok_and(|info| info.contains("role:master"))
            },
            "the failover",
        );
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.resume_replica();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ports handed out so far in this process (so two clusters of one test binary never collide).
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port in 12000-22000 that is free, with its bus port (port + 10000) free too.
fn cluster_port() -> u16 {
    let offset = (std::process::id() % 1000) as u16 * 10;
    for _ in 0..10_000 {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = 12_000 + (offset + n) % 10_000;
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free cluster port in 12000-22000");
}

/// Starts one cluster node in `dir`; tries other ports if it cannot bind.
fn launch_node(dir: &Path) -> ClusterNode {
    std::fs::create_dir_all(dir).expect("node dir");
    for _ in 0..5 {
        let port = cluster_port();
        let mut child = spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--enable-debug-command", "local"])
                .arg("--dir")
                .arg(dir),
        );
        let started = Instant::now();
        while started.elapsed() < SETTLE {
            if node_connection(port).is_ok() {
                return ClusterNode {
                    port,
                    id: String::new(),
                    dir: dir.to_owned(),
                    child: Some(child),
                };
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // could not bind: another port
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(dir.join("nodes.conf"));
    }
    panic!("a cluster node did not start in {}", dir.display());
}

fn spawn(command: &mut Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test installs it)")
}

fn node_connection(port: u16) -> redis::RedisResult<redis::Connection> {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    redis::cmd("PING").query::<String>(&mut connection)?;
    Ok(connection)
}

/// Whether the node on `port` has `id` in its node table.
fn knows(port: u16, id: &str) -> bool {
    node_connection(port)
        .and_then(|mut c| redis::cmd("CLUSTER").arg("NODES").query::<String>(&mut c))
        .is_ok_and(|nodes| nodes.contains(id))
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while started.elapsed() < SETTLE {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}
