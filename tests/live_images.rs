//! Remote product photos through the real server: a local image server on 127.0.0.1 stands in
//! for the shop's CDN (JPEG, PNG, WebP, huge, slow, redirect off the list, non-image), a real
//! `redis-server` holds the carts, and every assertion looks at the served PNG's pixels.

mod common;
mod image_server;

use common::*;
use image_server::{ImageServer, BLUE, RED};
use serde_json::json;
use std::time::{Duration, Instant};

/// The neutral grey of a placeholder tile.
const PLACEHOLDER: [u8; 4] = [229, 231, 235, 255];

/// A server that may fetch from `images.test` (resolved to 127.0.0.1, listed as a private
/// host); `forbidden.test` also resolves to 127.0.0.1 but is on no list.
fn server_with_images(redis: &RedisServer, templates: &std::path::Path) -> ServerBuilder {
    TestServer::builder()
        .redis(redis)
        .templates(templates)
        // Generous: debug-build renders share two cores with the other tests. The image fetch
        // has its own, shorter deadline (OPENTIME_IMAGE_TIMEOUT_MS, 700 ms by default).
        .deadline_ms(5000)
        .store_timeout_ms(1000)
        .image_private_hosts(&["images.test"])
        .image_resolve(&["images.test=127.0.0.1", "forbidden.test=127.0.0.1"])
        .image_max_bytes(256 * 1024)
}

fn store_cart(redis: &RedisServer, subscriber: &str, urls: &[String]) {
    redis.hset(subscriber, "profile", &json!({"first_name": "Test"}));
    redis.hset(subscriber, "cart", &cart_with(urls));
}

/// The centre row of cart line `line`'s 44×44 thumbnail: (x of its left quarter, x of its
/// right quarter, y).
fn thumbnail(line: u32) -> (u32, u32, u32) {
    let top = 84 + line * 56 + 6;
    (28 + 10, 28 + 34, top + 22)
}

