//! The omnichannel loop end to end: the ingest API, open/pixel/click events, suppression,
//! lock-on-open and click-throughs — real TCP to the real server, a real `redis-server`.

mod common;

use common::*;
use opentime::signing::Signer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const SMS_TOKEN: &str = "sms-channel-token-0123456789";
const CRM_TOKEN: &str = "crm-channel-token-0123456789";

/// A server on `redis` with the SMS and CRM channels, trusting `hops` proxies.
async fn server(redis: &RedisServer, hops: usize) -> TestServer {
    let mut args = test_args(&repo().join("templates"), Some(redis.url()));
    args.channel_tokens = Some(format!("sms:{SMS_TOKEN},crm:{CRM_TOKEN}"));
    args.trusted_proxy_hops = hops;
    TestServer::start(args).await
}

fn token(subscriber: &str) -> String {
    Signer::from_secrets(SECRET).unwrap().token(subscriber)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Every entry of `events:opens`, oldest first.
fn stream(redis: &RedisServer) -> Vec<HashMap<String, String>> {
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("events:opens")
        .arg("-")
        .arg("+")
        .query(&mut redis.connection())
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

fn hgetall(redis: &RedisServer, subscriber: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("ctx:{{{subscriber}}}"))
        .query(&mut redis.connection())
        .unwrap()
}

fn hget_json(redis: &RedisServer, subscriber: &str, field: &str) -> Option<Value> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(format!("ctx:{{{subscriber}}}"))
        .arg(field)
        .query(&mut redis.connection())
        .unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

fn keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis.connection())
        .unwrap()
}

