//! Event safety: a command the store refuses drops its own event only (the writer neither
//! wedges on it nor writes the rest twice), and tracking pixels and shared-block opens without
//! a verified subscriber are counted, never written. Real TCP, a real `redis-server`. (A batch
//! sent twice counting once, and the lock script: unit tests in `src/store/redis/`.)

mod common;

use common::*;
use std::time::Duration;

fn pixel(server: &TestServer, subscriber: &str) -> String {
    server.url(&format!(
        "/open/demo.gif?s={subscriber}&t={}",
        token(subscriber)
    ))
}

/// The stream entries of one subscriber.
fn entries_of(redis: &RedisServer, subscriber: &str) -> usize {
    redis
        .events()
        .iter()
        .filter(|e| e["subscriber"] == subscriber)
        .count()
}

/// Two fetches counted for each reason (`no-subscriber`, `bad-token`) in the counter whose
/// name and label set start `{name}{labels}`.
fn assert_two_of_each_reason(metrics: &str, name: &str, labels: &str) {
    for reason in ["no-subscriber", "bad-token"] {
        let series = format!("{name}{labels}reason=\"{reason}\"}}");
        assert_eq!(metric(metrics, &series), 2.0, "{series} in {metrics}");
    }
}

/// The stream once the event just recorded is in (and a moment more for any queued before it),
/// which must be its only entry.
async fn the_one_event(redis: &RedisServer) -> Vec<std::collections::HashMap<String, String>> {
    assert!(
        eventually(Duration::from_secs(5), || async {
            !redis.events().is_empty()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = redis.events();
    assert_eq!(events.len(), 1, "{events:?}");
    events
}

fn open_count(redis: &RedisServer, subscriber: &str) -> Option<u64> {
    redis.hget_json(subscriber, "email")?["open_count"].as_u64()
}

#[tokio::test]
async fn a_poisoned_batch_drops_only_the_bad_event_and_the_writer_keeps_going() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    redis.load_sample("carol", &sample_path("alice"));
    redis::cmd("SET")
        .arg("ctx:{bob}")
        .arg("not a hash")
        .query::<()>(&mut redis.connection())
        .unwrap();
    let server = server_with_channels(&redis, 0).await;

    // Hold Redis for a moment so the three opens queue up and go out as one batch.
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .query::<()>(&mut redis.connection())
        .unwrap();
    for subscriber in ["alice", "bob", "carol"] {
        let answer = get(&pixel(&server, subscriber)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..6], b"GIF89a");
    }
    let settled = eventually(Duration::from_secs(10), || async {
        metric(
            &server.metrics().await,
            "opentime_events_failed_total{reason=\"wrong-type\"}",
        ) == 1.0
            && open_count(&redis, "alice") == Some(1)
            && open_count(&redis, "carol") == Some(1)
    })
    .await;
    let metrics = server.metrics().await;
    assert!(settled, "{metrics}\n{:?}", redis.events());
    // Give a wedged writer time to write the batch again (it would re-add and re-count).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(entries_of(&redis, "alice"), 1);
    assert_eq!(entries_of(&redis, "carol"), 1);
    assert_eq!(open_count(&redis, "alice"), Some(1));
    assert_eq!(open_count(&redis, "carol"), Some(1));
    let kind: String = redis::cmd("TYPE")
        .arg("ctx:{bob}")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(kind, "string", "bob's key is left alone");
    let metrics = server.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "opentime_events_failed_total{reason=\"wrong-type\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "opentime_events_written_total"), 2.0);

    // No wedge: later opens are written.
    get(&pixel(&server, "alice")).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            open_count(&redis, "alice") == Some(2)
        })
        .await,
        "{:?}",
        redis.hget_json("alice", "email")
    );
    assert_eq!(entries_of(&redis, "alice"), 2);
    let ids: std::collections::HashSet<_> =
        redis.events().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(
        ids.len(),
        redis.events().len(),
        "every entry has its own id"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_pixel_without_a_verified_subscriber_is_counted_not_written() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;

    for url in [
        server.url("/open/demo.gif"),
        server.url("/open/demo.gif?utm=x"),
        server.url("/open/demo.gif?s=alice&t=forged"),
        server.url("/open/demo.gif?s=alice"),
    ] {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200, "{url}");
        assert_eq!(answer.header("content-type"), Some("image/gif"));
        assert_eq!(&answer.body[..6], b"GIF89a");
    }
    // A signed pixel after them: once it is in, anything queued before it would be too.
    get(&pixel(&server, "alice")).await;
    let events = the_one_event(&redis).await;
    assert_eq!(events[0]["subscriber"], "alice");
    assert_eq!(open_count(&redis, "alice"), Some(1));
    let metrics = server.metrics().await;
    assert_two_of_each_reason(&metrics, "opentime_pixel_anonymous_total{", "");
    assert_eq!(metric(&metrics, "opentime_events_queued_total"), 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_shared_block_open_is_an_event_only_for_a_verified_subscriber() {
    let redis = RedisServer::start();
    let server = server_with_channels(&redis, 0).await;
    let countdown = |query: &str| server.url(&format!("/img/demo/countdown.gif{query}"));

    for url in [
        countdown(""),
        countdown("?x=1"),
        countdown("?s=alice&t=forged"),
        countdown("?s=alice"),
    ] {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200, "{url}");
        assert_eq!(&answer.body[..6], b"GIF89a", "{url}");
    }
    // The same shared block opened by a subscriber named with a right token is an open.
    let signed = get(&countdown(&format!("?s=bob&t={}", token("bob")))).await;
    assert_eq!(signed.status, 200);
    let events = the_one_event(&redis).await;
    assert_eq!(events[0]["type"], "open");
    assert_eq!(events[0]["block"], "countdown");
    assert_eq!(events[0]["subscriber"], "bob");
    let metrics = server.metrics().await;
    assert_two_of_each_reason(&metrics, "opentime_anonymous_total{", "kind=\"open\",");
    server.shutdown().await;
}
