//! SVG → pixels with usvg/resvg, using only the shipped fonts and images.
//!
//! Image references resolve to `asset:NAME` (shipped images), `data:` URLs (bounded and
//! re-encoded, never SVG: [`super::image_limits`]), and http(s) URLs
//! only when they were fetched beforehand for this render ([`FetchedImages`], see
//! [`super::image_slots`]): a template (or a context value inside one) can never make the
//! renderer read a local file or open a connection.
//!
//! Top-level texts are drawn as text tiles where they can be: [`super::text_tiles`] decides
//! which and keeps them, [`super::tile_drawing`] draws one, and [`super::tile_compositing`]
//! puts them over the finished tree; this file only wires them into a render. Texts usvg draws
//! itself get its font resolver from [`FontChoice`] (the fallback chain), and plain texts that
//! need several fonts or directions reach it in positioned runs ([`super::text_runs`]).

use super::assets::AssetImages;
use super::exact_slices::unclip_exact_slices;
use super::font_fallback::FontChoice;
use super::fonts::{Fonts, DEFAULT_FAMILY};
use super::glyph_text::GlyphText;
use super::image_limits;
use super::image_slots::{self, FetchedImages};
use super::text_layout::Typesetter;
use super::text_runs;
#[cfg(test)]
use super::text_tiles::Tiled;
use super::text_tiles::{TextTiles, PLACEHOLDER_HREF};
use super::tile_compositing::{draw_tile_over, tiles_stay_on_top};
use super::tile_drawing::{ParsingOptions, TileTools};
use super::RenderError;
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb, ImageHrefResolver, ImageKind};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Rasterizes SVG text; holds the shared font database and shipped images.
pub struct Rasterizer {
    fonts: Arc<fontdb::Database>,
    /// Which face draws which character (usvg's font resolver too).
    choice: Arc<FontChoice>,
    /// Lays out plain texts (for kept glyphs, runs handed to usvg and the text functions).
    typesetter: Arc<Typesetter>,
    images: Arc<AssetImages>,
    /// Texts already drawn, reused by later renders (see `text_tiles`).
    text_tiles: TextTiles,
    /// Plain texts drawn from kept glyphs (see `glyph_text`).
    glyph_text: GlyphText,
    /// The font size of texts that set none.
    default_font_size: f32,
    /// What text tile placeholders resolve to (a transparent pixel; the tile is drawn instead).
    placeholder_png: Arc<Vec<u8>>,
}

/// Guesses an image's kind from its first bytes.
pub(crate) fn image_kind(bytes: Arc<Vec<u8>>) -> Option<ImageKind> {
    match bytes.as_slice() {
        [0x89, b'P', b'N', b'G', ..] => Some(ImageKind::PNG(bytes)),
        [0xFF, 0xD8, 0xFF, ..] => Some(ImageKind::JPEG(bytes)),
        [b'G', b'I', b'F', b'8', ..] => Some(ImageKind::GIF(bytes)),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => {
            Some(ImageKind::WEBP(bytes))
        }
        _ => None,
    }
}

impl Rasterizer {
    pub(crate) fn new(fonts: Fonts, images: Arc<AssetImages>) -> Self {
        let choice = Arc::new(FontChoice::new(Arc::clone(&fonts.database), fonts.chain));
        let typesetter = Arc::new(Typesetter::new(Arc::clone(&choice)));
        Self {
            glyph_text: GlyphText::new(Arc::clone(&typesetter), DEFAULT_FAMILY),
            default_font_size: usvg::Options::default().font_size,
            placeholder_png: Arc::new(super::png::transparent_pixel_png().to_vec()),
            fonts: fonts.database,
            choice,
            typesetter,
            images,
            text_tiles: TextTiles::default(),
        }
    }

    pub(crate) fn typesetter(&self) -> &Arc<Typesetter> {
        &self.typesetter
    }

    /// How many font faces are loaded, and the fallback chain's first families.
    pub fn font_summary(&self) -> (usize, Vec<String>) {
        (
            self.fonts.len(),
            self.choice.chain().take(8).map(str::to_owned).collect(),
        )
    }

    pub fn glyph_text(&self) -> &GlyphText {
        &self.glyph_text
    }

    pub fn default_font_size(&self) -> f32 {
        self.default_font_size
    }

    /// Texts reused from earlier renders and texts drawn anew, so far.
    pub fn text_tile_counts(&self) -> (u64, u64) {
        self.text_tiles.counts()
    }

