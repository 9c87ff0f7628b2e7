//! Shared fixtures for the render's unit tests: a rasterizer with the shipped fonts (or with
//! Debian's Noto fonts too) and images, the text tiles a render would make of an SVG, the
//! largest and the mean pixel difference, a drawing near the exact coverage to measure texts
//! against, and a block of plain texts of many kinds. Test code only (the text tile tests sit beside the code
//! they test, in several files, and all start from these).

use super::assets::AssetImages;
use super::fonts::FontSettings;
use super::svg::Rasterizer;
use super::text_tiles::Tiled;
use resvg::tiny_skia::Pixmap;
use std::sync::Arc;

/// A rasterizer with the fonts and images in `assets/` (and no other font).
pub(crate) fn rasterizer() -> Rasterizer {
    rasterizer_with(&FontSettings::shipped_only())
}

/// A rasterizer with the fonts and images in `assets/` and the Noto fonts of Debian's packages
/// (always the same files, so what they draw is the same on every machine).
pub(crate) fn noto_rasterizer() -> Rasterizer {
    let settings = FontSettings::debian_noto();
    if let Some(missing) = settings.paths.iter().find(|path| !path.exists()) {
        panic!(
            "{} is missing: run scripts/test, which installs fonts-noto-core, fonts-noto-cjk \
             and fonts-noto-color-emoji",
            missing.display()
        );
    }
    rasterizer_with(&settings)
}

fn rasterizer_with(settings: &FontSettings) -> Rasterizer {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let fonts = super::fonts::load(&assets.join("fonts"), settings).unwrap();
    Rasterizer::new(
        fonts,
        Arc::new(AssetImages::load(&assets.join("images")).unwrap()),
    )
}

/// The largest per-channel difference between two pixmaps.
pub(crate) fn max_diff(a: &Pixmap, b: &Pixmap) -> u8 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// The mean per-channel difference between two pixmaps.
pub(crate) fn mean_diff(a: &Pixmap, b: &Pixmap) -> f64 {
    let sum: u64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.data().len() as f64
}

/// What `svg` looks like at `scale`, as near the exact coverage as a test needs: usvg drawing
/// it 8 times larger, each 8×8 square of pixels averaged into one. Texts in place (no tiles).
pub(crate) fn reference_drawing(
    rasterizer: &Rasterizer,
    svg: &str,
    width: u32,
    height: u32,
    scale: u8,
) -> Pixmap {
    const FACTOR: usize = 8;
    let large = rasterizer
        .rasterize_inner(
            svg,
            width,
            height,
            scale * FACTOR as u8,
            Arc::default(),
            false,
        )
        .unwrap();
    let (small_width, small_height) = (
        large.width() / FACTOR as u32,
        large.height() / FACTOR as u32,
    );
    let mut small = Pixmap::new(small_width, small_height).unwrap();
    let (source, stride) = (large.data(), large.width() as usize * 4);
    for (index, pixel) in small.data_mut().chunks_exact_mut(4).enumerate() {
        let (x, y) = (index % small_width as usize, index / small_width as usize);
        for (channel, value) in pixel.iter_mut().enumerate() {
            let sum: usize = (0..FACTOR * FACTOR)
                .map(|n| {
                    let (dx, dy) = (n % FACTOR, n / FACTOR);
                    let at = (y * FACTOR + dy) * stride + (x * FACTOR + dx) * 4 + channel;
                    usize::from(source[at])
                })
                .sum();
            *value = ((sum + FACTOR * FACTOR / 2) / (FACTOR * FACTOR)) as u8;
        }
    }
    small
}

/// The text tiles of `svg` at scale 1, as a render would make them (with the rasterizer's
/// kept tiles).
pub(crate) fn tile(rasterizer: &Rasterizer, svg: &str, width: u32, height: u32) -> Option<Tiled> {
    let document = roxmltree::Document::parse(svg).unwrap();
    rasterizer.tile_texts(svg, &document, width, height, 1)
}

/// Plain texts of many kinds (sizes, weights, anchors, sub-pixel positions, opacity,
/// accents, kerning pairs), with `shift` added to every `x`.
pub(crate) fn plain_texts(shift: f32) -> String {
    let texts = [
        (
            10.3,
            30.7,
            22,
            700,
            "start",
            "#111827",
            "1",
            "Hi Zoë, €1,249.00",
        ),
        (
            290.0,
            58.0,
            13,
            400,
            "end",
            "#6b7280",
            "1",
            "Qty 2 · right aligned",
        ),
        (
            150.0,
            84.0,
            15,
            700,
            "middle",
            "#4f46e5",
            "0.6",
            "AV To Wa fi ffl Ç ñ ß",
        ),
        (12.0, 112.0, 40, 400, "start", "#0f766e", "1", "Åbç 1234"),
        (
            180.4,
            108.2,
            11,
            400,
            "start",
            "#b91c1c",
            "0.8",
            "pâtisserie — « ok »",
        ),
    ];
    let mut svg = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="120" viewBox="0 0 300 120" font-family="Inter"><rect width="300" height="120" fill="#f8fafc"/>"##,
    );
    for (x, y, size, weight, anchor, fill, opacity, content) in texts {
        svg.push_str(&format!(
            r#"<text x="{}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" fill="{fill}" fill-opacity="{opacity}">{content}</text>"#,
            x + shift
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A name in each script the renderer is tested with (and a right-to-left name mixed with
/// Latin and digits), by script.
pub(crate) const SCRIPT_NAMES: [(&str, &str); 12] = [
    ("cyrillic", "Мария Иванова"),
    ("greek", "Γιώργος Παπαδόπουλος"),
    ("chinese", "张伟"),
    ("japanese", "佐藤 さくら"),
    ("korean", "김민준"),
    ("arabic", "محمد عبد الله"),
    ("hebrew", "דוד כהן"),
    ("devanagari", "प्रिया शर्मा"),
    ("thai", "สมชาย ใจดี"),
    ("emoji", "Zoë 🎉👍🏽"),
    ("mixed", "Welcome back, محمد 2024!"),
    ("latin", "Maximiliane-Charlotte"),
];

/// The bounds of the pixels whose alpha is above a quarter: left, top, right, bottom (right
/// and bottom exclusive); `None` for an empty pixmap.
pub(crate) fn ink_bounds(pixmap: &Pixmap) -> Option<(u32, u32, u32, u32)> {
    let width = pixmap.width();
    let mut bounds: Option<(u32, u32, u32, u32)> = None;
    for (i, pixel) in pixmap.pixels().iter().enumerate() {
        if pixel.alpha() < 64 {
            continue;
        }
        let (x, y) = (i as u32 % width, i as u32 / width);
        bounds = Some(match bounds {
            Some((l, t, r, b)) => (l.min(x), t.min(y), r.max(x + 1), b.max(y + 1)),
            None => (x, y, x + 1, y + 1),
        });
    }
    bounds
}

/// Pixels whose alpha is above a quarter.
pub(crate) fn ink_pixels(pixmap: &Pixmap) -> usize {
    pixmap.pixels().iter().filter(|p| p.alpha() >= 64).count()
}

/// One text on a transparent canvas: `content` at (`x`, `y`) in `size` px and `weight`.
pub(crate) fn text_svg(
    content: &str,
    (width, height): (u32, u32),
    (x, y): (f32, f32),
    size: f32,
    weight: u16,
    anchor: &str,
) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Inter"><text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" fill="#111827">{content}</text></svg>"##
    )
}
