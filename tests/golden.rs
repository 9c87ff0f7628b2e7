//! Golden images: every image block of every campaign, rendered from each of its sample
//! contexts at a fixed instant, compared pixel by pixel (small tolerance for rasterizer
//! rounding) with `tests/golden/{campaign}-{block}-{sample}.png`; every countdown block's
//! first frame (all Outlook for Windows shows) at a fixed clock, 2 days 13:27:45 before its
//! deadline, with `tests/golden/{campaign}-{block}-first.png`; and the still Apple's prefetch
//! gets instead (when it ends, for a reader in Berlin) with
//! `tests/golden/{campaign}-{block}-ends.png`.
//!
//! `OPENTIME_UPDATE_GOLDEN=1 cargo test --test golden` rewrites them on purpose. On a mismatch a
//! diff image (changed pixels in red) is written to `target/golden-diff/` to look at.

mod common;

use common::{repo, utc};
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
    let renderer = Arc::new(Renderer::load(&repo().join("assets")).expect("assets"));
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
        compared >= 6,
        "demo cart and points for alice, bob, carol at least"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn countdown_first_frames_match_their_golden_images() {
    let renderer = Arc::new(Renderer::load(&repo().join("assets")).expect("assets"));
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
