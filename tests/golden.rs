//! Golden images: every image block of every campaign, rendered from each of its sample
//! contexts at a fixed instant, compared pixel by pixel (small tolerance for rasterizer
//! rounding) with `tests/golden/{campaign}-{block}-{sample}.png`; every countdown block's
//! first frame (all Outlook for Windows shows) at a fixed clock, 2 days 13:27:45 before its
//! deadline, with `tests/golden/{campaign}-{block}-first.png`; and the still Apple's prefetch
//! gets instead (when it ends, for a reader in Berlin) with
//! `tests/golden/{campaign}-{block}-ends.png`.
//!
//! Names in every script the renderer supports go through one block (`demo/welcome`), each
//! compared with `tests/golden/names-{script}.png` and checked to put ink where the name goes.
//! Fonts are the shipped ones and a fixed set of Debian's Noto files (`common::test_fonts`),
//! never whatever else the machine has.
//!
//! `OPENTIME_UPDATE_GOLDEN=1 cargo test --test golden` rewrites them on purpose. On a mismatch a
//! diff image (changed pixels in red) is written to `target/golden-diff/` to look at.

mod common;

use common::{repo, test_fonts, utc};
use opentime::blocks::{BlockKind, Catalog};
use opentime::open::{Opener, Reader, RenderInput, TemplateInput};
use opentime::render::{Format, Renderer};
use opentime::sources::mail_clients::ClientKind;
use std::sync::Arc;

/// A channel may differ by this much without counting (anti-aliasing rounding).
const CHANNEL_TOLERANCE: u8 = 3;
/// At most this share of pixels may differ beyond the tolerance.
const MAX_DIFFERING_SHARE: f64 = 0.001;

