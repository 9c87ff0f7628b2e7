//! Drawing one text's tile: a plain text from kept glyphs ([`draw_glyph_tile`]), any other
//! text alone with usvg, exactly where the whole block would put it ([`draw_tile`]). Which
//! texts get a tile, and which tiles are kept, is decided in [`super::text_tiles`]; putting
//! the tiles on the canvas is [`super::tile_compositing`].
//!
//! A tile is drawn with what the rasterizer lends it ([`TileTools`], its parsing options
//! behind [`ParsingOptions`]), so this module needs nothing from `svg.rs`.

use super::glyph_text::GlyphText;
use super::plain_text;
use super::text_layout::Typesetter;
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg;
use std::fmt::Write as _;

/// One text's pixels (premultiplied) and where they go, in output pixels.
pub(crate) struct Tile {
    pub(crate) pixmap: Pixmap,
    pub(crate) x: i32,
    pub(crate) y: i32,
}

/// Makes the usvg parsing options a tile is drawn with (the rasterizer's own).
pub(crate) trait ParsingOptions {
    fn parsing_options(&self) -> usvg::Options<'_>;
}

/// What drawing a tile takes from the rasterizer: its parsing options (fonts), the kept-glyph
/// drawer, the layout of texts usvg gets in runs, and the default font size and family.
pub(crate) struct TileTools<'a> {
    /// The parsing options, made only when a tile is drawn (a kept tile needs none).
    pub(crate) options: &'a dyn ParsingOptions,
    pub(crate) glyph_text: &'a GlyphText,
    pub(crate) typesetter: &'a Typesetter,
    pub(crate) default_font_size: f32,
    pub(crate) default_family: &'a str,
}

/// `text` (a child of `root`) drawn from kept glyphs, when it is a plain text and both axes
/// scale alike (`uniform_scale`: glyphs are drawn unstretched); `None` otherwise.
pub(crate) fn draw_glyph_tile(
    tools: &TileTools<'_>,
    text: roxmltree::Node<'_, '_>,
    root: roxmltree::Node<'_, '_>,
    uniform_scale: Option<f32>,
    pixel_width: u32,
    pixel_height: u32,
) -> Option<Tile> {
    let plain = plain_text::read(text, root, tools.default_font_size)?;
    let drawn = tools
        .glyph_text
        .draw(&plain, uniform_scale?, pixel_width, pixel_height)?;
    Some(Tile {
        pixmap: drawn.pixmap,
        x: drawn.x,
        y: drawn.y,
    })
}

/// The root element's start tag, rebuilt from its attributes (namespaces included).
pub(crate) fn opening_tag(root: &roxmltree::Node<'_, '_>) -> String {
    let mut tag = String::from(r#"<svg xmlns="http://www.w3.org/2000/svg""#);
    for attribute in root.attributes() {
        if attribute.namespace().is_some() {
            continue;
        }
        let value = attribute
            .value()
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;");
        let _ = write!(tag, r#" {}="{}""#, attribute.name(), value);
    }
    tag.push('>');
    tag
}

/// Rasterizes one text alone, exactly where the whole block would put it, cropped to its
/// pixels (with a pixel of margin).
pub(crate) fn draw_tile(
    options: &usvg::Options<'_>,
    root_tag: &str,
    markup: &str,
    pixel_width: u32,
    pixel_height: u32,
) -> Option<Tile> {
    let mini = format!("{root_tag}{markup}</svg>");
    let tree = usvg::Tree::from_str(&mini, options).ok()?;
    let size = tree.size();
    let (sx, sy) = (
        pixel_width as f32 / size.width(),
        pixel_height as f32 / size.height(),
    );
    if !tree.root().has_children() {
        return None;
    }
    let bounds = tree.root().abs_stroke_bounding_box();
    let x0 = ((bounds.left() * sx).floor() as i32 - 1).max(0);
    let y0 = ((bounds.top() * sy).floor() as i32 - 1).max(0);
    let x1 = ((bounds.right() * sx).ceil() as i32 + 1).min(pixel_width as i32);
    let y1 = ((bounds.bottom() * sy).ceil() as i32 + 1).min(pixel_height as i32);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let mut pixmap = Pixmap::new((x1 - x0) as u32, (y1 - y0) as u32)?;
    let transform = Transform::from_scale(sx, sy).post_translate(-(x0 as f32), -(y0 as f32));
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    Some(Tile {
        pixmap,
        x: x0,
        y: y0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        max_diff, mean_diff, plain_texts, rasterizer, reference_drawing, tile,
    };
    use resvg::tiny_skia::Pixmap;
    use std::sync::Arc;

    /// Per-channel differences: the largest, and the mean.
    fn difference(a: &Pixmap, b: &Pixmap) -> (u8, f64) {
        (max_diff(a, b), mean_diff(a, b))
    }

    /// Kept glyphs are filled by adding up exact areas, usvg's by sampling each pixel a few
    /// times, so the two differ a little at every edge. The yardstick is the coverage both
    /// approximate: usvg drawing the texts 8 times larger, each 8×8 square averaged into one
    /// pixel. Kept glyphs must come at least as close to it as usvg's own drawing does, and
    /// much closer than usvg drawing every text a quarter pixel off.
    #[test]
    fn texts_drawn_from_kept_glyphs_look_like_usvg_drawing_them() {
        let rasterizer = rasterizer();
        let svg = plain_texts(0.0);
        let tiled = tile(&rasterizer, &svg, 300, 120).unwrap();
        assert_eq!(
            tiled.tiles.len(),
            5,
            "every text is drawn from glyphs at first sight"
        );
        for scale in [1, 2] {
            let drawn = |svg: &str, scale: u8, use_text_tiles: bool| {
                rasterizer
                    .rasterize_inner(svg, 300, 120, scale, Arc::default(), use_text_tiles)
                    .unwrap()
            };
            let reference = reference_drawing(&rasterizer, &svg, 300, 120, scale);
            let (usvg_max, usvg_mean) = difference(&drawn(&svg, scale, false), &reference);
            let (glyph_max, glyph_mean) = difference(&drawn(&svg, scale, true), &reference);
            let shifted = drawn(&plain_texts(0.25 / f32::from(scale)), scale, false);
            let (_, shifted_mean) = difference(&shifted, &reference);
            assert!(
                glyph_mean <= usvg_mean,
                "scale {scale}: mean error {glyph_mean:.4}, usvg's {usvg_mean:.4}"
            );
            assert!(
                glyph_max <= usvg_max.max(32),
                "scale {scale}: {glyph_max} levels off, usvg {usvg_max}"
            );
            assert!(
                glyph_mean < shifted_mean / 4.0,
                "scale {scale}: mean error {glyph_mean:.4}, a quarter-pixel shift gives {shifted_mean:.4}"
            );
        }
    }
}
