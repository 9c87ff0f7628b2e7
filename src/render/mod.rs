//! Pixels and bytes: SVG in, PNG out. [`svg`] rasterizes with resvg using the fonts
//! ([`fonts`]: shipped, the operator's, the system's; [`font_fallback`] picks one per character)
//! and images ([`assets`]) and the photos an open fetched ([`image_slots`]); texts in any script
//! are laid out in one place ([`text_layout`]), drawn from kept glyphs where they can be
//! ([`text_tiles`], [`plain_text`], [`glyph_text`], [`glyph_coverage`]) and handed to usvg in
//! runs otherwise ([`text_runs`]); pictures that fill their slot exactly skip usvg's clip
//! ([`exact_slices`]); the templates' text functions measure with the same layout
//! ([`text_fit`]); [`png`] encodes, reusing the rows deflated by earlier renders
//! ([`png_bands`]); [`fallback`] prepares a block's fallback image.
//!
//! Everything here is synchronous, CPU-bound and knows nothing of blocks, subscribers or
//! requests: which template is filled in with what is decided by `crate::open`.

mod assets;
mod exact_slices;
pub(crate) mod fallback;
mod font_fallback;
mod fonts;
mod glyph_coverage;
mod glyph_fill;
mod glyph_text;
mod image_limits;
pub(crate) mod image_slots;
mod kept_bytes;
mod missing_characters;
mod plain_text;
pub(crate) mod png;
mod png_bands;
pub(crate) mod svg;
#[cfg(test)]
mod testkit;
pub(crate) mod text_fit;
pub(crate) mod text_layout;
mod text_overflow;
mod text_runs;
mod text_tiles;
mod tile_compositing;
mod tile_drawing;

pub use assets::AssetImages;
pub use fallback::{Fallback, TRANSPARENT_GIF};
pub use fonts::FontSettings;
pub use image_slots::FetchedImages;
pub use png::{transparent_pixel_png, transparent_png, PngMode, PALETTE_MAX_ERROR};
pub use text_overflow::TextOverflow;

use bytes::Bytes;
use resvg::tiny_skia::Pixmap;
use std::path::Path;
use std::sync::Arc;

/// Characters as `U+0416 Ж, U+0430 а`, at most `shown` of them (then how many more).
pub fn name_characters(characters: &[char], shown: usize) -> String {
    let mut named: Vec<String> = characters
        .iter()
        .take(shown)
        .map(|c| format!("U+{:04X} {c}", u32::from(*c)))
        .collect();
    if characters.len() > shown {
        named.push(format!("and {} more", characters.len() - shown));
    }
    named.join(", ")
}

/// Largest accepted `scale` (retina is 2).
pub const MAX_SCALE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("svg-error: {0}")]
    Svg(String),
    #[error("encode-error: {0}")]
    Encode(String),
    #[error("assets: {0}")]
    Assets(String),
}

impl RenderError {
    /// The short reason used in fallback headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Svg(_) => "svg-error",
            RenderError::Encode(_) => "encode-error",
            RenderError::Assets(_) => "assets-error",
        }
    }
}

/// The output formats a block can be served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Gif,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Html => "html",
        }
    }
}

/// A finished answer body.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// Holds what every render shares: fonts, shipped images and the PNG rows earlier renders
/// deflated. Cheap to share behind an `Arc`.
pub struct Renderer {
    rasterizer: svg::Rasterizer,
    png_bands: png_bands::KeptBands,
}

impl Renderer {
    /// Loads fonts from `assets/fonts` and the system's, and images from `assets/images`.
    pub fn load(assets_dir: &Path) -> Result<Self, RenderError> {
        Self::load_with(assets_dir, &FontSettings::default())
    }

    /// Loads fonts from `assets/fonts` and those `fonts` names, and images from
    /// `assets/images`.
    pub fn load_with(assets_dir: &Path, fonts: &FontSettings) -> Result<Self, RenderError> {
        let fonts = fonts::load(&assets_dir.join("fonts"), fonts)?;
        let images = AssetImages::load(&assets_dir.join("images"))?;
        Ok(Self {
            rasterizer: svg::Rasterizer::new(fonts, Arc::new(images)),
            png_bands: png_bands::KeptBands::default(),
        })
    }

    pub fn rasterizer(&self) -> &svg::Rasterizer {
        &self.rasterizer
    }

    /// The text layout the renderer draws with (for the templates' text functions).
    pub(crate) fn typesetter(&self) -> &Arc<text_layout::Typesetter> {
        self.rasterizer.typesetter()
    }

    /// Characters drawn as a missing-glyph box because no font has them, so far (each
    /// occurrence in a checked SVG counts once; see `blocks`).
    pub fn missing_characters(&self) -> prometheus_client::metrics::counter::Counter {
        self.typesetter().missing_counter().clone()
    }

    /// The texts of `svg` that run outside its canvas, laid out as a render lays them out.
    pub fn text_overflows(&self, svg: &str) -> Result<Vec<TextOverflow>, RenderError> {
        Ok(text_overflow::find(&self.rasterizer.parse(svg)?))
    }

    /// An SVG rasterized at `scale` (with the photos fetched for it) and encoded as PNG in
    /// `mode`.
    pub fn svg_to_png(
        &self,
        svg: &str,
        (width, height): (u32, u32),
        scale: u8,
        fetched: Arc<FetchedImages>,
        mode: PngMode,
    ) -> Result<Bytes, RenderError> {
        let pixmap = self
            .rasterizer
            .rasterize_with(svg, width, height, scale, fetched)?;
        Ok(Bytes::from(png::encode_as(
            &pixmap,
            mode,
            Some(&self.png_bands),
        )?))
    }

    /// A pixmap as PNG bytes in `mode` (what [`Renderer::svg_to_png`] writes, with nothing
    /// kept from earlier renders).
    pub fn encode_png(pixmap: &Pixmap, mode: PngMode) -> Result<Vec<u8>, RenderError> {
        png::encode_as(pixmap, mode, None)
    }

    /// Bytes of PNG rows kept deflated for later renders (capped).
    pub fn kept_png_bytes(&self) -> u64 {
        self.png_bands.weighed_bytes()
    }

    /// Bands of PNG rows reused from earlier renders and bands deflated anew, so far.
    pub fn png_band_counts(&self) -> (u64, u64) {
        self.png_bands.counts()
    }

    /// Forgets everything kept from earlier renders (texts, glyphs, deflated rows), so the
    /// next render does all its work again.
    pub fn forget_kept(&self) {
        self.rasterizer.forget_text_tiles();
        self.png_bands.clear();
    }

    /// Prepares a block's fallback: an image file (SVG is rasterized at 1× and 2×; PNG and GIF
    /// are served as they are), or a transparent image of the block's size when none is given.
    pub fn fallback(
        &self,
        image: Option<(&str, Vec<u8>)>,
        width: u32,
        height: u32,
        html: String,
    ) -> Result<Fallback, RenderError> {
        fallback::prepare(&self.rasterizer, image, width, height, html)
    }
}
