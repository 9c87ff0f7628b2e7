//! Click-throughs: `/click/{campaign}/{block}?i=…` redirects to the item's link when the
//! signed subscriber's context has a safe one and to the block's default link otherwise, and
//! every click is an event. Real TCP, a real `redis-server`. (Clicks on a locked block:
//! `lock_on_open.rs`.)

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn clicks_go_to_the_items_link_and_anything_else_to_the_default() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    redirects_follow_the_item_or_fall_back_to_the_default(&redis, &server).await;
    every_click_is_an_event(&redis, &server).await;
    server.shutdown().await;
}

/// Eleven clicks (and one on an unknown block): the item's link, then, with Alice's cart
/// tampered, the default for every unsafe link, bad item, bad or missing signature.
async fn redirects_follow_the_item_or_fall_back_to_the_default(
    redis: &RedisServer,
    server: &TestServer,
) {
    let click = |query: String| {
        let url = server.url(&format!("/click/demo/cart?{query}"));
        async move { send(no_redirects().get(url)).await }
    };
    let t = token("alice");

    let second = click(format!("s=alice&t={t}&i=2")).await;
    assert_eq!(second.status, 302);
    assert_eq!(second.header("cache-control"), Some("no-store"));
    assert_eq!(
        second.header("location"),
        Some("https://shop.example.com/p/bag-20")
    );

    let mut tampered = sample("alice")["cart"].clone();
    tampered["items"][0]["url"] = json!("https://evil.example/phish");
    tampered["items"][1]["url"] = json!("https://shop.example.com@evil.example/");
    redis.hset("alice", "cart", &tampered);
    for query in [
        format!("s=alice&t={t}&i=0"),
        format!("s=alice&t={t}&i=1"),
        format!("s=alice&t={t}&i=99"),
        format!("s=alice&t={t}&i=-1"),
        format!("s=alice&t={t}"),
        "s=alice&t=forged&i=2".to_owned(),
        "i=2".to_owned(),
        "s=al%7Bice&i=2".to_owned(),
    ] {
        let answer = click(query.clone()).await;
        assert_eq!(answer.status, 302, "{query}");
        assert_eq!(
            answer.header("location"),
            Some("https://shop.example.com/cart"),
            "{query}"
        );
    }
    assert_eq!(
        click(format!("s=alice&t={t}&i=2")).await.header("location"),
        Some("https://shop.example.com/p/bag-20"),
        "untampered items still work"
    );
    assert_eq!(click("i=1".into()).await.status, 302);
    let unknown = send(no_redirects().get(server.url("/click/demo/nope?i=1"))).await;
    assert_eq!(unknown.status, 404);
}

/// The seven clicks above made with Alice's right token, in the stream and counted in her
/// `email` field; the four without a verified subscriber are only counted in a metric.
async fn every_click_is_an_event(redis: &RedisServer, server: &TestServer) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            redis.events().len() == 7
        })
        .await,
        "every verified click is an event"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = redis.events();
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(events[0]["type"], "click");
    assert_eq!(events[0]["item"], "2");
    assert_eq!(events[0]["link"], "item");
    assert_eq!(events[1]["link"], "default");
    assert!(
        events.iter().all(|e| e["subscriber"] == "alice"),
        "a forged or missing token writes no event: {events:?}"
    );
    let metrics = server.metrics().await;
    for (reason, count) in [("no-subscriber", 2.0), ("bad-token", 2.0)] {
        assert_eq!(
            metric(
                &metrics,
                &format!("opentime_anonymous_total{{kind=\"click\",reason=\"{reason}\"}}")
            ),
            count,
            "{metrics}"
        );
    }
    let email = redis.hget_json("alice", "email").unwrap();
    assert_eq!(email["click_count"], 7, "{email}");
}
