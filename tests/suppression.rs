//! Suppressed variants rendered offline: another template, an image file, or a transparent pixel,
//! and a campaign naming a variant template that does not exist refuses to load.

mod common;

use common::*;
use opentime::blocks::Campaign;
use opentime::open::TemplateInput;
use opentime::render::{Format, Renderer};
use serde_json::json;

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
