//! The embedded store (no Redis): seeded with the demo samples, it serves personalized
//! images, takes ingest API writes, records opens in the `email` field and keeps locks.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn embedded_store_serves_the_demo_subscribers_without_redis() {
    let server = TestServer::builder().embedded_store().start().await;
    let answer = get(&server.signed("demo/cart.png", "alice")).await;
    assert_eq!(answer.header("x-opentime-fallback"), None);
    assert_same_picture(
        &answer.png(),
        &decode_png(&render_offline("demo", "cart", &sample("alice"), "alice")),
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_embedded_store_takes_api_writes_records_opens_and_locks() {
    let server = TestServer::builder()
        .embedded_store()
        .channel_tokens(&[("sms", SMS_TOKEN)])
        .start()
        .await;

    let locked_url = server.signed("demo/cart_locked.png", "alice");
    let first = get(&locked_url).await;
    assert_eq!(first.header("x-opentime-fallback"), None);
    let offer = get(&server.signed("demo/upgrade.png", "alice")).await;
    assert_eq!(offer.png().dimensions(), (600, 200));

    let written = patch_context(
        &server,
        "alice",
        SMS_TOKEN,
        r#"{"sms": {"intent": "upgrade"}, "cart": {"currency": "EUR", "items": []}}"#,
    )
    .await;
    assert_eq!(written.status, 200);
    assert_eq!(get(&locked_url).await.body, first.body, "the lock holds");
    let suppressed = get(&server.signed("demo/upgrade.png", "alice")).await;
    assert_eq!(suppressed.png().dimensions(), (1, 1));

    let counted = eventually(Duration::from_secs(5), || async {
        let answer = send(
            client()
                .get(server.url("/v1/context/alice"))
                .bearer_auth(SMS_TOKEN),
        )
        .await;
        answer.json()["context"]["email"]["open_count"] == 4
    })
    .await;
    assert!(
        counted,
        "opens update the email field in the embedded store"
    );
    let answer = send(
        client()
            .get(server.url("/v1/context/alice"))
            .bearer_auth(SMS_TOKEN),
    )
    .await;
    assert_eq!(answer.json()["context"]["_by.sms"]["channel"], "sms");
    server.shutdown().await;
}
