//! Personalized images at open time, end to end: the subscriber's render at its size and
//! scale, a context change on the next open, fallbacks with a reason (bad token, Redis down
//! or slow, overload), templates reloaded from disk, ETag/HEAD/404, the HTML fragment, and
//! health, readiness and metrics. Real TCP to the real server, a real `redis-server` per test.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn personalized_png_has_the_declared_size_and_the_subscribers_cart() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    redis.load_sample("bob", &sample_path("bob"));
    let server = TestServer::builder().redis(&redis).start().await;

    let alice = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(alice.status, 200);
    assert_eq!(alice.header("content-type"), Some("image/png"));
    assert_eq!(alice.header("x-opentime-fallback"), None);
    let image = alice.png();
    assert_eq!((image.width(), image.height()), (600, 300));
    // Pixel for pixel what an offline render of Alice's sample gives.
    assert_same_picture(
        &image,
        &decode_png(&render_offline("demo", "cart", &sample("alice"), "alice")),
    );

    let bob = get(&server.signed("demo/cart.png", "bob")).await;
    assert_eq!(bob.status, 200);
    assert_ne!(bob.png(), image, "another subscriber sees another cart");

    let retina = get(&format!(
        "{}&scale=2",
        server.signed("demo/cart.png", "alice")
    ))
    .await;
    let retina = retina.png();
    assert_eq!((retina.width(), retina.height()), (1200, 600));
    server.shutdown().await;
}

#[tokio::test]
async fn greeting_follows_the_context_on_the_next_open() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder().redis(&redis).start().await;
    let url = server.signed("demo/cart.png", "alice");

    let before = get(&url).await;
    let etag_before = before.header("etag").map(str::to_owned);
    redis.hset("alice", "profile", &json!({"first_name": "Alicia"}));
    let after = get(&url).await;

    assert_eq!(after.status, 200);
    assert_ne!(after.header("etag").map(str::to_owned), etag_before);
    let mut expected = sample("alice");
    expected["profile"] = json!({"first_name": "Alicia"});
    assert_same_picture(
        &after.png(),
        &decode_png(&render_offline("demo", "cart", &expected, "alice")),
    );
    assert_ne!(after.png(), before.png());
    server.shutdown().await;
}

