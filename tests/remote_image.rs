//! Remote images against a real HTTP server on 127.0.0.1: pixels of every format, the
//! bad cases as typed errors, forbidden hosts never contacted, and single-flight.

mod common;
mod image_server;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{close, decode_png};
use image_server::{ImageServer, BLUE, RED};
use opentime::sources::product_photos::{
    FetchError, Fit, ProductPhoto, ProductPhotoConfig, ProductPhotos,
};

const LOCALHOST: &str = "127.0.0.1";

/// A fetcher that may reach `images.test` (a listed private host, so 127.0.0.1 is
/// fine for it) and `*.cdn.test` (wildcard, public addresses only). `forbidden.test`
/// and `evil.cdn.test` also resolve to 127.0.0.1, to prove they are refused.
fn fetcher(tweak: impl FnOnce(&mut ProductPhotoConfig)) -> ProductPhotos {
    let local: IpAddr = LOCALHOST.parse().unwrap();
    let mut overrides = HashMap::new();
    for host in ["images.test", "forbidden.test", "evil.cdn.test"] {
        overrides.insert(host.to_string(), vec![local]);
    }
    let mut config = ProductPhotoConfig {
        allowed_hosts: vec!["*.cdn.test".into()],
        private_hosts: vec!["images.test".into()],
        resolve_overrides: overrides,
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(800),
        max_bytes: 256 * 1024,
        ..ProductPhotoConfig::default()
    };
    tweak(&mut config);
    ProductPhotos::new(config).expect("valid config")
}

fn url(server: &ImageServer, path: &str) -> String {
    format!("http://images.test:{}{}", server.port(), path)
}

fn pixels(image: &ProductPhoto) -> image::RgbaImage {
    decode_png(&image.png)
}

async fn assert_red_blue(images: &ProductPhotos, url: &str, tolerance: u8) {
    // 64×32 source into a 32×32 box: contain keeps 2:1, cover crops the middle.
    let contained = images.get(url, 32, 32, Fit::Contain).await.expect(url);
    assert_eq!((contained.width, contained.height), (32, 16), "{url}");
    let px = pixels(&contained);
    assert!(
        close(px.get_pixel(4, 8).0, RED, tolerance),
        "{url}: {:?}",
        px.get_pixel(4, 8)
    );
    assert!(
        close(px.get_pixel(27, 8).0, BLUE, tolerance),
        "{url}: {:?}",
        px.get_pixel(27, 8)
    );

    let covered = images.get(url, 24, 24, Fit::Cover).await.expect(url);
    assert_eq!((covered.width, covered.height), (24, 24), "{url}");
    let px = pixels(&covered);
    assert!(close(px.get_pixel(2, 12).0, RED, tolerance), "{url}");
    assert!(close(px.get_pixel(21, 12).0, BLUE, tolerance), "{url}");
}

#[tokio::test]
async fn every_format_decodes_to_the_right_pixels() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    assert_red_blue(&images, &url(&server, "/photo.png"), 0).await;
    assert_red_blue(&images, &url(&server, "/photo.webp"), 0).await;
    assert_red_blue(&images, &url(&server, "/photo.gif"), 0).await;
    // JPEG is lossy (and chroma-subsampled) at the red/blue edge.
    assert_red_blue(&images, &url(&server, "/photo.jpg"), 40).await;
    // The bytes decide, not a generic Content-Type.
    assert_red_blue(&images, &url(&server, "/mislabeled"), 0).await;
}

#[tokio::test]
async fn data_uri_embeds_the_png() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    let image = images
        .get(&url(&server, "/photo.png"), 8, 8, Fit::Cover)
        .await
        .unwrap();
    assert!(image
        .data_uri()
        .starts_with("data:image/png;base64,iVBORw0KGgo"));
}

#[tokio::test]
async fn huge_bodies_are_refused_by_length_and_while_streaming() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    let err = images
        .get(&url(&server, "/huge.jpg"), 32, 32, Fit::Cover)
        .await;
    assert_eq!(err, Err(FetchError::TooLarge));
    let err = images
        .get(&url(&server, "/huge-chunked.jpg"), 32, 32, Fit::Cover)
        .await;
    assert_eq!(err, Err(FetchError::TooLarge));
}

