//! What operators rely on: `/metrics` and `/readyz` moved to an admin listener
//! (`OPENTIME_ADMIN_LISTEN`), which answers nothing else, while the public listener keeps
//! serving images and stops exposing the operator routes.

mod common;

use common::*;

#[tokio::test]
async fn the_admin_listener_alone_serves_metrics_and_readiness() {
    let server = TestServer::builder()
        .embedded_store()
        .configure(|args| args.admin_listen = Some("127.0.0.1:0".parse().expect("address")))
        .start()
        .await;
    let metrics = get(&server.admin_url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("opentime_render_cache_misses_total"),
        "{}",
        metrics.text()
    );
    assert_eq!(get(&server.admin_url("/readyz")).await.status, 200);
    assert_eq!(get(&server.admin_url("/healthz")).await.status, 200);
    let image_on_admin = get(&server.admin_url("/img/demo/countdown.gif")).await;
    assert_eq!(
        image_on_admin.status, 404,
        "the admin listener serves operators only"
    );

    assert_eq!(get(&server.url("/metrics")).await.status, 404);
    assert_eq!(get(&server.url("/readyz")).await.status, 404);
    assert_eq!(get(&server.url("/healthz")).await.status, 200);
    let image = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(
        (image.status, image.header("x-opentime-fallback")),
        (200, None)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_an_admin_listener_the_public_one_serves_metrics() {
    let server = TestServer::builder().embedded_store().start().await;
    assert_eq!(get(&server.url("/metrics")).await.status, 200);
    assert_eq!(get(&server.url("/readyz")).await.status, 200);
    server.shutdown().await;
}
