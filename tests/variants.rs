//! Rule sets over HTTP with a real Redis: each variant of a block is reached by the fact its
//! rule reads (context, query, client, the reader's local time), the default closes the list,
//! the picture is the variant's own template, the open event names the variant, and the click
//! of that open goes to the variant's link.

mod common;

use common::{
    eventually, get, no_redirects, send, token, utc, RedisServer, TestServer, APPLE_MPP_USER_AGENT,
};
use opentime::clock::Clock;
use serde_json::json;
use std::time::Duration;

const MANIFEST: &str = r#"
[blocks.banner]
kind = "image"
template = "default.svg"
width = 40
height = 20
reads = ["profile", "location"]
request = ["client", "time"]
query = ["promo"]
fallback = "default.svg"
link_hosts = ["shop.example.com"]
default_link = "https://shop.example.com/"

[[blocks.banner.variants]]
name = "gold"
when = 'ctx.profile.tier == "gold"'
template = "gold.svg"
link = "https://shop.example.com/gold"

[[blocks.banner.variants]]
name = "promo"
when = 'query.promo == "spring"'
template = "promo.svg"
link = "https://shop.example.com/promo"

[[blocks.banner.variants]]
name = "apple"
when = 'client.kind == "apple-mpp"'
template = "apple.svg"
link = "https://shop.example.com/apple"

[[blocks.banner.variants]]
name = "morning"
when = "local.hour < 12"
template = "morning.svg"
link = "https://shop.example.com/morning"

[[blocks.banner.variants]]
name = "default"
link = "https://shop.example.com/default"
"#;

const COLOURS: [(&str, [u8; 3]); 5] = [
    ("default", [128, 128, 128]),
    ("gold", [255, 0, 0]),
    ("promo", [0, 255, 0]),
    ("apple", [0, 0, 255]),
    ("morning", [255, 255, 0]),
];

fn campaign() -> tempfile::TempDir {
    common::colour_campaign("rules", MANIFEST, &COLOURS)
}

/// Which variant a picture is, by its colour.
fn variant_of(png: &image::RgbaImage) -> &'static str {
    common::colour_of(png, &COLOURS)
}

fn person(tier: Option<&str>, zone: &str) -> serde_json::Value {
    let mut profile = json!({"first_name": "X"});
    if let Some(tier) = tier {
        profile["tier"] = json!(tier);
    }
    json!({"profile": profile, "location": {"city": "Somewhere", "time_zone": zone}})
}

#[tokio::test]
async fn every_rule_is_reachable_the_default_is_last_and_clicks_follow_the_variant() {
    let redis = RedisServer::start();
    // 12:00 UTC: morning in New York (07:00), afternoon in Berlin (13:00).
    let clock = Clock::manual(utc("2026-11-25T12:00:00Z"));
    let templates = campaign();
    let server = TestServer::builder()
        .redis(&redis)
        .templates(templates.path())
        .clock(clock)
        .start()
        .await;
    server.wait_until_ready().await;
    let cases = [
        ("alice", person(Some("gold"), "Europe/Berlin"), "", "gold"),
        (
            "bob",
            person(None, "Europe/Berlin"),
            "&promo=spring",
            "promo",
        ),
        ("dave", person(None, "America/New_York"), "", "morning"),
        ("erin", person(None, "Europe/Berlin"), "", "default"),
        // A gold member opening in the morning with a promo code: the first rule wins.
        (
            "fay",
            person(Some("gold"), "America/New_York"),
            "&promo=spring",
            "gold",
        ),
        (
            "gus",
            person(None, "Europe/Berlin"),
            "&promo=autumn",
            "default",
        ),
    ];
    for (subscriber, context, _, _) in &cases {
        for (field, value) in context.as_object().unwrap() {
            redis.hset(subscriber, field, value);
        }
    }
    for (subscriber, _, query, expected) in &cases {
        let url = format!("{}{query}", server.signed("rules/banner.png", subscriber));
        let answer = get(&url).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-fallback"), None, "{subscriber}");
        assert_eq!(variant_of(&answer.png()), *expected, "{subscriber}");

        let click = format!(
            "{}/click/rules/banner?s={subscriber}&t={}{query}",
            server.base,
            token(subscriber)
        );
        let redirect = send(no_redirects().get(&click)).await;
        assert_eq!(redirect.status, 302, "{subscriber}");
        assert_eq!(
            redirect.header("location"),
            Some(format!("https://shop.example.com/{expected}").as_str()),
            "{subscriber}"
        );
    }

    // Apple's prefetch is told apart by its client kind.
    redis.hset("hal", "profile", &json!({"first_name": "Hal"}));
    let apple = send(
        common::client()
            .get(server.signed("rules/banner.png", "hal"))
            .header("user-agent", APPLE_MPP_USER_AGENT),
    )
    .await;
    assert_eq!(variant_of(&apple.png()), "apple");

    // The open events name the variant each open showed, and so do the clicks.
    let recorded = eventually(Duration::from_secs(5), || async {
        let events = redis.events();
        cases.iter().all(|(subscriber, _, _, expected)| {
            ["open", "click"].iter().all(|kind| {
                events.iter().any(|e| {
                    e.get("type").map(String::as_str) == Some(kind)
                        && e.get("subscriber").map(String::as_str) == Some(subscriber)
                        && e.get("variant").map(String::as_str) == Some(expected)
                })
            })
        })
    })
    .await;
    assert!(recorded, "{:?}", redis.events());
    let click = redis
        .events()
        .into_iter()
        .find(|e| e.get("type").map(String::as_str) == Some("click"))
        .unwrap();
    assert_eq!(click.get("link").map(String::as_str), Some("variant"));
}

#[tokio::test]
async fn a_manifest_whose_default_is_not_last_never_loads() {
    let templates = campaign();
    let manifest = templates.path().join("rules/blocks.toml");
    let broken = MANIFEST.replace(
        "[[blocks.banner.variants]]\nname = \"default\"",
        "[[blocks.banner.variants]]\nname = \"default\"\nwhen = \"true\"",
    );
    std::fs::write(&manifest, broken).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_opentime"))
        .args(["check", "--templates"])
        .arg(templates.path())
        .arg("--assets")
        .arg(common::repo().join("assets"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("variant `default`: the last variant is the default and has no `when`"),
        "{text}"
    );
}