    /// Bytes held by the kept text tiles and by the kept glyphs (each cache has a fixed cap).
    pub fn kept_text_bytes(&self) -> (u64, u64) {
        (self.text_tiles.kept_bytes(), self.glyph_text.kept_bytes())
    }

    /// Forgets the kept text tiles and glyphs, so the next render draws every text again.
    pub fn forget_text_tiles(&self) {
        self.text_tiles.clear();
        self.glyph_text.clear();
    }

    /// What drawing a text tile takes from the rasterizer.
    fn tile_tools(&self) -> TileTools<'_> {
        TileTools {
            options: self,
            glyph_text: &self.glyph_text,
            typesetter: &self.typesetter,
            default_font_size: self.default_font_size,
            default_family: DEFAULT_FAMILY,
        }
    }

    pub fn fonts(&self) -> &Arc<fontdb::Database> {
        &self.fonts
    }

    /// Parsing options: shipped fonts, and an image resolver that knows `asset:` names only.
    pub fn options(&self) -> usvg::Options<'_> {
        self.options_with(Arc::default())
    }

    /// Parsing options whose image resolver also knows the remote images fetched for one
    /// render (an http(s) `href` missing from `fetched` draws nothing).
    pub fn options_with(&self, fetched: Arc<FetchedImages>) -> usvg::Options<'_> {
        self.options_for(fetched, HashMap::new())
    }

    /// Parsing options with the remote images fetched for one render and the shipped images
    /// already resized to their slots (by `href`); other `asset:` names resolve at full size.
    fn options_for(
        &self,
        fetched: Arc<FetchedImages>,
        sized: HashMap<String, Arc<Vec<u8>>>,
    ) -> usvg::Options<'_> {
        let images = &self.images;
        usvg::Options {
            fontdb: Arc::clone(&self.fonts),
            font_resolver: self.choice.resolver(),
            font_family: DEFAULT_FAMILY.to_owned(),
            resources_dir: None,
            image_href_resolver: ImageHrefResolver {
                // Bounded, re-encoded, never SVG (see `image_limits`).
                resolve_data: image_limits::data_resolver(),
                resolve_string: Box::new(move |href: &str, _: &usvg::Options| {
                    if let Some(resized) = sized.get(href) {
                        return image_kind(Arc::clone(resized));
                    }
                    match href.strip_prefix("asset:") {
                        Some(name) => image_kind(Arc::clone(images.get(name)?)),
                        None => image_kind(Arc::clone(fetched.get(href.trim())?)),
                    }
                }),
            },
            ..usvg::Options::default()
        }
    }

    /// Parses `svg` into a tree (plain texts that need several fonts or directions in runs).
    pub fn parse(&self, svg: &str) -> Result<usvg::Tree, RenderError> {
        let document = needs_runs(svg)
            .then(|| roxmltree::Document::parse(svg).ok())
            .flatten();
        let svg = self.with_runs(svg, document.as_ref());
        usvg::Tree::from_str(&svg, &self.options()).map_err(|e| RenderError::Svg(e.to_string()))
    }

    /// `svg` with its plain texts that need several fonts or directions rewritten into runs
    /// (`document` is `svg` parsed, when it had to be).
    fn with_runs<'s>(
        &self,
        svg: &'s str,
        document: Option<&roxmltree::Document<'_>>,
    ) -> Cow<'s, str> {
        document
            .and_then(|document| {
                text_runs::rewrite_svg(
                    &self.typesetter,
                    svg,
                    document,
                    self.default_font_size,
                    DEFAULT_FAMILY,
                )
            })
            .map_or(Cow::Borrowed(svg), Cow::Owned)
    }

    /// Renders `svg` into a pixmap of `width`×`height` times `scale`, stretching the SVG's own
    /// size to fit.
    pub fn rasterize(
        &self,
        svg: &str,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Result<Pixmap, RenderError> {
        self.rasterize_with(svg, width, height, scale, Arc::default())
    }

    /// [`Rasterizer::rasterize`] with the remote images fetched for this render.
    pub fn rasterize_with(
        &self,
        svg: &str,
        width: u32,
        height: u32,
        scale: u8,
        fetched: Arc<FetchedImages>,
    ) -> Result<Pixmap, RenderError> {
        self.rasterize_inner(svg, width, height, scale, fetched, true)
    }

    /// Rasterizes with or without text tiles (the tests compare the two).
    pub(super) fn rasterize_inner(
        &self,
        svg: &str,
        width: u32,
        height: u32,
        scale: u8,
        fetched: Arc<FetchedImages>,
        use_text_tiles: bool,
    ) -> Result<Pixmap, RenderError> {
        // One XML parse serves the image slots, the text tiles and the runs of texts in any
        // script.
        let wants_tiles = use_text_tiles && svg.contains("<text");
        let document =
            (svg.contains("asset:") || wants_tiles || needs_runs(svg) || svg.contains("slice"))
                .then(|| roxmltree::Document::parse(svg).ok())
                .flatten();
        let mut sized: HashMap<String, Arc<Vec<u8>>> = match &document {
            Some(document) => image_slots::asset_slots(document, width, scale)
                .into_iter()
                .filter_map(|slot| {
                    let name = slot.href.strip_prefix("asset:")?;
                    let resized = self.images.sized(name, slot.width, slot.height, slot.fit)?;
                    Some((slot.href, resized))
                })
                .collect(),
            None => HashMap::new(),
        };
        // Same length as `svg`, so `document`'s byte ranges hold for it too.
        let svg = match &document {
            Some(document) => {
                let pixels = u32::from(scale.max(1));
                unclip_exact_slices(svg, document, width * pixels, height * pixels, |href| {
                    let bytes = sized.get(href).or_else(|| fetched.get(href))?;
                    picture_size(bytes)
                })
            }
            None => Cow::Borrowed(svg),
        };
        let svg = svg.as_ref();
        let tiled = document
            .as_ref()
            .filter(|_| wants_tiles)
            .and_then(|document| {
                self.text_tiles
                    .tile(&self.tile_tools(), svg, document, width, height, scale)
            });
        if tiled.is_some() {
            sized.insert(
                PLACEHOLDER_HREF.to_owned(),
                Arc::clone(&self.placeholder_png),
            );
        }
        let options = self.options_for(fetched, sized);
        let parse = |svg: &str| {
            usvg::Tree::from_str(svg, &options).map_err(|e| RenderError::Svg(e.to_string()))
        };
        let in_place = || self.with_runs(svg, document.as_ref());
        let Some(tiled) = tiled else {
            return self.render_tree(&parse(&in_place())?, width, height, scale);
        };
        let tree = parse(&tiled.svg)?;
        let (mut pixmap, transform) = self.canvas(&tree, width, height, scale)?;
        if !tiles_stay_on_top(&tree, &tiled.tiles, transform) {
            // Something is painted over a text: draw the texts in place instead.
            return self.render_tree(&parse(&in_place())?, width, height, scale);
        }
        resvg::render(&tree, transform, &mut pixmap.as_mut());
        for tile in &tiled.tiles {
            draw_tile_over(&mut pixmap, tile);
        }
        Ok(pixmap)
    }

    /// An empty pixmap for `tree` at `width`×`height` times `scale`, and the transform that
    /// stretches the SVG's own size onto it.
    fn canvas(
        &self,
        tree: &usvg::Tree,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Result<(Pixmap, Transform), RenderError> {
        let scale = u32::from(scale.max(1));
        let (pixel_width, pixel_height) = (width * scale, height * scale);
        let pixmap = Pixmap::new(pixel_width, pixel_height).ok_or_else(|| {
            RenderError::Svg(format!("cannot allocate {pixel_width}×{pixel_height}"))
        })?;
        Ok((pixmap, fit(tree, pixel_width, pixel_height)))
    }

    /// Renders a parsed tree; see [`Rasterizer::rasterize`].
    pub fn render_tree(
        &self,
        tree: &usvg::Tree,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Result<Pixmap, RenderError> {
        let (mut pixmap, transform) = self.canvas(tree, width, height, scale)?;
        resvg::render(tree, transform, &mut pixmap.as_mut());
        Ok(pixmap)
    }
}

impl ParsingOptions for Rasterizer {
    fn parsing_options(&self) -> usvg::Options<'_> {
        self.options()
    }
}

/// The pixel size of an encoded picture, read from its header.
fn picture_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Whether `svg` may hold a text usvg should get in runs (anything beyond ASCII).
fn needs_runs(svg: &str) -> bool {
    svg.contains("<text") && (!svg.is_ascii() || svg.contains("&#"))
}

/// The transform that stretches `tree`'s own size onto `pixel_width`×`pixel_height` pixels
/// (every render's; countdown frames use it too, so they draw exactly like the rest).
pub(crate) fn fit(tree: &usvg::Tree, pixel_width: u32, pixel_height: u32) -> Transform {
    let size = tree.size();
    Transform::from_scale(
        pixel_width as f32 / size.width(),
        pixel_height as f32 / size.height(),
    )
}

/// `tree` drawn with `transform` onto a new transparent `pixel_width`×`pixel_height` pixmap;
/// `None` when that size cannot be allocated. For callers that keep the parsed tree (a
/// countdown's frames reuse it to redraw only their changing texts).
pub(crate) fn draw(
    tree: &usvg::Tree,
    transform: Transform,
    pixel_width: u32,
    pixel_height: u32,
) -> Option<Pixmap> {
    let mut pixmap = Pixmap::new(pixel_width, pixel_height)?;
    resvg::render(tree, transform, &mut pixmap.as_mut());
    Some(pixmap)
}

#[cfg(test)]
impl Rasterizer {
    /// The text tiles of `svg` as a render at `scale` would make them, with this rasterizer's
    /// kept tiles (`document` is `svg` parsed); for the text tile tests (`testkit::tile`).
    pub(super) fn tile_texts(
        &self,
        svg: &str,
        document: &roxmltree::Document<'_>,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Option<Tiled> {
        self.text_tiles
            .tile(&self.tile_tools(), svg, document, width, height, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_image_kinds() {
        let png = Arc::new(b"\x89PNG\r\n\x1a\nrest".to_vec());
        assert!(matches!(image_kind(png), Some(ImageKind::PNG(_))));
        assert!(matches!(
            image_kind(Arc::new(b"GIF89a".to_vec())),
            Some(ImageKind::GIF(_))
        ));
        assert!(image_kind(Arc::new(b"<svg".to_vec())).is_none());
    }

    #[test]
    fn a_photo_filling_its_slot_draws_the_pixels_of_its_clip() {
        let rasterizer = crate::render::testkit::rasterizer();
        let url = "https://cdn.test/photo.png";
        let svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="60" viewBox="0 0 100 60"><rect x="0.5" y="0.5" width="99" height="59" rx="9" fill="#f3f4f6" stroke="#e5e7eb"/><image href="{url}" x="10" y="7" width="44" height="40" preserveAspectRatio="xMidYMid slice"/></svg>"##
        );
        for scale in [1u8, 2] {
            let side = |units: u32| units * u32::from(scale);
            // Opaque and translucent pixels, as a product photo on a clear background has.
            let picture = image::RgbaImage::from_fn(side(44), side(40), |x, y| {
                let alpha = if (x + y) % 3 == 0 {
                    255
                } else {
                    (x * 7 % 256) as u8
                };
                image::Rgba([(x * 5 % 256) as u8, (y * 6 % 256) as u8, 120, alpha])
            });
            let mut png = Vec::new();
            picture
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let fetched = Arc::new(FetchedImages::one(url, png));
            let drawn = rasterizer
                .rasterize_with(&svg, 100, 60, scale, Arc::clone(&fetched))
                .unwrap();
            // usvg and resvg on the SVG as written: the photo clipped to its slot.
            let tree = usvg::Tree::from_str(&svg, &rasterizer.options_with(fetched)).unwrap();
            let clipped = rasterizer.render_tree(&tree, 100, 60, scale).unwrap();
            assert_eq!(drawn.data(), clipped.data(), "scale {scale}");
            assert_ne!(drawn.pixel(side(20), side(20)), clipped.pixel(1, 1));
        }
    }

    #[test]
    fn resolves_only_fetched_remote_images_and_never_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let fonts = crate::render::fonts::load(
            &root.join("fonts"),
            &crate::render::FontSettings::shipped_only(),
        )
        .unwrap();
        let rasterizer = Rasterizer::new(fonts, Arc::new(AssetImages::default()));
        let svg = |href: &str| {
            format!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><image href="{href}" width="4" height="4" preserveAspectRatio="none"/></svg>"#
            )
        };
        let mut red = Vec::new();
        image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 0, 0, 255]))
            .write_to(&mut std::io::Cursor::new(&mut red), image::ImageFormat::Png)
            .unwrap();
        let url = "https://cdn.test/red.png";
        let fetched = Arc::new(FetchedImages::one(url, red));
        let drawn = rasterizer
            .rasterize_with(&svg(url), 4, 4, 1, Arc::clone(&fetched))
            .unwrap();
        assert_eq!(drawn.pixel(2, 2).map(|p| p.red()), Some(255));
        // Not fetched for this render, a local file, a relative path: nothing is drawn.
        for href in [
            "https://cdn.test/other.png",
            "file:///etc/hostname",
            "/etc/hostname",
            "../assets/images/products/mug.png",
        ] {
            let pixmap = rasterizer
                .rasterize_with(&svg(href), 4, 4, 1, Arc::clone(&fetched))
                .unwrap();
            assert_eq!(pixmap.pixel(2, 2).map(|p| p.alpha()), Some(0), "{href}");
        }
    }
}
