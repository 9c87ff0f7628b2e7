//! Tests that split and learn, over HTTP with a real Redis: arms split by weight, each
//! subscriber keeps their arm, only a person's first open counts (a machine's fetch is shown
//! the arm but never counted), a click counts once and goes to the arm's link, and the
//! results come from `GET /v1/report/{campaign}` and `opentime report`.

mod common;

use common::{send, token, RedisServer, TestServer, APPLE_MPP_USER_AGENT, SMS_TOKEN};
use std::collections::BTreeMap;

const MANIFEST: &str = r#"
[blocks.offer]
kind = "image"
template = "a.svg"
width = 40
height = 20
reads = ["profile"]
fallback = "a.svg"
link_hosts = ["shop.example.com"]
default_link = "https://shop.example.com/"

[blocks.offer.test]
mode = "learn"
min_opens = 100000

[[blocks.offer.variants]]
name = "a"
link = "https://shop.example.com/a"

[[blocks.offer.variants]]
name = "b"
template = "b.svg"
link = "https://shop.example.com/b"

[[blocks.offer.variants]]
name = "c"
template = "c.svg"
weight = 2
link = "https://shop.example.com/c"
"#;

const ARMS: [(&str, [u8; 3]); 3] = [("a", [255, 0, 0]), ("b", [0, 255, 0]), ("c", [0, 0, 255])];

fn campaign() -> tempfile::TempDir {
    common::colour_campaign("ab", MANIFEST, &ARMS)
}

async fn open(server: &TestServer, subscriber: &str, user_agent: &str) -> &'static str {
    let answer = send(
        common::client()
            .get(server.signed("ab/offer.png", subscriber))
            .header("user-agent", user_agent),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-opentime-fallback"), None);
    common::colour_of(&answer.png(), &ARMS)
}

fn counters(redis: &RedisServer) -> BTreeMap<String, u64> {
    redis::cmd("HGETALL")
        .arg("abtest:{ab}:offer")
        .query(&mut redis.connection())
        .unwrap()
}

#[tokio::test]
async fn arms_split_by_weight_stay_with_each_subscriber_and_count_people_once() {
    let redis = RedisServer::start();
    let templates = campaign();
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .channel_tokens(&[("sms", SMS_TOKEN)])
        .start()
        .await;
    server.wait_until_ready().await;
    let mut shown = BTreeMap::new();
    for n in 0..200 {
        let subscriber = format!("s{n}");
        redis.hset(
            &subscriber,
            "profile",
            &serde_json::json!({"first_name": "S"}),
        );
        shown.insert(
            subscriber.clone(),
            open(&server, &subscriber, common::PERSON_USER_AGENT).await,
        );
    }
    let on = |arm: &str| shown.values().filter(|a| **a == arm).count();
    assert!(
        (70..=130).contains(&on("c")),
        "weight 2 of 4: {} of 200",
        on("c")
    );
    assert!(on("a") > 25 && on("b") > 25, "{shown:?}");
    // Reopens, by the person or by a machine, show the same arm and count nothing.
    let before = counters(&redis);
    for n in 0..20 {
        let subscriber = format!("s{n}");
        assert_eq!(
            open(&server, &subscriber, common::PERSON_USER_AGENT).await,
            shown[&subscriber]
        );
        assert_eq!(
            open(&server, &subscriber, APPLE_MPP_USER_AGENT).await,
            shown[&subscriber]
        );
    }
    assert_eq!(counters(&redis), before);
    let opens: u64 = before
        .iter()
        .filter(|(k, _)| k.ends_with(":opens"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(opens, 200);

    // Apple's prefetch comes first: the arm is chosen and kept, but only the person's open counts.
    redis.hset("late", "profile", &serde_json::json!({"first_name": "L"}));
    let prefetched = open(&server, "late", APPLE_MPP_USER_AGENT).await;
    assert_eq!(counters(&redis), before);
    assert_eq!(
        open(&server, "late", common::PERSON_USER_AGENT).await,
        prefetched
    );
    let key = format!("{prefetched}:opens");
    assert_eq!(
        counters(&redis)[&key],
        before.get(&key).copied().unwrap_or(0) + 1
    );

    // A click goes to the arm's link and counts once.
    let click = format!("{}/click/ab/offer?s=s0&t={}", server.base, token("s0"));
    for _ in 0..2 {
        let answer = send(common::no_redirects().get(&click)).await;
        assert_eq!(answer.status, 302);
        assert_eq!(
            answer.header("location"),
            Some(format!("https://shop.example.com/{}", shown["s0"]).as_str())
        );
    }
    assert_eq!(counters(&redis)[&format!("{}:clicks", shown["s0"])], 1);

    // The report: per arm opens, clicks, rate and the probability of being best.
    let unauthorized = send(common::client().get(server.url("/v1/report/ab"))).await;
    assert_eq!(unauthorized.status, 401);
    let report = send(
        common::client()
            .get(server.url("/v1/report/ab"))
            .bearer_auth(SMS_TOKEN),
    )
    .await;
    assert_eq!(report.status, 200);
    let report = report.json();
    let arms = report["tests"]["offer"]["arms"].as_array().unwrap();
    assert_eq!(report["tests"]["offer"]["mode"], "learn");
    let total: u64 = arms.iter().map(|a| a["opens"].as_u64().unwrap()).sum();
    assert_eq!(total, 201);
    let best: f64 = arms
        .iter()
        .map(|a| a["probability_best"].as_f64().unwrap())
        .sum();
    assert!((best - 1.0).abs() < 1e-9, "{best}");
    let clicked = arms.iter().find(|a| a["name"] == shown["s0"]).unwrap();
    assert_eq!(clicked["clicks"], 1);
    assert!(clicked["rate"].as_f64().unwrap() > 0.0);
    let missing = send(
        common::client()
            .get(server.url("/v1/report/nope"))
            .bearer_auth(SMS_TOKEN),
    )
    .await;
    assert_eq!(missing.status, 404);

    // The same figures from the command line.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_opentime"))
        .args(["report", "ab", "--templates"])
        .arg(templates.path())
        .arg("--assets")
        .arg(common::repo().join("assets"))
        .args(["--redis-url", &redis.url()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("test offer (learn)"), "{text}");
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{} ", shown["s0"])))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.split_whitespace().nth(3) == Some("1"), "{line}");
}
