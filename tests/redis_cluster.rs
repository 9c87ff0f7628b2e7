//! opentime on a real Redis Cluster (started by each test: 3 masters, joined in about two
//! seconds) and on a master behind a real Sentinel: opens, the context API, locks, events and
//! the `email` counters, with subscribers spread over every master. Assertions read the node
//! that holds each subscriber's slot directly, so a key written to the wrong slot (or a command
//! that failed with `CROSSSLOT` or `MOVED`) fails them. One test kills a master of a cluster
//! with replicas: what the API acknowledged (with its copies) and the events counted before
//! are all still there after its replica took over.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Event streams on a cluster unless configured otherwise.
const SHARDS: u16 = 16;

fn subscribers(count: usize, prefix: &str) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}-{n}")).collect()
}

/// Writes Alice's sample fields into `ctx:{SUB}` of each subscriber, through the cluster.
fn seed(cluster: &RedisCluster, subscribers: &[String]) {
    let mut connection = cluster.connection();
    let fields = sample("alice");
    for subscriber in subscribers {
        for (field, value) in fields.as_object().expect("sample object") {
            redis::cmd("HSET")
                .arg(format!("ctx:{{{subscriber}}}"))
                .arg(field)
                .arg(value.to_string())
                .query::<()>(&mut connection)
                .expect("HSET");
        }
    }
}

/// The master port holding each subscriber's slot.
fn owners(cluster: &RedisCluster, subscribers: &[String]) -> HashMap<String, u16> {
    subscribers
        .iter()
        .map(|s| {
            let slot = cluster.slot(&format!("ctx:{{{s}}}"));
            (s.clone(), cluster.master_of(slot))
        })
        .collect()
}

/// A field of `ctx:{SUB}` read on the node that holds the slot (no redirect followed).
fn hget_on(cluster: &RedisCluster, port: u16, subscriber: &str, field: &str) -> Option<Value> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(format!("ctx:{{{subscriber}}}"))
        .arg(field)
        .query(&mut cluster.node(port).connection())
        .expect("HGET on the owning node");
    raw.map(|r| serde_json::from_str(&r).expect("JSON field"))
}

