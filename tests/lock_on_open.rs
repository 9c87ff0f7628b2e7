//! Lock-on-open: a locked block shows what the first open showed (and its clicks go where
//! that image pointed) however the context changes later; simultaneous first opens leave one
//! lock; an Apple proxy prefetch does not lock. Real TCP, a real `redis-server`.

mod common;

use common::*;
use serde_json::{json, Value};

/// Alice's sample context with her cart changed to three tees.
fn alice_with_three_tees() -> Value {
    let mut changed = sample("alice");
    changed["cart"]["items"] = json!([
        {"sku": "TEE-1", "url": "https://shop.example.com/p/tee-1", "name": "Organic cotton tee",
         "quantity": 3, "price": 25.0, "image_url": "asset:products/tshirt.png"}
    ]);
    changed
}

/// Alice opens the locked cart (no fallback), then her cart changes to three tees.
async fn open_locked_then_change_the_cart(redis: &RedisServer, server: &TestServer) {
    let first = get(&server.signed("demo/cart_locked.png", "alice")).await;
    assert_eq!(first.header("x-opentime-fallback"), None);
    let changed = alice_with_three_tees();
    redis.hset("alice", "cart", &changed["cart"]);
}

#[tokio::test]
async fn a_locked_block_shows_the_first_open_after_the_context_changes() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    let locked_url = server.signed("demo/cart_locked.png", "alice");
    let live_url = server.signed("demo/cart.png", "alice");

    let first = get(&locked_url).await;
    assert_eq!(first.header("x-opentime-fallback"), None);
    let ttl: i64 = redis::cmd("TTL")
        .arg("lock:{alice}:demo:cart_locked")
        .query(&mut redis.connection())
        .unwrap();
    assert!(ttl > 604_000 && ttl <= 604_800, "lock TTL {ttl}");

    let changed = alice_with_three_tees();
    redis.hset("alice", "cart", &changed["cart"]);

    let reopened = get(&locked_url).await;
    assert_eq!(reopened.status, 200);
    assert_eq!(reopened.body, first.body, "byte-identical reopen");
    assert_same_picture(
        &reopened.png(),
        &decode_png(&render_offline("demo", "cart", &sample("alice"), "alice")),
    );
    let live = get(&live_url).await;
    assert_same_picture(
        &live.png(),
        &decode_png(&render_offline("demo", "cart", &changed, "alice")),
    );
    server.shutdown().await;
}

#[tokio::test]
async fn clicks_on_a_locked_block_go_where_the_locked_image_points() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    open_locked_then_change_the_cart(&redis, &server).await;

    let click = |block: &str, item: usize| {
        let url = server.url(&format!(
            "/click/demo/{block}?s=alice&t={}&i={item}",
            token("alice")
        ));
        async move { send(no_redirects().get(url)).await }
    };
    let locked_click = click("cart_locked", 1).await;
    assert_eq!(locked_click.status, 302);
    assert_eq!(
        locked_click.header("location"),
        Some("https://shop.example.com/p/mug-01"),
        "the item the locked image shows"
    );
    let live_click = click("cart", 0).await;
    assert_eq!(
        live_click.header("location"),
        Some("https://shop.example.com/p/tee-1")
    );
    assert_eq!(redis.keys("lock:*").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn simultaneous_first_opens_leave_one_lock_and_see_the_same_image() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    // The block declares `v`, so each open's input (and so the lock) says which open it was.
    let templates = copy_templates();
    let manifest = templates.path().join("demo/blocks.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text.replacen(
        "lock = \"first_open\"",
        "lock = \"first_open\"\nquery = [\"v\"]",
        1,
    );
    std::fs::write(&manifest, text).expect("manifest");
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .keep(templates)
        .start()
        .await;
    let base = server.signed("demo/cart_locked.png", "alice");
    let opens = (0..8).map(|n| {
        let url = format!("{base}&v={n}");
        tokio::spawn(async move { get(&url).await })
    });
    let mut bodies = Vec::new();
    for open in opens {
        let answer = open.await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-fallback"), None);
        bodies.push(answer.body);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(redis.keys("lock:*"), vec!["lock:{alice}:demo:cart_locked"]);
    let stored: String = redis::cmd("GET")
        .arg("lock:{alice}:demo:cart_locked")
        .query(&mut redis.connection())
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let winner = stored["query"]["v"].as_str().unwrap_or_default().to_owned();
    assert!(
        (0..8).any(|n| n.to_string() == winner),
        "the lock holds one open's inputs: {stored}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_apple_proxy_prefetch_does_not_lock_and_the_later_open_does() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 1).await;
    let url = server.signed("demo/cart_locked.png", "alice");

    apple_prefetch(&url).await;
    assert!(redis.keys("lock:*").is_empty(), "a prefetch does not lock");

    // The person opens later (from anywhere else): now it locks.
    let human = send(client().get(&url).header("x-forwarded-for", "203.0.113.9")).await;
    assert_eq!(human.status, 200);
    assert_eq!(redis.keys("lock:*").len(), 1);
    server.shutdown().await;
}