fn compare(name: &str, actual: &image::RgbaImage) -> Result<(), String> {
    let path = repo().join("tests/golden").join(format!("{name}.png"));
    if std::env::var_os("OPENTIME_UPDATE_GOLDEN").is_some() {
        actual.save(&path).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = image::open(&path)
        .map_err(|e| {
            format!(
                "{}: {e} (run with OPENTIME_UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        })?
        .to_rgba8();
    if expected.dimensions() != actual.dimensions() {
        return Err(format!(
            "{name}: size {:?} != golden {:?}",
            actual.dimensions(),
            expected.dimensions()
        ));
    }
    let mut diff = image::RgbaImage::new(actual.width(), actual.height());
    let mut differing = 0usize;
    for (x, y, pixel) in actual.enumerate_pixels() {
        let golden = expected.get_pixel(x, y);
        let off = pixel
            .0
            .iter()
            .zip(golden.0.iter())
            .any(|(a, b)| a.abs_diff(*b) > CHANNEL_TOLERANCE);
        if off {
            differing += 1;
            diff.put_pixel(x, y, image::Rgba([255, 0, 0, 255]));
        } else {
            let grey =
                (u16::from(golden.0[0]) + u16::from(golden.0[1]) + u16::from(golden.0[2])) / 3;
            let faded = (200 + grey / 5) as u8;
            diff.put_pixel(x, y, image::Rgba([faded, faded, faded, 255]));
        }
    }
    let share = differing as f64 / f64::from(actual.width() * actual.height());
    if share > MAX_DIFFERING_SHARE {
        let dir = repo().join("target/golden-diff");
        let _ = std::fs::create_dir_all(&dir);
        let _ = diff.save(dir.join(format!("{name}.diff.png")));
        let _ = actual.save(dir.join(format!("{name}.actual.png")));
        return Err(format!(
            "{name}: {differing} pixels ({:.3}%) differ; see target/golden-diff/{name}.diff.png",
            share * 100.0
        ));
    }
    Ok(())
}

#[test]
fn demo_blocks_match_their_golden_images() {
    let renderer =
        Arc::new(Renderer::load_with(&repo().join("assets"), &test_fonts()).expect("assets"));
    let (catalog, errors) = Catalog::load(&repo().join("templates"), renderer);
    assert!(errors.is_empty(), "{errors:?}");
    let at = utc("2026-11-25T12:00:00Z");
    let live = opentime::sources::Sources::defaults().expect("live sources");
    let offline = Opener::offline(ClientKind::Unknown);
    let mut failures = Vec::new();
    let mut compared = 0;
    for campaign in catalog.campaigns() {
        let samples = campaign.samples().expect("samples");
        for block in campaign.blocks().filter(|b| b.kind == BlockKind::Image) {
            for (sample, fields) in &samples {
                // Blocks that read `location` see the sample's own, and the demo stores.
                let input = opentime::open::from_context(
                    block,
                    fields,
                    Some(sample),
                    at,
                    Default::default(),
                    &offline,
                    &live,
                );
                let rendered = opentime::open::render_block(
                    catalog.renderer(),
                    &campaign,
                    block,
                    Format::Png,
                    1,
                    &input,
                )
                .expect("render");
                let image = image::load_from_memory(&rendered.bytes)
                    .expect("png")
                    .to_rgba8();
                assert_eq!(image.dimensions(), (block.width, block.height));
                compared += 1;
                if let Err(failure) = compare(
                    &format!("{}-{}-{sample}", campaign.name, block.name),
                    &image,
                ) {
                    failures.push(failure);
                }
            }
        }
    }
    assert!(
        compared >= 42,
        "every demo image block for alice, bob, carol and the long and non-Latin names"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn countdown_first_frames_match_their_golden_images() {
    let renderer =
        Arc::new(Renderer::load_with(&repo().join("assets"), &test_fonts()).expect("assets"));
    let (catalog, errors) = Catalog::load(&repo().join("templates"), renderer);
    assert!(errors.is_empty(), "{errors:?}");
    let at = utc("2026-11-25T14:32:15Z");
    let until = at + chrono::Duration::seconds(2 * 86_400 + 13 * 3_600 + 27 * 60 + 45);
    let query: std::collections::BTreeMap<String, String> =
        [("until".to_owned(), until.to_rfc3339())].into();
    let live = opentime::sources::Sources::defaults().expect("live sources");
    let in_berlin = Reader {
        time_zone: Some("Europe/Berlin".into()),
        country: opentime::sources::countries::CountryCode::parse("DE"),
        by_address: false,
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    let variants = [
        ("first", ClientKind::Browser, None),
        ("ends", ClientKind::AppleMpp, Some(in_berlin)),
    ];
    for campaign in catalog.campaigns() {
        for block in campaign.blocks().filter(|b| b.kind == BlockKind::Countdown) {
            for (variant, kind, reader) in &variants {
                let mut input =
                    TemplateInput::for_block(block, &Default::default(), None, at, query.clone());
                input.reader = reader.clone();
                let opener = Opener::offline(*kind);
                let decided =
                    RenderInput::decide(&campaign, block, Format::Gif, 1, input, &opener, &live)
                        .expect("a deadline");
                let rendered = opentime::open::render_block(
                    catalog.renderer(),
                    &campaign,
                    block,
                    Format::Gif,
                    1,
                    &decided.input,
                )
                .expect("render");
                let mut options = gif::DecodeOptions::new();
                options.set_color_output(gif::ColorOutput::RGBA);
                let mut decoder = options.read_info(&rendered.bytes[..]).expect("gif");
                let frame = decoder
                    .read_next_frame()
                    .expect("frame")
                    .expect("a first frame");
                assert_eq!((frame.left, frame.top), (0, 0), "the first frame is whole");
                let image = image::RgbaImage::from_raw(
                    u32::from(frame.width),
                    u32::from(frame.height),
                    frame.buffer.to_vec(),
                )
                .expect("rgba frame");
                assert_eq!(image.dimensions(), (block.width, block.height));
                compared += 1;
                if let Err(failure) = compare(
                    &format!("{}-{}-{variant}", campaign.name, block.name),
                    &image,
                ) {
                    failures.push(failure);
                }
            }
        }
    }
    assert!(compared >= 2, "the demo countdown at least");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_comparison_catches_a_changed_pixel_block() {
    // A golden test that could not fail would be worthless: change a 40×40 patch and expect
    // the comparison to refuse it.
    if std::env::var_os("OPENTIME_UPDATE_GOLDEN").is_some() {
        return;
    }
    let path = repo().join("tests/golden/demo-cart-alice.png");
    let mut image = image::open(&path).expect("golden image").to_rgba8();
    for y in 100..140 {
        for x in 100..140 {
            image.put_pixel(x, y, image::Rgba([255, 0, 255, 255]));
        }
    }
    let error = compare("demo-cart-alice", &image).unwrap_err();
    assert!(error.contains("1600 pixels"), "{error}");
}

/// A name in each script, by script (and a right-to-left name with Latin and digits).
const SCRIPT_NAMES: [(&str, &str); 13] = [
    ("cyrillic", "Мария Иванова"),
    ("greek", "Γιώργος"),
    ("chinese", "张伟"),
    ("japanese", "佐藤 さくら"),
    ("korean", "김민준"),
    ("arabic", "محمد عبد الله"),
    ("hebrew", "דוד כהן"),
    ("devanagari", "प्रिया शर्मा"),
    ("thai", "สมชาย ใจดี"),
    ("emoji", "Zoë 🌷✨"),
    ("mixed-rtl", "ليلى Haddad 2"),
    ("long", "Maximiliane-Charlotte Sophie"),
    (
        "longest",
        "Maximiliane-Charlotte Sophie Friederike von Hohenzollern-Sigmaringen",
    ),
];

/// `demo/welcome` for a subscriber whose first name is `name` (and who left a linen shirt).
fn welcome(catalog: &Catalog, name: &str) -> image::RgbaImage {
    let campaign = catalog.campaign("demo").expect("demo campaign");
    let block = campaign.block("welcome").expect("welcome block");
    let fields = serde_json::json!({
        "profile": {"first_name": name},
        "cart": {"items": [{"name": "organic linen relaxed-fit long-sleeve button-down shirt"}]},
    });
    let input = TemplateInput::for_block(
        block,
        fields.as_object().expect("an object"),
        Some("names"),
        utc("2026-11-25T12:00:00Z"),
        Default::default(),
    );
    let rendered =
        opentime::open::render_block(catalog.renderer(), &campaign, block, Format::Png, 1, &input)
            .expect("render");
    image::load_from_memory(&rendered.bytes)
        .expect("png")
        .to_rgba8()
}

/// The columns of the headline's band (the headline's colour, rows 24–72) that have ink.
fn headline_ink(image: &image::RgbaImage) -> Vec<u32> {
    (0..image.width())
        .filter(|x| {
            (24..72).any(|y| {
                let [r, g, b, _] = image.get_pixel(*x, y).0;
                // Dark green text on a pale green card (the decorations are pale too).
                u32::from(r) + u32::from(g) + u32::from(b) < 450
            })
        })
        .collect()
}

#[test]
fn names_in_every_script_match_their_golden_images_and_show() {
    let renderer =
        Arc::new(Renderer::load_with(&repo().join("assets"), &test_fonts()).expect("assets"));
    let (catalog, errors) = Catalog::load(&repo().join("templates"), renderer);
    assert!(errors.is_empty(), "{errors:?}");
    // "Spring is here!": where the headline ends without a name.
    let bare = headline_ink(&welcome(&catalog, ""));
    let bare_end = *bare.last().expect("a headline");
    let mut failures = Vec::new();
    for (script, name) in SCRIPT_NAMES {
        let image = welcome(&catalog, name);
        if let Err(failure) = compare(&format!("names-{script}"), &image) {
            failures.push(failure);
        }
        // The name is drawn where it goes: ink continues well past the bare headline's end,
        // over most of the columns the name takes, and stays inside the card.
        let ink = headline_ink(&image);
        let end = *ink.last().expect("ink");
        assert!(
            end <= 577,
            "{script}: the headline runs to {end}, past the card's margin"
        );
        if script != "longest" {
            assert!(end > bare_end + 20, "{script}: the headline ends at {end}");
            let (from, to) = (bare_end - 8, end);
            let inked = ink.iter().filter(|x| (from..=to).contains(*x)).count();
            assert!(
                inked * 10 >= (to - from) as usize * 6,
                "{script}: ink in only {inked} of the {} columns where the name goes",
                to - from
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
