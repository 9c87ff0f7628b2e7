//! Every caching header a CDN or a mail proxy reads, on image and HTML answers: `ETag` and
//! 304, `Cache-Control` by block kind, `Last-Modified` and `If-Modified-Since` on shared
//! blocks, `Vary`, `Surrogate-Key` / `Cache-Tag`, HEAD, `scale=2`, and the CORS allow-list.

mod common;

use common::*;
use std::path::Path;

/// The repo's templates plus a `cdn` campaign with a shared (non-personal) banner.
fn templates_with_shared_banner() -> tempfile::TempDir {
    let templates = copy_templates();
    let campaign = templates.path().join("cdn");
    std::fs::create_dir_all(&campaign).unwrap();
    std::fs::write(
        campaign.join("blocks.toml"),
        "[blocks.banner]\nkind = \"image\"\ntemplate = \"banner.svg\"\nhtml = \"banner.html\"\nwidth = 300\nheight = 100\nreads = []\nmax_age = 30\n",
    )
    .unwrap();
    std::fs::write(
        campaign.join("banner.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100" viewBox="0 0 300 100"><rect width="300" height="100" fill="#4f46e5"/></svg>"##,
    )
    .unwrap();
    std::fs::write(campaign.join("banner.html"), "<p>Spring sale</p>").unwrap();
    templates
}

async fn server_for(templates: &Path, redis: &RedisServer, cors: &[&str]) -> TestServer {
    TestServer::builder()
        .redis(redis)
        .templates(templates)
        .cors_origins(cors)
        .deadline_ms(5000)
        .store_timeout_ms(1000)
        .start()
        .await
}

#[tokio::test]
async fn personalized_answers_revalidate_by_etag_on_images_and_html_alike() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_for(&repo().join("templates"), &redis, &[]).await;
    let image_url = server.signed("demo/cart.png", "alice");
    let html_url = server.signed_html("demo", "cart", "alice");
    for url in [image_url.clone(), html_url.clone()] {
        let first = get(&url).await;
        assert_eq!(first.status, 200, "{url}");
        let etag = first.header("etag").expect("ETag").to_owned();
        assert!(etag.starts_with('"'), "strong ETag {etag}");
        assert_eq!(first.header("cache-control"), Some("no-cache"), "{url}");
        assert_eq!(
            first.header("surrogate-key"),
            Some("demo demo:cart"),
            "{url}"
        );
        assert_eq!(first.header("cache-tag"), Some("demo,demo:cart"), "{url}");
        // The cart reads neither `client` nor `location`: nothing to vary on, and a
        // personalized block changes when the context does, at no time opentime knows.
        assert_eq!(first.header("vary"), None, "{url}");
        assert_eq!(first.header("last-modified"), None, "{url}");

        let again = send(client().get(&url).header("if-none-match", &etag)).await;
        assert_eq!(again.status, 304, "{url}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        assert_eq!(again.header("cache-control"), Some("no-cache"));
        assert_eq!(again.header("surrogate-key"), Some("demo demo:cart"));

        let head = send(client().head(&url)).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("etag"), Some(etag.as_str()));
        assert_eq!(
            head.header("content-length"),
            Some(first.body.len().to_string().as_str())
        );
    }
    // Fallbacks, on either route, are never stored.
    for url in [
        image_url.replace("t=", "t=x"),
        html_url.replace("t=", "t=x"),
    ] {
        let fallback = get(&url).await;
        assert_eq!(fallback.header("x-opentime-fallback"), Some("bad-token"));
        assert_eq!(fallback.header("cache-control"), Some("no-store"));
        assert_eq!(fallback.header("surrogate-key"), Some("demo demo:cart"));
        assert_eq!(fallback.header("etag"), None);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shared_blocks_are_public_with_s_maxage_and_last_modified() {
    let redis = RedisServer::start();
    let templates = templates_with_shared_banner();
    let server = server_for(templates.path(), &redis, &[]).await;
    let url = server.url("/img/cdn/banner.png");
    let first = get(&url).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=30, s-maxage=30")
    );
    assert_eq!(first.header("surrogate-key"), Some("cdn cdn:banner"));
    assert_eq!(first.header("vary"), None);
    let modified = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();
    let parsed = chrono::DateTime::parse_from_rfc2822(&modified).expect("an HTTP date");
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(
        age.num_seconds() >= 0 && age.num_seconds() < 120,
        "{modified}"
    );
    let etag = first.header("etag").unwrap().to_owned();

    let since = send(client().get(&url).header("if-modified-since", &modified)).await;
    assert_eq!(since.status, 304);
    assert!(since.body.is_empty());
    assert_eq!(since.header("last-modified"), Some(modified.as_str()));
    let older = send(
        client()
            .get(&url)
            .header("if-modified-since", "Thu, 01 Jan 2015 00:00:00 GMT"),
    )
    .await;
    assert_eq!(older.status, 200);
    assert_eq!(older.body, first.body);
    // If-None-Match decides alone when both are sent.
    let both = send(
        client()
            .get(&url)
            .header("if-modified-since", &modified)
            .header("if-none-match", "\"something-else\""),
    )
    .await;
    assert_eq!(both.status, 200);
    let by_etag = send(client().get(&url).header("if-none-match", &etag)).await;
    assert_eq!(by_etag.status, 304);

    let retina = get(&format!("{url}?scale=2")).await;
    assert_eq!(retina.png().dimensions(), (600, 200));
    assert_eq!(first.png().dimensions(), (300, 100));
    assert_ne!(retina.header("etag"), Some(etag.as_str()));

    let head = send(client().head(&url)).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("last-modified"), Some(modified.as_str()));
    assert_eq!(
        head.header("cache-control"),
        Some("public, max-age=30, s-maxage=30")
    );

    let fragment = get(&server.url("/html/cdn/banner.html")).await;
    assert_eq!(
        fragment.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        fragment.header("cache-control"),
        Some("public, max-age=30, s-maxage=30")
    );
    assert!(fragment.header("last-modified").is_some());
    assert!(fragment.header("etag").is_some());
    assert_eq!(fragment.header("surrogate-key"), Some("cdn cdn:banner"));
    server.shutdown().await;
}

