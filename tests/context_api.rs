//! The `/v1/context` ingest API: channel bearer tokens, JSON-object bodies, field names and
//! reserved fields, size limits, JSON errors with a reason (never a write), and what a channel
//! may do: write fields (tagged with the writing channel), delete a field or the context.
//! Real TCP, a real `redis-server`. (A write changing the next open: `suppression.rs`.)

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_context_api_refuses_each_bad_input_with_a_4xx_and_writes_nothing() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    let before = redis.hgetall("alice");
    let context_url = server.url("/v1/context/alice");
    let sms = format!("Bearer {SMS_TOKEN}");
    let valid = r#"{"sms": {"intent": "upgrade"}}"#;
    let many: Vec<String> = (0..40).map(|i| format!(r#""f{i}": 1"#)).collect();
    let too_many = format!("{{{}}}", many.join(","));
    let big_field = format!(r#"{{"notes": "{}"}}"#, "x".repeat(20_000));
    let big_body = format!(r#"{{"notes": "{}"}}"#, "x".repeat(70_000));

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no token",
            client().patch(&context_url).body(valid),
            401,
            "unauthorized",
        ),
        (
            "unknown token",
            client()
                .patch(&context_url)
                .bearer_auth("not-a-channel-token-000")
                .body(valid),
            401,
            "unauthorized",
        ),
        (
            "basic auth",
            client()
                .patch(&context_url)
                .basic_auth("sms", Some(SMS_TOKEN))
                .body(valid),
            401,
            "unauthorized",
        ),
        (
            "bad JSON",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body("{\"sms\":"),
            400,
            "bad-json",
        ),
        (
            "array",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body("[1,2]"),
            400,
            "not-an-object",
        ),
        (
            "empty",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body("{}"),
            400,
            "no-fields",
        ),
        (
            "bad field name",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body(r#"{"SMS!": 1}"#),
            400,
            "bad-field-name",
        ),
        (
            "reserved field",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body(r#"{"email": {"open_count": 0}}"#),
            400,
            "reserved-field",
        ),
        (
            "too many fields",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body(too_many),
            400,
            "too-many-fields",
        ),
        (
            "big field",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body(big_field),
            413,
            "field-too-large",
        ),
        (
            "big body",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .body(big_body),
            413,
            "body-too-large",
        ),
        (
            "not JSON",
            client()
                .patch(&context_url)
                .header("authorization", &sms)
                .header("content-type", "text/plain")
                .body(valid),
            415,
            "unsupported-media-type",
        ),
        (
            "bad subscriber",
            client()
                .patch(server.url("/v1/context/al%7Dice"))
                .header("authorization", &sms)
                .body(valid),
            400,
            "bad-subscriber",
        ),
        (
            "PUT",
            client()
                .put(&context_url)
                .header("authorization", &sms)
                .body(valid),
            405,
            "method-not-allowed",
        ),
        (
            "bad field to delete",
            client()
                .delete(server.url("/v1/context/alice/Cart!"))
                .header("authorization", &sms),
            400,
            "bad-field-name",
        ),
        (
            "unknown route",
            client()
                .get(server.url("/v1/contexts/alice"))
                .header("authorization", &sms),
            404,
            "not-found",
        ),
    ];
    for (name, request, status, error) in cases {
        let answer = send(request).await;
        assert_eq!(answer.status, status, "{name}: {:?}", answer.json());
        assert_eq!(answer.json()["error"], error, "{name}");
        assert!(
            answer.json()["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{name}"
        );
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{name}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        assert_eq!(redis.hgetall("alice"), before, "{name} changed nothing");
    }
    assert_eq!(
        redis.keys("*"),
        vec!["ctx:{alice}"],
        "no other key was written"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn what_a_channel_may_do_works_crm_writes_and_fields_and_contexts_are_deleted() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    let context_url = server.url("/v1/context/alice");

    // CRM writes, a field and the context are deleted.
    let crm = patch_context(
        &server,
        "alice",
        CRM_TOKEN,
        r#"{"loyalty": {"points": 2000}, "crm": {"segment": "vip"}}"#,
    )
    .await;
    assert_eq!(crm.status, 200);
    assert_eq!(
        redis.hget_json("alice", "_by.loyalty").unwrap()["channel"],
        "crm"
    );
    let deleted = send(
        client()
            .delete(server.url("/v1/context/alice/crm"))
            .bearer_auth(CRM_TOKEN),
    )
    .await;
    assert_eq!(
        (deleted.status, deleted.json()["deleted"].clone()),
        (200, json!(true))
    );
    assert_eq!(redis.hget_json("alice", "crm"), None);
    assert_eq!(redis.hget_json("alice", "_by.crm"), None);
    let by_query = send(
        client()
            .delete(server.url("/v1/context/alice?field=loyalty"))
            .bearer_auth(CRM_TOKEN),
    )
    .await;
    assert_eq!(by_query.status, 200);
    assert_eq!(redis.hget_json("alice", "loyalty"), None);
    let all = send(client().delete(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(
        (all.status, all.json()["deleted"].clone()),
        (200, json!(true))
    );
    assert!(redis.hgetall("alice").is_empty());
    let gone = send(client().get(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(
        (gone.status, gone.json()["error"].clone()),
        (404, json!("no-context"))
    );
    server.shutdown().await;
}

/// A server whose SMS channel may only write the `sms` field, while the CRM may do everything.
async fn scoped_server(redis: &RedisServer) -> TestServer {
    TestServer::builder()
        .redis(redis)
        .channel_tokens(&[("sms", SMS_TOKEN), ("crm", CRM_TOKEN)])
        .configure(|args| {
            args.channel_scopes = Some("sms=write:sms; crm=write:*,read,erase".into())
        })
        .start()
        .await
}

#[tokio::test]
async fn a_scoped_channel_writes_only_its_fields_and_cannot_read_or_erase() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = scoped_server(&redis).await;
    let cart_before = redis.hget_json("alice", "cart");

    let own = patch_context(
        &server,
        "alice",
        SMS_TOKEN,
        r#"{"sms": {"intent": "upgrade"}}"#,
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        redis.hget_json("alice", "sms").unwrap()["intent"],
        "upgrade"
    );

    let other = patch_context(
        &server,
        "alice",
        SMS_TOKEN,
        r#"{"sms": {}, "cart": {"items": []}}"#,
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
    assert_eq!(other.json()["error"], "forbidden");
    assert!(other.json()["reason"].as_str().unwrap().contains("`cart`"));
    assert_eq!(
        redis.hget_json("alice", "cart"),
        cart_before,
        "nothing written"
    );
    assert_eq!(
        redis.hget_json("alice", "sms").unwrap()["intent"],
        "upgrade"
    );

    let context_url = server.url("/v1/context/alice");
    let read = send(client().get(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(read.status, 403);
    let field = send(
        client()
            .delete(server.url("/v1/context/alice/cart"))
            .bearer_auth(SMS_TOKEN),
    )
    .await;
    assert_eq!(field.status, 403);
    let erase = send(client().delete(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(erase.status, 403);
    assert_eq!(
        redis.hget_json("alice", "cart"),
        cart_before,
        "nothing deleted"
    );

    let crm_read = send(client().get(&context_url).bearer_auth(CRM_TOKEN)).await;
    assert_eq!(crm_read.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn erasing_a_subscriber_removes_context_locks_and_cached_renders() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    redis.load_sample("bob", &sample_path("bob"));
    let server = scoped_server(&redis).await;
    let alice_url = server.signed("demo/cart_locked.png", "alice");
    let bob_url = server.signed("demo/cart_locked.png", "bob");
    for url in [&alice_url, &bob_url] {
        let open = get(url).await;
        assert_eq!(
            (open.status, open.header("x-opentime-fallback")),
            (200, None)
        );
    }
    assert_eq!(redis.keys("lock:*").len(), 2);

    let erase = send(
        client()
            .delete(server.url("/v1/context/alice"))
            .bearer_auth(CRM_TOKEN),
    )
    .await;
    assert_eq!(erase.status, 200, "{}", erase.text());
    assert_eq!(erase.json()["deleted"], true);
    assert_eq!(erase.json()["locks_deleted"], 1);
    assert!(redis.hgetall("alice").is_empty(), "context gone");
    assert_eq!(
        redis.keys("lock:*"),
        ["lock:{bob}:demo:cart_locked"],
        "only alice's lock went"
    );

    // No cached render of alice is served any more: the open falls back for lack of context.
    let after = get(&alice_url).await;
    assert_eq!(after.header("x-opentime-fallback"), Some("no-context"));
    let bob_again = get(&bob_url).await;
    assert_eq!(bob_again.header("x-opentime-fallback"), None);
    server.shutdown().await;
}
