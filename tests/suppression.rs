//! Suppression (`suppress_if`): rendered offline, each kind of suppressed variant (another
//! template, an image file, or a transparent pixel) and a campaign naming a variant that does
//! not exist refusing to load; end to end, an SMS channel's write through the ingest API
//! suppressing the offer on the very next open, those opens shared with the other channels.

mod common;

use common::*;
use opentime::blocks::Campaign;
use opentime::open::TemplateInput;
use opentime::render::{Format, Renderer};
use serde_json::json;
use std::time::Duration;

const MANIFEST: &str = r#"
[blocks.offer]
kind = "image"
template = "offer.svg"
width = 40
height = 20
reads = ["sms"]
suppress_if = 'ctx.sms.intent == "upgrade"'
suppressed_template = "thanks.svg"

[blocks.banner]
kind = "image"
template = "offer.svg"
width = 40
height = 20
reads = ["sms"]
suppress_if = 'ctx.sms.intent == "upgrade"'
suppressed_image = "thanks.svg"

[blocks.pixel]
kind = "image"
template = "offer.svg"
width = 40
height = 20
reads = ["sms"]
suppress_if = 'ctx.sms.intent == "upgrade"'
"#;

const RED: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="#ff0000"/></svg>"##;
const GREEN: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="#00ff00"/></svg>"##;

fn load_promo(manifest: &str) -> (tempfile::TempDir, Result<Campaign, String>, Renderer) {
    let dir = tempfile::tempdir().unwrap();
    let campaign_dir = dir.path().join("promo");
    std::fs::create_dir(&campaign_dir).unwrap();
    std::fs::write(campaign_dir.join("blocks.toml"), manifest).unwrap();
    std::fs::write(campaign_dir.join("offer.svg"), RED).unwrap();
    std::fs::write(campaign_dir.join("thanks.svg"), GREEN).unwrap();
    let renderer = Renderer::load(&repo().join("assets")).unwrap();
    let loaded = Campaign::load(&campaign_dir, &renderer).map_err(|e| e.to_string());
    (dir, loaded, renderer)
}

#[test]
fn each_kind_of_suppressed_variant_is_what_shows() {
    let (_dir, campaign, renderer) = load_promo(MANIFEST);
    let campaign = campaign.unwrap();
    let render = |block: &str, intent: &str| {
        let block = campaign.block(block).unwrap();
        let fields = json!({"sms": {"intent": intent}});
        let input = TemplateInput::for_block(
            block,
            fields.as_object().unwrap(),
            Some("alice"),
            chrono::Utc::now(),
            Default::default(),
        );
        let rendered =
            opentime::open::render_block(&renderer, &campaign, block, Format::Png, 1, &input)
                .unwrap();
        decode_png(&rendered.bytes)
    };
    for block in ["offer", "banner", "pixel"] {
        let shown = render(block, "browsing");
        assert_eq!(shown.dimensions(), (40, 20));
        assert_eq!(
            shown.get_pixel(5, 5).0,
            [255, 0, 0, 255],
            "{block}: the offer"
        );
    }
    for block in ["offer", "banner"] {
        let suppressed = render(block, "upgrade");
        assert_eq!(suppressed.dimensions(), (40, 20));
        assert_eq!(
            suppressed.get_pixel(5, 5).0,
            [0, 255, 0, 255],
            "{block}: the variant"
        );
    }
    let pixel = render("pixel", "upgrade");
    assert_eq!(pixel.dimensions(), (1, 1));
    assert_eq!(pixel.get_pixel(0, 0).0[3], 0);
}

#[test]
fn a_missing_variant_keeps_the_campaign_from_loading() {
    for (setting, missing) in [
        (
            "suppressed_template = \"thanks.svg\"",
            "suppressed_template = \"nope.svg\"",
        ),
        (
            "suppressed_image = \"thanks.svg\"",
            "suppressed_image = \"gone.png\"",
        ),
    ] {
        let (_dir, loaded, _) = load_promo(&MANIFEST.replace(setting, missing));
        let error = loaded.unwrap_err();
        assert!(
            error.contains(&missing[missing.len() - 9..missing.len() - 1]),
            "{error}"
        );
    }
}

#[tokio::test]
async fn sms_upgrade_intent_suppresses_the_offer_on_the_next_open_and_the_open_is_shared() {
    let redis = RedisServer::start();
    redis.load_sample("alice", &sample_path("alice"));
    let server = server_with_channels(&redis, 0).await;
    let url = server.signed("demo/upgrade.png", "alice");

    let offer = the_offer_is_shown(&url).await;
    the_sms_channel_learns_the_upgrade_intent(&redis, &server).await;
    the_next_open_is_a_transparent_pixel(&url, &offer).await;
    both_opens_are_streamed_and_shared_in_the_email_field(&redis, &server).await;
    server.shutdown().await;
}

/// 1. The offer is shown.
async fn the_offer_is_shown(url: &str) -> Answer {
    let offer = get(url).await;
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
    offer
}

/// 2. The SMS channel learns the person wants to upgrade.
async fn the_sms_channel_learns_the_upgrade_intent(redis: &RedisServer, server: &TestServer) {
    let written = patch_context(
        server,
        "alice",
        SMS_TOKEN,
        r#"{"sms": {"intent": "upgrade", "last_message": "I want to upgrade my membership"}}"#,
    )
    .await;
    assert_eq!(written.status, 200, "{:?}", written.json());
    assert_eq!(written.header("cache-control"), Some("no-store"));
    assert_eq!(written.json()["written"], json!(["sms"]));
    assert_eq!(
        redis.hget_json("alice", "sms").unwrap()["intent"],
        "upgrade"
    );
    assert_eq!(
        redis.hget_json("alice", "_by.sms").unwrap()["channel"],
        "sms"
    );
    assert_eq!(
        redis.hget_json("alice", "cart"),
        Some(sample("alice")["cart"].clone()),
        "other channels' fields are untouched"
    );
}

/// 3. The very next open shows the suppressed variant: a transparent pixel.
async fn the_next_open_is_a_transparent_pixel(url: &str, offer: &Answer) {
    let suppressed = get(url).await;
    assert_eq!(suppressed.status, 200);
    assert_eq!(suppressed.header("x-opentime-fallback"), None);
    let pixels = suppressed.png();
    assert_eq!(pixels.dimensions(), (1, 1));
    assert_eq!(pixels.get_pixel(0, 0)[3], 0, "fully transparent");
    assert_ne!(suppressed.header("etag"), offer.header("etag"));
}

/// 4. Both opens are in the stream, and the email field tells the other channels.
async fn both_opens_are_streamed_and_shared_in_the_email_field(
    redis: &RedisServer,
    server: &TestServer,
) {
    let streamed = eventually(Duration::from_secs(5), || async {
        redis.events().len() >= 2
    })
    .await;
    assert!(streamed, "open events reach the stream");
    for event in redis.events() {
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
    let email = &context.json()["context"]["email"];
    assert_eq!(email["open_count"], 2, "{email}");
    assert_eq!(email["last_campaign"], "demo");
    let last_open = email["last_open"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_open).is_ok(),
        "{email}"
    );
}