#[tokio::test]
async fn an_open_reads_only_the_fields_its_block_reads() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    // Carol's context holds none of the fields the cart reads: it renders without them.
    let points = json!({"points": 10, "tier": "Silver", "value": 0.1, "currency": "EUR"});
    redis.hset("carol", "loyalty", &points);
    let server = TestServer::builder().redis(&redis).start().await;
    let url = server.signed("demo/cart.png", "alice");
    let before = get(&url).await;

    // A field the cart does not read changes: the same render answers.
    redis.hset(
        "alice",
        "loyalty",
        &json!({"points": 99999, "tier": "Platinum"}),
    );
    let after = get(&url).await;
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(after.body, before.body);

    let carol = get(&server.signed("demo/cart.png", "carol")).await;
    assert_eq!(carol.status, 200);
    assert_eq!(carol.header("x-opentime-fallback"), None);
    assert_same_picture(
        &carol.png(),
        &decode_png(&render_offline(
            "demo",
            "cart",
            &json!({"loyalty": points}),
            "carol",
        )),
    );

    // Each open asked Redis for the cart's two fields alone, never for the whole context.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.connection())
        .expect("INFO");
    assert!(stats.contains("cmdstat_hmget:calls=3,"), "{stats}");
    assert!(!stats.contains("cmdstat_hgetall:"), "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_token_gets_the_fallback_with_a_reason() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder().redis(&redis).start().await;
    let bob_token_url = server
        .signed("demo/cart.png", "bob")
        .replace("s=bob", "s=alice");

    for (url, reason) in [
        (bob_token_url, "bad-token"),
        (server.url("/img/demo/cart.png?s=alice"), "bad-token"),
        (server.url("/img/demo/cart.png"), "missing-subscriber"),
        (
            server.url("/img/demo/cart.png?s=al%7Bice&t=x"),
            "bad-subscriber",
        ),
        (
            format!("{}&scale=7", server.signed("demo/cart.png", "alice")),
            "bad-query",
        ),
        (server.signed("demo/cart.png", "nobody"), "no-context"),
    ] {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200, "{url}");
        assert_eq!(answer.header("x-opentime-fallback"), Some(reason), "{url}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{url}");
        let fallback = answer.png();
        assert_eq!((fallback.width(), fallback.height()), (600, 300));
        assert_ne!(
            fallback,
            decode_png(&render_offline("demo", "cart", &sample("alice"), "alice"))
        );
    }
    let text = server.metrics().await;
    assert!(
        text.contains("opentime_fallbacks_total{reason=\"bad-token\"} 2"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn redis_outage_serves_fallbacks_within_the_deadline_then_recovers() {
    let mut redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder()
        .redis(&redis)
        .deadline_ms(500)
        .start()
        .await;
    let url = server.signed("demo/cart.png", "alice");
    // The first render may outlive the short deadline on a busy machine; it still lands in the cache.
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&url).await.header("x-opentime-fallback").is_none()
        })
        .await
    );

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = get(&url).await;
        let took = started.elapsed();
        assert_eq!(answer.status, 200);
        let reason = answer
            .header("x-opentime-fallback")
            .unwrap_or_default()
            .to_owned();
        assert!(reason.starts_with("store-"), "reason {reason:?}");
        assert!(took < Duration::from_millis(500), "fallback took {took:?}");
        assert_eq!(answer.png().dimensions(), (600, 300));
    }

    redis.restart();
    redis.load_sample("alice", &sample_path("alice"));
    let recovered = eventually(Duration::from_secs(10), || async {
        get(&url).await.header("x-opentime-fallback").is_none()
    })
    .await;
    assert!(recovered, "personalized images again once Redis is back");
    let answer = get(&url).await;
    assert_same_picture(
        &answer.png(),
        &decode_png(&render_offline("demo", "cart", &sample("alice"), "alice")),
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_template_broken_on_disk_keeps_the_last_good_one_and_a_fix_goes_live() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let templates = copy_templates();
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .start()
        .await;
    let url = server.signed("demo/points.png", "alice");
    let good = get(&url).await;
    assert_eq!(good.header("x-opentime-fallback"), None);

    let template = templates.path().join("demo/points.svg");
    let original = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        original.replace("{{ points | grouped }}", "{{ points | grouped "),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = get(&url).await;
    assert_eq!(during.header("x-opentime-fallback"), None);
    assert_eq!(during.body, good.body, "still the last good template");

    std::fs::write(&template, original.replace(" points</text>", " pts</text>")).unwrap();
    let changed = eventually(Duration::from_secs(3), || async {
        get(&url).await.body != good.body
    })
    .await;
    assert!(changed, "a fixed template is live within a second or so");
    assert_eq!(get(&url).await.header("x-opentime-fallback"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn etag_revalidation_head_and_unknown_blocks() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder().redis(&redis).start().await;
    let url = server.signed("demo/cart.png", "alice");

    let first = get(&url).await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag {etag}"
    );
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    assert_eq!(first.header("surrogate-key"), Some("demo demo:cart"));

    let revalidated = send(client().get(&url).header("if-none-match", &etag)).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));

    let head = send(client().head(&url)).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    for path in [
        "/img/demo/nope.png",
        "/img/nope/cart.png",
        "/img/demo/cart.jpg",
        "/img/demo/cart.gif",
    ] {
        let answer = get(&server.url(path)).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.png().dimensions(), (1, 1), "{path}");
        assert_eq!(answer.png().get_pixel(0, 0).0[3], 0, "transparent");
    }
    let not_allowed = send(client().post(&url)).await;
    assert_eq!(not_allowed.status, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn html_fragment_escapes_context_and_rejects_bad_queries() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    redis.hset(
        "alice",
        "profile",
        &json!({"first_name": "<script>alert(1)</script>"}),
    );
    let server = TestServer::builder().redis(&redis).start().await;
    let url = server.signed_html("demo", "cart", "alice");

    let answer = get(&url).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(answer.body).unwrap();
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"));
    assert!(html.contains("€89.00"), "{html}");

    let bad = get(&format!("{url}&scale=0")).await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8(bad.body).unwrap().contains("scale"));
    let forged = get(&url.replace("t=", "t=x")).await;
    assert_eq!(forged.status, 200);
    assert_eq!(forged.header("x-opentime-fallback"), Some("bad-token"));
    assert!(String::from_utf8(forged.body)
        .unwrap()
        .contains("Your cart is waiting"));
    server.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder().redis(&redis).start().await;
    assert_eq!(get(&server.url("/healthz")).await.status, 200);
    let ready = eventually(Duration::from_secs(5), || async {
        get(&server.url("/readyz")).await.status == 200
    })
    .await;
    assert!(ready);
    get(&server.signed("demo/cart.png", "alice")).await;
    get(&server.signed("demo/cart.png", "alice")).await;
    let text = server.metrics().await;
    for expected in [
        "opentime_http_requests_total{route=\"img\",status=\"200\"} 2",
        "opentime_render_cache_hits_total 1",
        "opentime_render_cache_misses_total 1",
        "opentime_render_seconds_count{format=\"png\"} 1",
        "opentime_store_lookup_seconds_count{outcome=\"found\"} 2",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // The caches' sizes are read at scrape time: the render is held; the texts Carol's cart
    // shares with Alice's (seen twice now) are kept as tiles.
    let png_bytes = get(&server.signed("demo/cart.png", "alice"))
        .await
        .body
        .len() as f64;
    redis.load_sample("carol", &sample_path("carol"));
    get(&server.signed("demo/cart.png", "carol")).await;
    let text = server.metrics().await;
    assert!(
        metric(&text, "opentime_render_cache_bytes") >= png_bytes,
        "{text}"
    );
    assert!(
        metric(&text, "opentime_text_tile_cache_bytes") > 0.0,
        "{text}"
    );
    assert!(metric(&text, "opentime_glyph_cache_bytes") > 0.0, "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_redis_gets_store_timeout_fallbacks_not_a_slow_image() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = TestServer::builder()
        .redis(&redis)
        .store_timeout_ms(40)
        .start()
        .await;
    let url = server.signed("demo/cart.png", "alice");
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&url).await.header("x-opentime-fallback").is_none()
        })
        .await
    );

    // DEBUG SLEEP blocks the whole Redis server, as an overloaded one would.
    let sleeper = std::thread::spawn({
        let mut connection = redis.connection();
        move || {
            redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("2")
                .query::<()>(&mut connection)
        }
    });
    assert!(
        eventually(Duration::from_secs(2), || async {
            redis_is_blocked(redis.port)
        })
        .await
    );
    let started = Instant::now();
    let answer = get(&url).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-opentime-fallback"), Some("store-timeout"));
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    sleeper.join().unwrap().unwrap();
    let back = eventually(Duration::from_secs(5), || async {
        get(&url).await.header("x-opentime-fallback").is_none()
    })
    .await;
    assert!(back);
    server.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_misses_degrades_to_fallbacks_not_to_errors() {
    let redis = RedisServer::start();
    let subscribers: Vec<String> = (0..24).map(|i| format!("burst{i}")).collect();
    for subscriber in &subscribers {
        redis.load_sample(subscriber, &sample_path("alice"));
    }
    let server = TestServer::builder()
        .redis(&redis)
        .render_concurrency(1)
        .deadline_ms(120)
        .start()
        .await;
    let requests = subscribers
        .iter()
        .map(|s| get_owned(server.signed("demo/cart.png", s)));
    let answers = futures_join_all(requests).await;
    let mut rendered = 0;
    let mut degraded = 0;
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.png().dimensions(), (600, 300));
        match answer.header("x-opentime-fallback") {
            None => rendered += 1,
            Some("overload" | "timeout") => degraded += 1,
            Some(other) => panic!("unexpected fallback {other}"),
        }
    }
    assert!(
        degraded > 0,
        "24 renders on one permit cannot all fit in 120 ms"
    );
    assert_eq!(rendered + degraded, answers.len());
    server.shutdown().await;
}

async fn get_owned(url: String) -> Answer {
    get(&url).await
}

async fn futures_join_all<F: std::future::Future<Output = Answer> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Answer> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("request task"));
    }
    answers
}

/// Whether a PING on a fresh connection goes unanswered for 100 ms (the server is blocked).
fn redis_is_blocked(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buffer = [0u8; 16];
    stream.read(&mut buffer).is_err()
}