#[tokio::test]
async fn cors_echoes_listed_origins_only() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_for(
        &repo().join("templates"),
        &redis,
        &["https://shop.example.com"],
    )
    .await;
    let url = server.signed_html("demo", "cart", "alice");
    let allowed = send(
        client()
            .get(&url)
            .header("origin", "https://shop.example.com"),
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));
    assert!(allowed
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .contains("X-Opentime-Fallback"));

    let other = send(
        client()
            .get(&url)
            .header("origin", "https://evil.example.com"),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("vary"), Some("Origin"));
    let none = get(&url).await;
    assert_eq!(none.header("vary"), Some("Origin"));

    // A fallback is readable by the listed origin too, and a 304 keeps the headers.
    let fallback = send(
        client()
            .get(url.replace("t=", "t=x"))
            .header("origin", "https://shop.example.com"),
    )
    .await;
    assert_eq!(fallback.header("x-opentime-fallback"), Some("bad-token"));
    assert_eq!(
        fallback.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    let etag = allowed.header("etag").unwrap();
    let revalidated = send(
        client()
            .get(&url)
            .header("origin", "https://shop.example.com")
            .header("if-none-match", etag),
    )
    .await;
    assert_eq!(revalidated.status, 304);
    assert_eq!(
        revalidated.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    server.shutdown().await;

    // Without an allow-list: no CORS headers and no Vary: Origin.
    let plain = server_for(&repo().join("templates"), &redis, &[]).await;
    let url = plain.signed_html("demo", "cart", "alice");
    let answer = send(
        client()
            .get(&url)
            .header("origin", "https://shop.example.com"),
    )
    .await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(answer.header("vary"), None);
    plain.shutdown().await;
}
