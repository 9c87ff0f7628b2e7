//! Glyph coverage, kept: each glyph is filled once per pixel size and sub-pixel position and its
//! anti-aliased coverage is reused by every later text that puts the same glyph there.
//!
//! A glyph's pen position is rounded to a sixteenth of a pixel on both axes ([`STEPS`]), so a
//! kept glyph lands at most 1/32 px from where a direct fill would put it. [`super::glyph_fill`]
//! fills the outline.

use super::kept_bytes::{self, KeptBytes};
use std::sync::Arc;

/// Sub-pixel positions per pixel, on each axis.
pub(super) const STEPS: u8 = 16;
/// Memory for kept coverage.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// A glyph at 22 px weighs about 300 bytes.
const TYPICAL_GLYPH_BYTES: u64 = 300;

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
    pub(super) fn empty() -> Self {
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
    kept: KeptBytes<GlyphKey, Arc<Coverage>>,
}

impl Default for GlyphCoverage {
    fn default() -> Self {
        Self {
            kept: kept_bytes::cache(
                (CACHE_BYTES / TYPICAL_GLYPH_BYTES) as usize,
                CACHE_BYTES,
                // Its bytes and a little for the entry.
                |coverage| coverage.alpha.len() as u64 + 48,
            ),
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
        self.kept.weight()
    }

    /// Forgets every kept glyph (benchmarks measure the cold case with it).
    pub(super) fn clear(&self) {
        self.kept.clear();
    }
}
