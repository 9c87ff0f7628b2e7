//! Text tiles: each top-level `<text>` of a rendered SVG becomes a tile — its pixels, at their
//! exact place on the canvas — and the SVG gets a hidden placeholder `<image>` in its stead, so
//! the rasterizer knows where the text sat in the painting order: it draws the tiles unscaled
//! over the finished tree when nothing painted after a placeholder reaches into its tile, and
//! otherwise draws that render's texts in place (see [`super::tile_compositing`]).
//!
//! Plain texts ([`super::plain_text`]) are drawn from kept glyphs ([`super::glyph_text`]), which
//! costs a fraction of shaping and filling every outline. Other texts are drawn by usvg in
//! place the first time and as a tile once they come back (the tile is rasterized with the same
//! transform as the whole block, shifted by whole pixels only, so it matches drawing in place
//! up to a level or two of rounding). Tiles of texts that come back are kept: across a campaign
//! most texts repeat — labels, buttons, product names, prices — while a few carry the personal
//! part (a greeting, a total). Texts that could depend on anything outside their own markup
//! (`url(…)` paints, CSS, `<use>`, a viewBox that is not the plain size) are left as they are.
//!
//! This file decides which texts are tiled, writes the placeholders and keeps the tiles
//! ([`TextTiles`]); drawing one tile is [`super::tile_drawing`].

use super::image_slots::own_size;
use super::kept_bytes::{self, KeptBytes, ReuseCounts};
use super::text_runs;
use super::tile_drawing::{draw_glyph_tile, draw_tile, opening_tag, Tile, TileTools};
use quick_cache::sync::Cache;
use std::fmt::Write as _;
use std::sync::Arc;
use xxhash_rust::xxh3::Xxh3;

/// Memory for kept tiles.
const TILE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Tiles that fit in it, about (a line of text at 600 px wide is some tens of kilobytes).
const ESTIMATED_TILES: usize = 4_000;
/// Texts remembered as seen once (a key each).
const SEEN_ONCE_ENTRIES: usize = 200_000;
/// The `href` of placeholder images (hidden; it resolves to a transparent pixel so usvg keeps
/// them in the tree, in order; see [`Tiled`]).
pub(crate) const PLACEHOLDER_HREF: &str = "opentime-text-tile:";
/// The `id` prefix of placeholder images; the number after it indexes [`Tiled::tiles`].
pub(crate) const PLACEHOLDER_ID_PREFIX: &str = "opentime-text-tile-";

pub(crate) struct TextTiles {
    tiles: KeptBytes<u128, Arc<Tile>>,
    /// Texts seen once. A tile is kept only when its text comes back, so one-off texts such as
    /// totals do not push out the ones that repeat; a text that is not plain is drawn in place
    /// the first time (making its tile with usvg costs more than that).
    seen_once: Cache<u128, ()>,
    /// Texts found already drawn, and texts drawn now.
    counts: ReuseCounts,
}

impl Default for TextTiles {
    fn default() -> Self {
        Self {
            // A tile weighs its pixels and a little for the entry.
            tiles: kept_bytes::cache(ESTIMATED_TILES, TILE_CACHE_BYTES, |tile| {
                tile.pixmap.data().len() as u64 + 64
            }),
            seen_once: Cache::new(SEEN_ONCE_ENTRIES),
            counts: ReuseCounts::default(),
        }
    }
}

/// An SVG whose texts are replaced by placeholder images, and the tiles that go there: the
/// placeholder with id `{PLACEHOLDER_ID_PREFIX}{n}` stands for `tiles[n]`.
pub(crate) struct Tiled {
    pub(crate) svg: String,
    pub(crate) tiles: Vec<Arc<Tile>>,
}