#[tokio::test]
async fn slow_and_stalled_servers_time_out_within_the_deadline() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|c| c.timeout = Duration::from_millis(300));
    for path in ["/slow.jpg", "/stalled.jpg"] {
        let started = Instant::now();
        let err = images.get(&url(&server, path), 32, 32, Fit::Cover).await;
        assert_eq!(err, Err(FetchError::Timeout), "{path}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{path}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn redirect_off_the_list_never_reaches_the_other_host() {
    let forbidden = ImageServer::start(None).await;
    let away = format!("http://forbidden.test:{}/photo.png", forbidden.port());
    let server = ImageServer::start(Some(away.clone())).await;
    let images = fetcher(|_| {});

    let err = images
        .get(&url(&server, "/redirect-away"), 32, 32, Fit::Cover)
        .await;
    assert_eq!(err, Err(FetchError::RedirectNotAllowed));
    assert_eq!(server.hits("/redirect-away"), 1);

    // Asked for directly, it is refused before any connection.
    let err = images.get(&away, 32, 32, Fit::Cover).await;
    assert_eq!(err, Err(FetchError::HostNotAllowed));
    assert_eq!(
        forbidden.total_hits(),
        0,
        "the forbidden host was contacted"
    );
}

#[tokio::test]
async fn redirects_on_the_list_are_followed_or_refused_by_setting() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    let image = images
        .get(&url(&server, "/redirect-ok"), 16, 16, Fit::Cover)
        .await;
    assert!(image.is_ok(), "{image:?}");
    assert_eq!(server.hits("/photo.png"), 1);

    let err = images
        .get(&url(&server, "/redirect-loop"), 16, 16, Fit::Cover)
        .await;
    assert_eq!(err, Err(FetchError::TooManyRedirects));

    let strict = fetcher(|c| c.max_redirects = 0);
    let err = strict
        .get(&url(&server, "/redirect-ok"), 17, 17, Fit::Cover)
        .await;
    assert_eq!(err, Err(FetchError::TooManyRedirects));
    assert_eq!(server.hits("/photo.png"), 1);
}

#[tokio::test]
async fn wildcard_host_resolving_to_loopback_is_refused() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    let evil = format!("http://evil.cdn.test:{}/photo.png", server.port());
    let err = images.get(&evil, 32, 32, Fit::Cover).await;
    assert_eq!(err, Err(FetchError::ForbiddenAddress));
    // An IP literal off the list is refused too.
    let literal = format!("http://{LOCALHOST}:{}/photo.png", server.port());
    let err = images.get(&literal, 32, 32, Fit::Cover).await;
    assert_eq!(err, Err(FetchError::HostNotAllowed));
    assert_eq!(server.total_hits(), 0, "a refused host was contacted");
}

#[tokio::test]
async fn non_images_and_missing_images_are_typed_errors() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    for (path, expected) in [
        ("/page.html", FetchError::NotAnImage),
        ("/garbage.jpg", FetchError::NotAnImage),
        ("/missing.jpg", FetchError::Status(404)),
    ] {
        let got = images.get(&url(&server, path), 32, 32, Fit::Cover).await;
        assert_eq!(got, Err(expected), "{path}");
    }
    assert_eq!(FetchError::Status(404).to_string(), "http status 404");
}

#[tokio::test]
async fn failures_are_remembered_briefly() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|c| c.failure_ttl = Duration::from_millis(300));
    let target = url(&server, "/missing.jpg");
    for _ in 0..3 {
        assert_eq!(
            images.get(&target, 32, 32, Fit::Cover).await,
            Err(FetchError::Status(404))
        );
    }
    assert_eq!(server.hits("/missing.jpg"), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        images.get(&target, 32, 32, Fit::Cover).await,
        Err(FetchError::Status(404))
    );
    assert_eq!(server.hits("/missing.jpg"), 2);
}

#[tokio::test]
async fn cached_by_url_and_size() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|_| {});
    let target = url(&server, "/photo.webp");
    let a = images.get(&target, 20, 20, Fit::Cover).await.unwrap();
    let b = images.get(&target, 20, 20, Fit::Cover).await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(server.hits("/photo.webp"), 1);
    // A fragment is not part of the resource.
    let c = images
        .get(&format!("{target}#x"), 20, 20, Fit::Cover)
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&a, &c));
    // Another size (a retina render) is another entry.
    let retina = images.get(&target, 40, 40, Fit::Cover).await.unwrap();
    assert_eq!((retina.width, retina.height), (40, 40));
    assert_eq!(server.hits("/photo.webp"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_renders_fetch_once() {
    let server = ImageServer::start(None).await;
    let images = fetcher(|c| c.timeout = Duration::from_secs(5));
    let target = url(&server, "/shared.jpg");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let images = images.clone();
            let target = target.clone();
            tokio::spawn(async move { images.get(&target, 48, 24, Fit::Cover).await })
        })
        .collect();
    for task in tasks {
        let image = task.await.expect("task").expect("image");
        assert_eq!((image.width, image.height), (48, 24));
    }
    assert_eq!(server.hits("/shared.jpg"), 1);
}
