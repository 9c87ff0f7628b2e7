//! Open and pixel events: what lands in the `events:opens` stream and in the subscriber's
//! `email` field (prefetches counted apart), and events queued while Redis is down written
//! once it is back, with the `/open/{campaign}.gif` tracking pixel. Real TCP, a real
//! `redis-server`. (Click events: `clicks.rs`; opens shown through the context API:
//! `suppression.rs`.)

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn an_apple_proxy_prefetch_is_recorded_as_one() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 1).await;
    let url = server.signed("demo/cart_locked.png", "alice");

    apple_prefetch(&url).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            redis.events().len() == 1
        })
        .await
    );
    let event = &redis.events()[0];
    assert_eq!(event["client"], "apple-mpp");
    assert_eq!(event["prefetch"], "1");
    let email = redis.hget_json("alice", "email").unwrap();
    assert!(email.get("open_count").is_none(), "{email}");
    assert!(email.get("last_prefetch").is_some(), "{email}");
    server.shutdown().await;
}

#[tokio::test]
async fn events_recorded_while_redis_is_down_are_written_when_it_returns() {
    let mut redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    let url = server.signed("demo/cart.png", "alice");
    let pixel = server.url(&format!("/open/demo.gif?s=alice&t={}", token("alice")));

    redis.stop();
    for _ in 0..5 {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200);
        assert!(answer.header("x-opentime-fallback").is_some());
    }
    let gif = get(&pixel).await;
    assert_eq!(gif.status, 200);
    assert_eq!(gif.header("content-type"), Some("image/gif"));
    assert_eq!(gif.header("cache-control"), Some("no-store"));
    assert_eq!(&gif.body[..6], b"GIF89a");
    assert_eq!(&gif.body[6..10], &[1, 0, 1, 0], "1×1");
    assert_eq!(get(&server.url("/open/nope.gif")).await.status, 404);
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.restart();
    let written = eventually(Duration::from_secs(15), || async {
        redis.events().len() == 6
    })
    .await;
    assert!(
        written,
        "the 6 queued events are written once Redis is back: {:?}",
        redis.events()
    );
    let events = redis.events();
    assert_eq!(events.iter().filter(|e| e["type"] == "open").count(), 5);
    assert_eq!(events[5]["type"], "pixel");
    assert_eq!(events[5]["block"], "");
    assert!(
        redis.hgetall("alice").is_empty(),
        "the restarted Redis is empty, and an open does not make up a context"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("opentime_events_dropped_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("opentime_events_written_total 6"),
        "{metrics}"
    );
    server.shutdown().await;
}
