//! Glyph coverage, kept: each glyph is filled once per pixel size and sub-pixel position and its
//! anti-aliased coverage is reused by every later text that puts the same glyph there.
//!
//! A glyph's pen position is rounded to a sixteenth of a pixel on both axes ([`STEPS`]), so a
//! kept glyph lands at most 1/32 px from where a direct fill would put it. The outline is read
//! and filled exactly as usvg and resvg do it (unhinted, in font units, flipped and scaled;
//! tiny-skia's anti-aliased non-zero fill), so what differs is only that sub-pixel rounding.

use moka::sync::Cache;
use resvg::tiny_skia::{FillRule, Mask, Path, PathBuilder, Rect, Transform};
use skrifa::instance::{LocationRef, Size};
use skrifa::outline::{DrawSettings, OutlineGlyphCollection, OutlinePen};
use std::sync::Arc;

/// Sub-pixel positions per pixel, on each axis.
pub(super) const STEPS: u8 = 16;
/// Memory for kept coverage (a glyph at 22 px is about 300 bytes).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// One glyph at one size and sub-pixel position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct GlyphKey {
    /// The face's index in the renderer's face list.
    pub face: u16,
    pub glyph: u32,
    /// Pixels per em, as `f32` bits.
    pub pixels_per_em: u32,
    /// Sub-pixel offset of the pen, in [`STEPS`]ths of a pixel.
    pub step_x: u8,
    pub step_y: u8,
}

/// A glyph's coverage, placed relative to the whole-pixel pen position.
#[derive(Debug)]
pub(super) struct Coverage {
    pub left: i32,
    pub top: i32,
    pub width: u32,
    pub height: u32,
    /// `width × height` coverage values, row by row.
    pub alpha: Vec<u8>,
}

impl Coverage {
    fn empty() -> Self {
        Self {
            left: 0,
            top: 0,
            width: 0,
            height: 0,
            alpha: Vec::new(),
        }
    }
}

pub(super) struct GlyphCoverage {
    kept: Cache<GlyphKey, Arc<Coverage>>,
}

impl Default for GlyphCoverage {
    fn default() -> Self {
        Self {
            kept: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, coverage: &Arc<Coverage>| {
                    u32::try_from(coverage.alpha.len() + 48).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

impl GlyphCoverage {
    /// The coverage of `key`'s glyph, filled by `fill` if it is not kept yet.
    pub(super) fn get(
        &self,
        key: GlyphKey,
        fill: impl FnOnce() -> Option<Coverage>,
    ) -> Arc<Coverage> {
        if let Some(kept) = self.kept.get(&key) {
            return kept;
        }
        let coverage = Arc::new(fill().unwrap_or_else(Coverage::empty));
        self.kept.insert(key, Arc::clone(&coverage));
        coverage
    }

    /// Bytes of the kept glyph coverages, as the cache weighs them.
    pub(super) fn kept_bytes(&self) -> u64 {
        self.kept.run_pending_tasks();
        self.kept.weighted_size()
    }

    /// Forgets every kept glyph (benchmarks measure the cold case with it).
    pub(super) fn clear(&self) {
        self.kept.invalidate_all();
        self.kept.run_pending_tasks();
    }
}

/// Fills one glyph's outline (from the font's `outlines`, whose units per em are
/// `units_per_em`) at its size and sub-pixel offset. `None` for glyphs without an outline (a
/// space).
pub(super) fn fill(
    key: GlyphKey,
    outlines: &OutlineGlyphCollection<'_>,
    units_per_em: f32,
) -> Option<Coverage> {
    let outline = outlines.get(key.glyph.into())?;
    let mut pen = PathPen::default();
    outline
        .draw(
            DrawSettings::unhinted(Size::unscaled(), LocationRef::default()),
            &mut pen,
        )
        .ok()?;
    let path: Path = pen.0.finish()?;
    let scale = f32::from_bits(key.pixels_per_em) / units_per_em;
    let step = 1.0 / f32::from(STEPS);
    // Font outlines point up; pixels count down.
    let placed = Transform::from_row(
        scale,
        0.0,
        0.0,
        -scale,
        f32::from(key.step_x) * step,
        f32::from(key.step_y) * step,
    );
    let bounds = path.clone().transform(placed)?.bounds();
    let (left, top) = (bounds.left().floor() - 1.0, bounds.top().floor() - 1.0);
    let (right, bottom) = (bounds.right().ceil() + 1.0, bounds.bottom().ceil() + 1.0);
    Rect::from_ltrb(left, top, right, bottom)?;
    let (width, height) = ((right - left) as u32, (bottom - top) as u32);
    let mut mask = Mask::new(width, height)?;
    mask.fill_path(
        &path,
        FillRule::Winding,
        true,
        placed.post_translate(-left, -top),
    );
    Some(Coverage {
        left: left as i32,
        top: top as i32,
        width,
        height,
        alpha: mask.data().to_vec(),
    })
}

/// Collects an outline into a tiny-skia path, in font units.
#[derive(Default)]
struct PathPen(PathBuilder);

impl OutlinePen for PathPen {
    fn move_to(&mut self, x: f32, y: f32) {
        self.0.move_to(x, y);
    }

    fn line_to(&mut self, x: f32, y: f32) {
        self.0.line_to(x, y);
    }

    fn quad_to(&mut self, cx0: f32, cy0: f32, x: f32, y: f32) {
        self.0.quad_to(cx0, cy0, x, y);
    }

    fn curve_to(&mut self, cx0: f32, cy0: f32, cx1: f32, cy1: f32, x: f32, y: f32) {
        self.0.cubic_to(cx0, cy0, cx1, cy1, x, y);
    }

    fn close(&mut self) {
        self.0.close();
    }
}
