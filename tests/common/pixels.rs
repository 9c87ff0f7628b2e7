//! Pictures: PNG decoding, comparisons, and offline renders to compare served images with.

use super::repo;

pub fn decode_png(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_rgba8()
}

/// Asserts two renders show the same picture: same size, every channel within 2 levels (a
/// text drawn from a kept tile is composited with 8-bit rounding; see `render/text_tiles.rs`).
#[track_caller]
pub fn assert_same_picture(actual: &image::RgbaImage, expected: &image::RgbaImage) {
    assert_eq!(actual.dimensions(), expected.dimensions(), "picture size");
    let off = max_diff(actual.as_raw(), expected.as_raw());
    assert!(off <= 2, "pictures differ by up to {off} levels");
}

/// The largest difference between two same-sized pixel buffers, channel by channel.
#[track_caller]
pub fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len(), "same picture size");
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// Whether every channel of a pixel is within `tolerance` of the expected one.
pub fn close(actual: [u8; 4], expected: [u8; 4], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance)
}

/// Renders a block offline from a context, as the server would, for pixel comparisons.
pub fn render_offline(
    campaign: &str,
    block: &str,
    fields: &serde_json::Value,
    subscriber: &str,
) -> Vec<u8> {
    render_offline_with(campaign, block, fields, subscriber, None)
}

/// Like [`render_offline`], for a block that reads the opener: as if opened offline by a
/// `client` (location from the context only, the default live sources).
pub fn render_offline_opened(
    campaign: &str,
    block: &str,
    fields: &serde_json::Value,
    subscriber: &str,
    client: opentime::sources::mail_clients::ClientKind,
) -> Vec<u8> {
    render_offline_with(campaign, block, fields, subscriber, Some(client))
}

fn render_offline_with(
    campaign: &str,
    block: &str,
    fields: &serde_json::Value,
    subscriber: &str,
    client: Option<opentime::sources::mail_clients::ClientKind>,
) -> Vec<u8> {
    use opentime::blocks::Campaign;
    use opentime::open::TemplateInput;
    use opentime::open::{self, Opener};
    use opentime::render::{Format, Renderer};
    let renderer = Renderer::load(&repo().join("assets")).expect("assets");
    let campaign =
        Campaign::load(&repo().join("templates").join(campaign), &renderer).expect("campaign");
    let block = campaign.block(block).expect("block");
    let fields = fields.as_object().cloned().unwrap_or_default();
    let now = chrono::Utc::now();
    let input = match client {
        Some(client) => {
            let sources = opentime::sources::Sources::defaults().expect("sources");
            let opener = Opener::offline(client);
            open::from_context(
                block,
                &fields,
                Some(subscriber),
                now,
                Default::default(),
                &opener,
                &sources,
            )
        }
        None => TemplateInput::for_block(block, &fields, Some(subscriber), now, Default::default()),
    };
    opentime::open::render_block(&renderer, &campaign, block, Format::Png, 1, &input)
        .expect("render")
        .bytes
        .to_vec()
}