async fn api(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = client()
        .request(method, server.url(path))
        .header("authorization", format!("Bearer {CRM_TOKEN}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    send(request).await
}

/// Every event in every shard, by stream.
fn events_by_stream(cluster: &RedisCluster) -> HashMap<String, Vec<HashMap<String, String>>> {
    let mut connection = cluster.connection();
    (0..SHARDS)
        .map(|shard| {
            let stream = format!("events:opens:{{{shard}}}");
            let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query(&mut connection)
                .expect("XRANGE");
            (
                stream,
                entries.into_iter().map(|(_, fields)| fields).collect(),
            )
        })
        .collect()
}

fn event_count(cluster: &RedisCluster) -> usize {
    events_by_stream(cluster).values().map(Vec::len).sum()
}

fn open_count(cluster: &RedisCluster, subscriber: &str) -> Option<u64> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(format!("ctx:{{{subscriber}}}"))
        .arg("email")
        .query(&mut cluster.connection())
        .expect("HGET email");
    let email: Value = serde_json::from_str(&raw?).ok()?;
    email["open_count"].as_u64()
}

/// A server on `cluster`. The store deadline is long: these tests are about where data goes,
/// not how fast (a loaded machine must not turn a slow lookup into a fallback).
async fn cluster_server(cluster: &RedisCluster) -> TestServer {
    TestServer::builder()
        .redis_cluster(cluster)
        .channel_tokens(&[("sms", SMS_TOKEN), ("crm", CRM_TOKEN)])
        .store_timeout_ms(1500)
        .deadline_ms(5000)
        .start()
        .await
}

/// Waits until the server answers an open of `subscriber` without a fallback (it connects to
/// the cluster in the background).
async fn wait_until_serving(server: &TestServer, subscriber: &str) {
    let url = server.signed("demo/cart.png", subscriber);
    let serving = eventually(Duration::from_secs(15), || async {
        get(&url).await.header("x-opentime-fallback").is_none()
    })
    .await;
    assert!(serving, "the server reaches the cluster");
}

#[tokio::test]
async fn opens_the_context_api_and_locks_keep_each_subscriber_in_its_slot() {
    let cluster = RedisCluster::start(3, 0);
    let subscribers = subscribers(24, "slot");
    let owners = owners(&cluster, &subscribers);
    assert_eq!(
        owners.values().collect::<BTreeSet<_>>().len(),
        3,
        "the subscribers live on all three masters"
    );
    seed(&cluster, &subscribers);
    let server = cluster_server(&cluster).await;
    wait_until_serving(&server, &subscribers[0]).await;

    let expected = decode_png(&render_offline("demo", "cart", &sample("alice"), "slot-0"));
    for (n, subscriber) in subscribers.iter().enumerate() {
        let owner = owners[subscriber];
        // Reads: the rendered card, as offline with the same context.
        let open = get(&server.signed("demo/cart.png", subscriber)).await;
        assert_eq!(open.status, 200);
        assert_eq!(open.header("x-opentime-fallback"), None, "{subscriber}");
        if n == 0 {
            assert_same_picture(&open.png(), &expected);
        }

        // Writes through the API land in the subscriber's slot, on its master.
        let written = api(
            &server,
            reqwest::Method::PATCH,
            &format!("/v1/context/{subscriber}"),
            Some(json!({"sms": {"intent": "upgrade", "n": n}})),
        )
        .await;
        assert_eq!(written.status, 200, "{}", written.text());
        assert_eq!(written.json()["copies"], 1, "no replicas: one copy");
        assert_eq!(
            hget_on(&cluster, owner, subscriber, "sms"),
            Some(json!({"intent": "upgrade", "n": n}))
        );
        assert_eq!(
            hget_on(&cluster, owner, subscriber, "_by.sms").unwrap()["channel"],
            "crm"
        );
        let read = api(
            &server,
            reqwest::Method::GET,
            &format!("/v1/context/{subscriber}"),
            None,
        )
        .await;
        assert_eq!(read.json()["context"]["sms"]["n"], n);

        // A field deleted with its `_by` record.
        let deleted = api(
            &server,
            reqwest::Method::DELETE,
            &format!("/v1/context/{subscriber}/sms"),
            None,
        )
        .await;
        assert_eq!(deleted.json()["deleted"], true);
        assert_eq!(deleted.json()["copies"], 1);
        assert_eq!(hget_on(&cluster, owner, subscriber, "sms"), None);
        assert_eq!(hget_on(&cluster, owner, subscriber, "_by.sms"), None);

        // A lock lives beside the context, and erasure (which scans that slot) removes it.
        let locked = get(&server.signed("demo/cart_locked.png", subscriber)).await;
        assert_eq!(locked.header("x-opentime-fallback"), None);
        let lock = format!("lock:{{{subscriber}}}:demo:cart_locked");
        assert_eq!(
            cluster.keys_on(owner, &format!("lock:{{{subscriber}}}:*")),
            vec![lock]
        );
    }

    let erased = &subscribers[..6];
    for subscriber in erased {
        let answer = api(
            &server,
            reqwest::Method::DELETE,
            &format!("/v1/context/{subscriber}"),
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["deleted"], true);
        assert_eq!(answer.json()["locks_deleted"], 1);
        let owner = owners[subscriber];
        assert_eq!(
            cluster.keys_on(owner, &format!("*{{{subscriber}}}*")),
            Vec::<String>::new()
        );
    }
    // The others keep their locks.
    for subscriber in &subscribers[6..] {
        let owner = owners[subscriber];
        assert_eq!(
            cluster
                .keys_on(owner, &format!("lock:{{{subscriber}}}:*"))
                .len(),
            1
        );
    }
    let metrics = server.metrics().await;
    for reason in ["store-error", "store-unavailable", "store-timeout"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("opentime_fallbacks_total{{reason=\"{reason}\"}}")
            ),
            0.0,
            "{reason}: {metrics}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn events_are_sharded_over_the_slots_counted_once_and_read_back_by_one_helper() {
    let cluster = RedisCluster::start(3, 0);
    let subscribers = subscribers(30, "ev");
    seed(&cluster, &subscribers);
    let server = cluster_server(&cluster).await;
    wait_until_serving(&server, &subscribers[0]).await;
    // The fallback-free open above is an event too.
    let mut opens: HashMap<String, u64> = HashMap::from([(subscribers[0].clone(), 1)]);
    for (n, subscriber) in subscribers.iter().enumerate() {
        for _ in 0..=(n % 3) {
            let open = get(&server.signed("demo/cart.png", subscriber)).await;
            assert_eq!(open.header("x-opentime-fallback"), None);
            *opens.entry(subscriber.clone()).or_default() += 1;
        }
    }
    let total: u64 = opens.values().sum();
    let all_in = eventually(Duration::from_secs(15), || async {
        event_count(&cluster) as u64 == total
    })
    .await;
    assert!(all_in, "{} of {total} events", event_count(&cluster));

    let streams = events_by_stream(&cluster);
    let mut ids = BTreeSet::new();
    let mut masters = BTreeSet::new();
    let mut used = 0;
    for (stream, events) in &streams {
        if events.is_empty() {
            continue;
        }
        used += 1;
        masters.insert(cluster.master_of(cluster.slot(stream)));
        for event in events {
            let subscriber = &event["subscriber"];
            let shard = cluster.slot(&format!("ctx:{{{subscriber}}}")) % SHARDS;
            assert_eq!(stream, &format!("events:opens:{{{shard}}}"), "{event:?}");
            assert!(ids.insert(event["id"].clone()), "written once: {event:?}");
        }
    }
    assert!(used > 6, "{used} of {SHARDS} shards used");
    assert!(masters.len() >= 2, "the shards live on {masters:?}");
    for (subscriber, count) in &opens {
        assert_eq!(
            open_count(&cluster, subscriber),
            Some(*count),
            "{subscriber}"
        );
    }
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, "opentime_events_written_total"),
        total as f64
    );
    assert!(
        !metrics.contains("opentime_events_failed_total{"),
        "{metrics}"
    );

    // The helper reads every shard as one consumer group, and acknowledges what it printed.
    let args = |group: &str| opentime::config::EventsArgs {
        redis: opentime::config::RedisArgs {
            redis_url: None,
            redis_cluster: Some(cluster.seeds()),
            event_streams: None,
        },
        group: group.into(),
        consumer: "test".into(),
        from_start: true,
        follow: false,
        count: 7,
        no_ack: false,
    };
    let mut out = Vec::new();
    let read = opentime::run_events(&args("crm"), &mut out).await.unwrap();
    assert_eq!(read.streams, SHARDS);
    assert_eq!(read.groups_created, usize::from(SHARDS));
    assert_eq!(read.printed, total);
    let printed: BTreeSet<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            assert!(event["stream"]
                .as_str()
                .unwrap()
                .starts_with("events:opens:{"));
            event["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(printed, ids);
    let again = opentime::run_events(&args("crm"), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        (again.printed, again.groups_created),
        (0, 0),
        "all acknowledged"
    );
    for shard in 0..SHARDS {
        let pending: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(format!("events:opens:{{{shard}}}"))
            .arg("crm")
            .query(&mut cluster.connection())
            .unwrap();
        assert_eq!(
            pending.first(),
            Some(&redis::Value::Int(0)),
            "shard {shard}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledged_writes_and_counted_events_survive_a_master_failover() {
    let mut cluster = RedisCluster::start(3, 1);
    let subscribers = subscribers(24, "fo");
    let server = cluster_server(&cluster).await;
    let ready = eventually(Duration::from_secs(15), || async {
        api(&server, reqwest::Method::GET, "/v1/context/nobody", None)
            .await
            .status
            == 404
    })
    .await;
    assert!(ready, "the server reaches the cluster");

    // Every write is acknowledged with two copies: its master's and its replica's.
    let profile = sample("alice");
    for subscriber in &subscribers {
        let written = api(
            &server,
            reqwest::Method::PATCH,
            &format!("/v1/context/{subscriber}"),
            Some(profile.clone()),
        )
        .await;
        assert_eq!(written.status, 200, "{}", written.text());
        assert_eq!(written.json()["copies"], 2, "{}", written.text());
        let open = get(&server.signed("demo/cart.png", subscriber)).await;
        assert_eq!(open.header("x-opentime-fallback"), None);
    }
    let counted = eventually(Duration::from_secs(15), || async {
        subscribers
            .iter()
            .all(|s| open_count(&cluster, s) == Some(1))
    })
    .await;
    assert!(counted, "every open counted before the failover");

    // The master of the first subscriber's slot dies; its replica takes over.
    let slot = cluster.slot(&format!("ctx:{{{}}}", subscribers[0]));
    let dead = cluster.master_of(slot);
    let moved: Vec<&String> = subscribers
        .iter()
        .filter(|s| cluster.master_of(cluster.slot(&format!("ctx:{{{s}}}"))) == dead)
        .collect();
    cluster.kill(dead);
    let promoted = eventually(Duration::from_secs(30), || async {
        let table = cluster.slot_table();
        table.len() == 3 && table.iter().all(|(_, _, port)| *port != dead)
    })
    .await;
    assert!(promoted, "a replica took over the dead master's slots");

    // Nothing the API acknowledged is lost, and the renderer follows the new topology.
    let follows = eventually(Duration::from_secs(20), || async {
        let answer = api(
            &server,
            reqwest::Method::GET,
            &format!("/v1/context/{}", subscribers[0]),
            None,
        )
        .await;
        answer.status == 200
    })
    .await;
    assert!(follows, "the renderer reads the promoted replica");
    for subscriber in &subscribers {
        let read = api(
            &server,
            reqwest::Method::GET,
            &format!("/v1/context/{subscriber}"),
            None,
        )
        .await;
        assert_eq!(read.status, 200, "{subscriber}: {}", read.text());
        assert_eq!(
            read.json()["context"]["cart"],
            profile["cart"],
            "{subscriber}"
        );
        assert_eq!(
            read.json()["context"]["email"]["open_count"],
            1,
            "{subscriber}"
        );
    }
    // The promoted master has no replica yet: a write there says it holds one copy.
    let after = api(
        &server,
        reqwest::Method::PATCH,
        &format!("/v1/context/{}", moved[0]),
        Some(json!({"sms": {"after": true}})),
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(after.json()["copies"], 1);

    // Opens after the failover are served and counted once more, on every master.
    for subscriber in &subscribers {
        let open = get(&server.signed("demo/cart.png", subscriber)).await;
        assert_eq!(open.status, 200);
        assert_eq!(open.header("x-opentime-fallback"), None, "{subscriber}");
    }
    let counted = eventually(Duration::from_secs(15), || async {
        subscribers
            .iter()
            .all(|s| open_count(&cluster, s) == Some(2))
    })
    .await;
    assert!(
        counted,
        "each open counted once: {:?}",
        subscribers
            .iter()
            .map(|s| open_count(&cluster, s))
            .collect::<Vec<_>>()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_master_behind_sentinel_is_followed_across_a_failover() {
    let sentinel = RedisSentinel::start();
    let server = TestServer::builder()
        .redis_url(&sentinel.url())
        .channel_tokens(&[("crm", CRM_TOKEN)])
        .store_timeout_ms(1500)
        .deadline_ms(5000)
        .start()
        .await;
    let written = eventually(Duration::from_secs(15), || async {
        api(
            &server,
            reqwest::Method::PATCH,
            "/v1/context/alice",
            Some(sample("alice")),
        )
        .await
        .status
            == 200
    })
    .await;
    assert!(written, "the server finds the master through Sentinel");
    let again = api(
        &server,
        reqwest::Method::PATCH,
        "/v1/context/alice",
        Some(sample("alice")),
    )
    .await;
    assert_eq!(
        again.json()["copies"],
        2,
        "master and replica: {}",
        again.text()
    );
    let open = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(open.header("x-opentime-fallback"), None);

    // A write its replica does not acknowledge in time is refused, and safe to send again;
    // an open's event waits (its batch is retried) until the replica is back.
    sentinel.pause_replica();
    let loyalty = json!({"loyalty": {"points": 7}});
    let refused = api(
        &server,
        reqwest::Method::PATCH,
        "/v1/context/alice",
        Some(loyalty.clone()),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"], "not-replicated");
    assert_eq!(refused.json()["copies"], 1);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let open = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(open.status, 200);
    sentinel.resume_replica();
    let accepted = api(
        &server,
        reqwest::Method::PATCH,
        "/v1/context/alice",
        Some(loyalty),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_eq!(accepted.json()["copies"], 2);

    let before = sentinel.current_master();
    sentinel.failover();
    assert_ne!(sentinel.current_master(), before);

    // Writes and opens go to the new master; what was acknowledged before is there.
    let follows = eventually(Duration::from_secs(20), || async {
        let answer = api(
            &server,
            reqwest::Method::PATCH,
            "/v1/context/alice",
            Some(json!({"sms": {"after": "failover"}})),
        )
        .await;
        answer.status == 200
    })
    .await;
    assert!(follows, "the server follows Sentinel to the new master");
    let mut master =
        redis::Client::open(format!("redis://127.0.0.1:{}", sentinel.current_master()))
            .and_then(|c| c.get_connection())
            .unwrap();
    let sms: String = redis::cmd("HGET")
        .arg("ctx:{alice}")
        .arg("sms")
        .query(&mut master)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&sms).unwrap(),
        json!({"after": "failover"})
    );
    let cart: String = redis::cmd("HGET")
        .arg("ctx:{alice}")
        .arg("cart")
        .query(&mut master)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&cart).unwrap(),
        sample("alice")["cart"]
    );
    let opens = std::sync::atomic::AtomicU64::new(2);
    let served = eventually(Duration::from_secs(10), || async {
        opens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        get(&server.signed("demo/cart.png", "alice"))
            .await
            .header("x-opentime-fallback")
            .is_none()
    })
    .await;
    assert!(served);
    let opens = opens.into_inner();
    let mut open_count = || {
        let email: Option<String> = redis::cmd("HGET")
            .arg("ctx:{alice}")
            .arg("email")
            .query(&mut master)
            .unwrap();
        email
            .and_then(|e| serde_json::from_str::<Value>(&e).ok())
            .and_then(|e| e["open_count"].as_u64())
    };
    let mut counted = None;
    for _ in 0..200 {
        counted = open_count();
        if counted == Some(opens) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        counted,
        Some(opens),
        "every open, before and after the failover, counted once on the new master"
    );
    server.shutdown().await;
}

/// Polls and tests on a cluster: each vote and arm record sits in its subscriber's slot, the
/// counters in the campaign's, every count exact (the live campaign's poll and learning test).
#[tokio::test]
async fn votes_and_test_arms_are_counted_in_their_slots_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let voters = subscribers(30, "voter");
    seed(&cluster, &voters);
    let server = cluster_server(&cluster).await;
    wait_until_serving(&server, &voters[0]).await;
    let options = ["running", "yoga", "cycling"];
    let http = no_redirects();
    for (n, voter) in voters.iter().enumerate() {
        let url = format!(
            "{}/vote/live/sport/{}?s={voter}&t={}",
            server.base,
            options[n % 3],
            token(voter)
        );
        let answer = send(http.get(&url)).await;
        assert_eq!(answer.status, 302, "{}", answer.text());
        let arm = send(client().get(server.signed("live/offer.png", voter))).await;
        assert_eq!(arm.header("x-opentime-fallback"), None);
    }
    let mut connection = cluster.connection();
    let votes: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg("poll:{live}:sport")
        .query(&mut connection)
        .unwrap();
    assert_eq!(votes.values().sum::<u64>(), 30);
    assert!(votes.values().all(|&count| count == 10), "{votes:?}");
    let arms: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg("abtest:{live}:offer")
        .query(&mut connection)
        .unwrap();
    let opens: u64 = arms
        .iter()
        .filter(|(counter, _)| counter.ends_with(":opens"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(opens, 30, "{arms:?}");
    // Each subscriber's vote and arm are on the node that holds their slot.
    for (voter, port) in owners(&cluster, &voters) {
        let node = cluster.node(port);
        let vote: Option<String> = redis::cmd("GET")
            .arg(format!("vote:{{{voter}}}:live:sport"))
            .query(&mut node.connection())
            .unwrap();
        assert!(vote.is_some(), "{voter}");
        let arm: Option<String> = redis::cmd("GET")
            .arg(format!("lock:{{{voter}}}:live:offer:arm"))
            .query(&mut node.connection())
            .unwrap();
        assert!(arm.is_some_and(|a| a.ends_with("|h")), "{voter}");
        assert_eq!(
            hget_on(&cluster, port, &voter, "polls").map(|p| p["live"]["sport"].is_string()),
            Some(true)
        );
    }
    let results = get(&format!("{}/html/live/sport_results.html", server.base)).await;
    assert!(
        results.text().contains("data-total=\"30\""),
        "{}",
        results.text()
    );
}