async fn patch(server: &TestServer, subscriber: &str, bearer: &str, body: &str) -> Answer {
    send(
        client()
            .patch(server.url(&format!("/v1/context/{subscriber}")))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

fn json_body(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn sms_upgrade_intent_suppresses_the_offer_on_the_next_open_and_the_open_is_shared() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
    let url = server.signed("demo/upgrade.png", "alice");

    // 1. The offer is shown.
    let offer = get(&url).await;
    assert_eq!(offer.status, 200);
    assert_eq!(offer.header("x-opentime-fallback"), None);
    assert_same_picture(
        &offer.png(),
        &decode_png(&render_offline(
            "demo",
            "upgrade",
            &sample("alice"),
            "alice",
        )),
    );
    assert_eq!(offer.png().dimensions(), (600, 200));

    // 2. The SMS channel learns the person wants to upgrade.
    let written = patch(
        &server,
        "alice",
        SMS_TOKEN,
        r#"{"sms": {"intent": "upgrade", "last_message": "I want to upgrade my membership"}}"#,
    )
    .await;
    assert_eq!(written.status, 200, "{:?}", json_body(&written));
    assert_eq!(written.header("cache-control"), Some("no-store"));
    assert_eq!(json_body(&written)["written"], json!(["sms"]));
    assert_eq!(
        hget_json(&redis, "alice", "sms").unwrap()["intent"],
        "upgrade"
    );
    assert_eq!(
        hget_json(&redis, "alice", "_by.sms").unwrap()["channel"],
        "sms"
    );
    assert_eq!(
        hget_json(&redis, "alice", "cart"),
        Some(sample("alice")["cart"].clone()),
        "other channels' fields are untouched"
    );

    // 3. The very next open shows the suppressed variant: a transparent pixel.
    let suppressed = get(&url).await;
    assert_eq!(suppressed.status, 200);
    assert_eq!(suppressed.header("x-opentime-fallback"), None);
    let pixels = suppressed.png();
    assert_eq!(pixels.dimensions(), (1, 1));
    assert_eq!(pixels.get_pixel(0, 0)[3], 0, "fully transparent");
    assert_ne!(suppressed.header("etag"), offer.header("etag"));

    // 4. Both opens are in the stream, and the email field tells the other channels.
    let streamed = eventually(Duration::from_secs(5), || async {
        stream(&redis).len() >= 2
    })
    .await;
    assert!(streamed, "open events reach the stream");
    for event in stream(&redis) {
        assert_eq!(event["type"], "open");
        assert_eq!(event["campaign"], "demo");
        assert_eq!(event["block"], "upgrade");
        assert_eq!(event["subscriber"], "alice");
        assert_eq!(event["prefetch"], "0");
        assert!(chrono::DateTime::parse_from_rfc3339(&event["at"]).is_ok());
    }
    let context = send(
        client()
            .get(server.url("/v1/context/alice"))
            .header("authorization", format!("Bearer {CRM_TOKEN}")),
    )
    .await;
    assert_eq!(context.status, 200);
    assert_eq!(context.header("cache-control"), Some("no-store"));
    let email = &json_body(&context)["context"]["email"];
    assert_eq!(email["open_count"], 2, "{email}");
    assert_eq!(email["last_campaign"], "demo");
    let last_open = email["last_open"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_open).is_ok(),
        "{email}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_locked_block_shows_the_first_open_and_its_clicks_match_after_the_context_changes() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
    let locked_url = server.signed("demo/cart_locked.png", "alice");
    let live_url = server.signed("demo/cart.png", "alice");

    let first = get(&locked_url).await;
    assert_eq!(first.header("x-opentime-fallback"), None);
    let ttl: i64 = redis::cmd("TTL")
        .arg("lock:{alice}:demo:cart_locked")
        .query(&mut redis.connection())
        .unwrap();
    assert!(ttl > 604_000 && ttl <= 604_800, "lock TTL {ttl}");

    let mut changed = sample("alice");
    changed["cart"]["items"] = json!([
        {"sku": "TEE-1", "url": "https://shop.example.com/p/tee-1", "name": "Organic cotton tee",
         "quantity": 3, "price": 25.0, "image_url": "asset:products/tshirt.png"}
    ]);
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
    assert_eq!(keys(&redis, "lock:*").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn simultaneous_first_opens_leave_one_lock_and_see_the_same_image() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
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
    assert_eq!(
        keys(&redis, "lock:*"),
        vec!["lock:{alice}:demo:cart_locked"]
    );
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
async fn an_apple_proxy_prefetch_does_not_lock_and_is_recorded_as_one() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 1).await;
    let url = server.signed("demo/cart_locked.png", "alice");

    let prefetch = send(client().get(&url).header("x-forwarded-for", "17.58.0.1")).await;
    assert_eq!(prefetch.status, 200);
    assert_eq!(prefetch.header("x-opentime-fallback"), None);
    assert!(
        keys(&redis, "lock:*").is_empty(),
        "a prefetch does not lock"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            stream(&redis).len() == 1
        })
        .await
    );
    let event = &stream(&redis)[0];
    assert_eq!(event["client"], "apple-mpp");
    assert_eq!(event["prefetch"], "1");
    let email = hget_json(&redis, "alice", "email").unwrap();
    assert!(email.get("open_count").is_none(), "{email}");
    assert!(email.get("last_prefetch").is_some(), "{email}");

    // The person opens later (from anywhere else): now it locks.
    let human = send(client().get(&url).header("x-forwarded-for", "203.0.113.9")).await;
    assert_eq!(human.status, 200);
    assert_eq!(keys(&redis, "lock:*").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn clicks_go_to_the_items_link_and_anything_else_to_the_default() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
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

    assert!(
        eventually(Duration::from_secs(5), || async {
            stream(&redis).len() == 11
        })
        .await,
        "every click is an event"
    );
    let events = stream(&redis);
    assert_eq!(events[0]["type"], "click");
    assert_eq!(events[0]["item"], "2");
    assert_eq!(events[0]["link"], "item");
    assert_eq!(events[1]["link"], "default");
    assert_eq!(events[6]["subscriber"], "", "a forged token names no one");
    let email = hget_json(&redis, "alice", "email").unwrap();
    assert_eq!(email["click_count"], 7, "{email}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_context_api_refuses_each_bad_input_with_a_4xx_and_writes_nothing() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
    let before = hgetall(&redis, "alice");
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
        assert_eq!(answer.status, status, "{name}: {:?}", json_body(&answer));
        assert_eq!(json_body(&answer)["error"], error, "{name}");
        assert!(
            json_body(&answer)["reason"]
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
        assert_eq!(hgetall(&redis, "alice"), before, "{name} changed nothing");
    }
    assert_eq!(
        keys(&redis, "*"),
        vec!["ctx:{alice}"],
        "no other key was written"
    );

    // And what is allowed works: CRM writes, a field and the context are deleted.
    let crm = patch(
        &server,
        "alice",
        CRM_TOKEN,
        r#"{"loyalty": {"points": 2000}, "crm": {"segment": "vip"}}"#,
    )
    .await;
    assert_eq!(crm.status, 200);
    assert_eq!(
        hget_json(&redis, "alice", "_by.loyalty").unwrap()["channel"],
        "crm"
    );
    let deleted = send(
        client()
            .delete(server.url("/v1/context/alice/crm"))
            .bearer_auth(CRM_TOKEN),
    )
    .await;
    assert_eq!(
        (deleted.status, json_body(&deleted)["deleted"].clone()),
        (200, json!(true))
    );
    assert_eq!(hget_json(&redis, "alice", "crm"), None);
    assert_eq!(hget_json(&redis, "alice", "_by.crm"), None);
    let by_query = send(
        client()
            .delete(server.url("/v1/context/alice?field=loyalty"))
            .bearer_auth(CRM_TOKEN),
    )
    .await;
    assert_eq!(by_query.status, 200);
    assert_eq!(hget_json(&redis, "alice", "loyalty"), None);
    let all = send(client().delete(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(
        (all.status, json_body(&all)["deleted"].clone()),
        (200, json!(true))
    );
    assert!(hgetall(&redis, "alice").is_empty());
    let gone = send(client().get(&context_url).bearer_auth(SMS_TOKEN)).await;
    assert_eq!(
        (gone.status, json_body(&gone)["error"].clone()),
        (404, json!("no-context"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn events_recorded_while_redis_is_down_are_written_when_it_returns() {
    let mut redis = RedisServer::start();
    redis.load_sample("alice", &repo().join("templates/demo/samples/alice.json"));
    let server = server(&redis, 0).await;
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
        stream(&redis).len() == 6
    })
    .await;
    assert!(
        written,
        "the 6 queued events are written once Redis is back: {:?}",
        stream(&redis)
    );
    let events = stream(&redis);
    assert_eq!(events.iter().filter(|e| e["type"] == "open").count(), 5);
    assert_eq!(events[5]["type"], "pixel");
    assert_eq!(events[5]["block"], "");
    assert!(
        hgetall(&redis, "alice").is_empty(),
        "the restarted Redis is empty, and an open does not make up a context"
    );
    let metrics = String::from_utf8(get(&server.url("/metrics")).await.body).unwrap();
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

#[tokio::test]
async fn the_embedded_store_takes_api_writes_records_opens_and_locks() {
    let data = tempfile::tempdir().unwrap();
    let mut args = test_args(&repo().join("templates"), None);
    args.data_dir = data.path().to_owned();
    args.seed = repo().join("templates/demo/samples");
    args.channel_tokens = Some(format!("sms:{SMS_TOKEN}"));
    let mut server = TestServer::start(args).await;

    let locked_url = server.signed("demo/cart_locked.png", "alice");
    let first = get(&locked_url).await;
    assert_eq!(first.header("x-opentime-fallback"), None);
    let offer = get(&server.signed("demo/upgrade.png", "alice")).await;
    assert_eq!(offer.png().dimensions(), (600, 200));

    let written = patch(
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
        json_body(&answer)["context"]["email"]["open_count"] == 4
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
    assert_eq!(json_body(&answer)["context"]["_by.sms"]["channel"], "sms");
    server._dirs.push(data);
    server.shutdown().await;
}