#[tokio::test]
async fn the_cart_shows_the_shops_photos_in_every_format() {
    let images = ImageServer::start(None).await;
    let redis = RedisServer::start();
    let base = format!("http://images.test:{}", images.port());
    store_cart(
        &redis,
        "alice",
        &[
            format!("{base}/photo.png"),
            format!("{base}/photo.jpg"),
            format!("{base}/photo.webp"),
        ],
    );
    let server = server_with_images(&redis, &repo().join("templates"))
        .start()
        .await;
    let answer = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-opentime-fallback"), None);
    assert_eq!(answer.header("x-opentime-image-fallback"), None);
    assert_eq!(answer.header("cache-control"), Some("no-cache"));
    let png = answer.png();
    for (line, tolerance) in [(0, 2), (1, 40), (2, 2)] {
        let (left, right, y) = thumbnail(line);
        let (l, r) = (png.get_pixel(left, y).0, png.get_pixel(right, y).0);
        assert!(close(l, RED, tolerance), "line {line}: left {l:?}");
        assert!(close(r, BLUE, tolerance), "line {line}: right {r:?}");
    }
    // Retina asks for the photo at twice the pixels, and gets it.
    let retina = get(&format!(
        "{}&scale=2",
        server.signed("demo/cart.png", "alice")
    ))
    .await;
    assert_eq!(retina.header("x-opentime-image-fallback"), None);
    let retina = retina.png();
    let (left, right, y) = thumbnail(0);
    assert!(close(retina.get_pixel(left * 2, y * 2).0, RED, 2));
    assert!(close(retina.get_pixel(right * 2, y * 2).0, BLUE, 2));
    assert_eq!(images.hits("/photo.png"), 2, "one fetch per size");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_photos_become_placeholders_and_the_forbidden_host_is_never_reached() {
    let forbidden = ImageServer::start(None).await;
    let away = format!("http://forbidden.test:{}/photo.png", forbidden.port());
    let images = ImageServer::start(Some(away.clone())).await;
    let redis = RedisServer::start();
    let base = format!("http://images.test:{}", images.port());
    store_cart(
        &redis,
        "first",
        &[
            format!("{base}/huge.jpg"),
            format!("{base}/slow.jpg"),
            format!("{base}/redirect-away"),
        ],
    );
    store_cart(
        &redis,
        "second",
        &[
            format!("{base}/page.html"),
            format!("{base}/garbage.jpg"),
            away.clone(),
        ],
    );
    let server = server_with_images(&redis, &repo().join("templates"))
        .start()
        .await;

    let started = Instant::now();
    let first = get(&server.signed("demo/cart.png", "first")).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(5000), "answered in {took:?}");
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("x-opentime-fallback"),
        None,
        "the block still renders"
    );
    let reasons = first
        .header("x-opentime-image-fallback")
        .unwrap_or_default();
    assert!(reasons.starts_with("3 "), "{reasons}");
    assert!(
        reasons.contains("too-large") && reasons.contains("redirect-not-allowed"),
        "{reasons}"
    );
    assert_eq!(first.header("cache-control"), Some("no-store"));

    let second = get(&server.signed("demo/cart.png", "second")).await;
    assert_eq!(
        second.header("x-opentime-image-fallback"),
        Some("3 not-an-image,host-not-allowed")
    );
    for answer in [&first, &second] {
        let png = answer.png();
        assert_eq!(png.dimensions(), (600, 300));
        for line in 0..3 {
            let (left, right, y) = thumbnail(line);
            for x in [left, right] {
                assert_eq!(png.get_pixel(x, y).0, PLACEHOLDER, "line {line} x {x}");
            }
        }
    }
    // Not cached: the next open renders (and asks the image cache) again.
    let again = get(&server.signed("demo/cart.png", "second")).await;
    assert!(again.header("x-opentime-image-fallback").is_some());
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("opentime_render_cache_hits_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("opentime_image_placeholders_total{reason=\"host-not-allowed\"} 2"),
        "{metrics}"
    );

    assert_eq!(
        forbidden.total_hits(),
        0,
        "the forbidden host was contacted"
    );
    assert_eq!(images.hits("/redirect-away"), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_renders_fetch_a_photo_once() {
    let images = ImageServer::start(None).await;
    let redis = RedisServer::start();
    let photo = format!("http://images.test:{}/shared.jpg", images.port());
    // A small block, so fifty debug-build renders stay cheap: the photo, and a label that
    // makes each subscriber's render different (no sharing through the render cache).
    let templates = tempfile::tempdir().unwrap();
    let campaign = templates.path().join("photos");
    std::fs::create_dir_all(&campaign).unwrap();
    std::fs::write(
        campaign.join("blocks.toml"),
        "[blocks.thumb]\nkind = \"image\"\ntemplate = \"thumb.svg\"\nwidth = 96\nheight = 64\nreads = [\"profile\", \"cart\"]\n",
    )
    .unwrap();
    std::fs::write(
        campaign.join("thumb.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="64" viewBox="0 0 96 64"><rect width="96" height="64" fill="#ffffff"/><image href="{{ ctx.cart.items[0].image_url }}" width="64" height="64" preserveAspectRatio="xMidYMid slice"/><text x="70" y="40" font-size="12">{{ ctx.profile.first_name }}</text></svg>"##,
    )
    .unwrap();
    for i in 0..50 {
        let subscriber = format!("s{i}");
        redis.hset(
            &subscriber,
            "profile",
            &json!({"first_name": format!("{i}")}),
        );
        redis.hset(
            &subscriber,
            "cart",
            &cart_with(std::slice::from_ref(&photo)),
        );
    }
    let server = server_with_images(&redis, templates.path())
        .deadline_ms(20_000)
        .image_timeout_ms(10_000)
        .start()
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let answers: Vec<_> = (0..50)
        .map(|i| {
            let request = client.get(server.signed("photos/thumb.png", &format!("s{i}")));
            tokio::spawn(send(request))
        })
        .collect();
    let mut renders = std::collections::BTreeSet::new();
    for answer in answers {
        let answer = answer.await.expect("request task");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-image-fallback"), None);
        assert_eq!(answer.header("x-opentime-fallback"), None);
        let png = answer.png();
        assert!(
            close(png.get_pixel(8, 32).0, RED, 40),
            "{:?}",
            png.get_pixel(8, 32)
        );
        assert!(
            close(png.get_pixel(56, 32).0, BLUE, 40),
            "{:?}",
            png.get_pixel(56, 32)
        );
        renders.insert(answer.header("etag").unwrap_or_default().to_owned());
    }
    assert_eq!(renders.len(), 50, "fifty different renders");
    assert_eq!(images.hits("/shared.jpg"), 1, "fetched once");
    server.shutdown().await;
}

#[tokio::test]
async fn without_an_allow_list_nothing_is_fetched() {
    let images = ImageServer::start(None).await;
    let redis = RedisServer::start();
    store_cart(
        &redis,
        "alice",
        &[format!("http://127.0.0.1:{}/photo.png", images.port())],
    );
    let server = TestServer::builder()
        .redis(&redis)
        .deadline_ms(5000)
        .store_timeout_ms(1000)
        .start()
        .await;
    let answer = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(
        answer.header("x-opentime-image-fallback"),
        Some("1 host-not-allowed")
    );
    let (left, _, y) = thumbnail(0);
    assert_eq!(answer.png().get_pixel(left, y).0, PLACEHOLDER);
    assert_eq!(images.total_hits(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn the_offline_render_fetches_photos_the_same_way() {
    let images = ImageServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context.json");
    let photo = format!("http://images.test:{}/photo.webp", images.port());
    let off_list = format!("http://forbidden.test:{}/photo.png", images.port());
    std::fs::write(
        &context,
        json!({"profile": {"first_name": "Ada"}, "cart": cart_with(&[photo, off_list])})
            .to_string(),
    )
    .unwrap();
    let output = dir.path().join("cart.png");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_opentime"));
    command
        .current_dir(repo())
        .env("OPENTIME_LOG", "warn")
        .env("OPENTIME_IMAGE_PRIVATE_HOSTS", "images.test")
        .env(
            "OPENTIME_IMAGE_RESOLVE",
            "images.test=127.0.0.1,forbidden.test=127.0.0.1",
        )
        .arg("render")
        .arg("demo/cart")
        .arg("--context")
        .arg(&context)
        .arg("-o")
        .arg(&output);
    // Run it off the runtime: the image server answers on this test's runtime.
    let result = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run opentime render");
    assert!(result.status.success(), "{result:?}");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("placeholder for http://forbidden.test"),
        "{stderr}"
    );
    assert!(stderr.contains("host-not-allowed"), "{stderr}");
    let png = decode_png(&std::fs::read(&output).unwrap());
    let (left, right, y) = thumbnail(0);
    assert!(close(png.get_pixel(left, y).0, RED, 2));
    assert!(close(png.get_pixel(right, y).0, BLUE, 2));
    let (left, _, y) = thumbnail(1);
    assert_eq!(png.get_pixel(left, y).0, PLACEHOLDER);
    assert_eq!(images.hits("/photo.webp"), 1);
    assert_eq!(images.hits("/photo.png"), 0);
}