impl TextTiles {
    /// How many texts were found already drawn, and how many had to be drawn, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.counts.get()
    }

    /// Bytes of the kept tiles (their pixels, as the cache weighs them).
    pub(crate) fn kept_bytes(&self) -> u64 {
        self.tiles.weight()
    }

    /// Drops every kept tile (benchmarks measure the cold case with it).
    pub(crate) fn clear(&self) {
        self.tiles.clear();
        self.seen_once.clear();
    }

    /// Replaces the eligible top-level texts of `svg` by their tiles (drawing the missing
    /// ones). `None` when nothing in this SVG can be tiled: render it as it is.
    /// `document` is `svg` parsed.
    pub(crate) fn tile(
        &self,
        tools: &TileTools<'_>,
        svg: &str,
        document: &roxmltree::Document<'_>,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Option<Tiled> {
        if svg.contains("<style")
            || svg.contains("<use")
            || !svg.contains("<text")
            || svg.contains(PLACEHOLDER_ID_PREFIX)
        {
            return None;
        }
        let root = document.root_element();
        let (root_width, root_height) = own_size(&root)?;
        let scale = u32::from(scale.max(1));
        let (pixel_width, pixel_height) = (width * scale, height * scale);
        let (sx, sy) = (
            f64::from(pixel_width) / root_width,
            f64::from(pixel_height) / root_height,
        );
        let root_tag = opening_tag(&root);
        // Glyphs are drawn unstretched: only when both axes scale alike.
        let uniform_scale = ((sx - sy).abs() < 1e-6).then_some(sx as f32);

        let mut out = String::with_capacity(svg.len());
        let mut tiles = Vec::new();
        let mut copied_to = 0;
        for text in root.children().filter(|n| n.has_tag_name("text")) {
            let range = text.range();
            let markup = &svg[range.clone()];
            if markup.contains("url(") || text.has_attribute("class") || text.has_attribute("id") {
                continue;
            }
            let key = tile_key(&root_tag, markup, pixel_width, pixel_height);
            let glyph_drawn =
                || draw_glyph_tile(tools, text, root, uniform_scale, pixel_width, pixel_height);
            let tile = if let Some(tile) = self.tiles.get(&key) {
                self.counts.reused();
                tile
            } else if let Some(tile) = glyph_drawn() {
                self.counts.made();
                let tile = Arc::new(tile);
                // Kept only once the text comes back, so one-off texts (totals, names) do not
                // push out the ones that repeat.
                if self.seen_once.contains_key(&key) {
                    self.tiles.insert(key, Arc::clone(&tile));
                } else {
                    self.seen_once.insert(key, ());
                }
                tile
            } else {
                // usvg draws it: in runs when it needs several fonts or directions.
                let rewritten = text_runs::rewrite_text(
                    tools.typesetter,
                    text,
                    root,
                    tools.default_font_size,
                    tools.default_family,
                );
                let usvg_markup = rewritten.as_deref().unwrap_or(markup);
                self.counts.made();
                if !self.seen_once.contains_key(&key) {
                    // Drawn in place this time, and as a tile if it comes back.
                    self.seen_once.insert(key, ());
                    if let Some(rewritten) = &rewritten {
                        out.push_str(&svg[copied_to..range.start]);
                        out.push_str(rewritten);
                        copied_to = range.end;
                    }
                    continue;
                }
                let Some(tile) = draw_tile(
                    &tools.options.parsing_options(),
                    &root_tag,
                    usvg_markup,
                    pixel_width,
                    pixel_height,
                ) else {
                    if let Some(rewritten) = &rewritten {
                        out.push_str(&svg[copied_to..range.start]);
                        out.push_str(rewritten);
                        copied_to = range.end;
                    }
                    continue;
                };
                let tile = Arc::new(tile);
                self.tiles.insert(key, Arc::clone(&tile));
                tile
            };
            out.push_str(&svg[copied_to..range.start]);
            let _ = write!(
                out,
                r#"<image id="{PLACEHOLDER_ID_PREFIX}{}" href="{PLACEHOLDER_HREF}" x="{}" y="{}" width="{}" height="{}" preserveAspectRatio="none" visibility="hidden"/>"#,
                tiles.len(),
                f64::from(tile.x) / sx,
                f64::from(tile.y) / sy,
                f64::from(tile.pixmap.width()) / sx,
                f64::from(tile.pixmap.height()) / sy,
            );
            copied_to = range.end;
            tiles.push(tile);
        }
        if tiles.is_empty() {
            return None;
        }
        out.push_str(&svg[copied_to..]);
        Some(Tiled { svg: out, tiles })
    }
}

fn tile_key(root_tag: &str, markup: &str, pixel_width: u32, pixel_height: u32) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(root_tag.as_bytes());
    hasher.update(&[0]);
    hasher.update(markup.as_bytes());
    hasher.update(&pixel_width.to_le_bytes());
    hasher.update(&pixel_height.to_le_bytes());
    hasher.digest128()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{max_diff, rasterizer, tile};
    use std::sync::Arc;

    #[test]
    fn texts_that_are_not_plain_are_tiled_once_they_come_back() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="120" viewBox="0 0 300 120" font-family="Inter">
            <rect width="300" height="120" fill="#f8fafc"/>
            <text x="40" y="100" font-size="15" fill="#4f46e5" fill-opacity="0.6" transform="rotate(-8 40 100)">tilted</text>
            <text x="150" y="40" font-size="14" fill="#111827" letter-spacing="1.5">spaced out</text>
        </svg>"##;
        let rasterizer = rasterizer();
        for scale in [1, 2] {
            let in_place = rasterizer
                .rasterize_inner(svg, 300, 120, scale, Arc::default(), false)
                .unwrap();
            let render = || {
                rasterizer
                    .rasterize_inner(svg, 300, 120, scale, Arc::default(), true)
                    .unwrap()
            };
            // Seen once: drawn in place. Seen again: tiled. Then drawn from the kept tiles.
            let (once, tiled, kept) = (render(), render(), render());
            assert_eq!(max_diff(&once, &in_place), 0, "scale {scale}: seen once");
            let off = max_diff(&in_place, &tiled);
            assert!(off <= 2, "scale {scale}: tiles {off} levels off");
            assert_eq!(max_diff(&tiled, &kept), 0, "scale {scale}: kept tiles");
        }
        let tiled = tile(&rasterizer, svg, 300, 120).unwrap();
        assert_eq!(tiled.tiles.len(), 2);
        assert!(!tiled.svg.contains("<text"));
    }

    #[test]
    fn texts_that_depend_on_more_than_their_markup_are_left_alone() {
        let rasterizer = rasterizer();
        let gradient = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40"><defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs><text x="5" y="20" fill="url(#g)">x</text></svg>"##;
        assert!(tile(&rasterizer, gradient, 100, 40).is_none());
        let styled = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40"><style>text{fill:red}</style><text x="5" y="20">x</text></svg>"##;
        assert!(tile(&rasterizer, styled, 100, 40).is_none());
        let view_box = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" viewBox="0 0 50 20"><text x="5" y="20">x</text></svg>"##;
        assert!(tile(&rasterizer, view_box, 100, 40).is_none());
    }
}
