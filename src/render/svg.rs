//! SVG → pixels with usvg/resvg, using only the shipped fonts and images.
//!
//! Image references resolve to `asset:NAME` (shipped images), `data:` URLs, and http(s) URLs
//! only when they were fetched beforehand for this render ([`FetchedImages`], see
//! [`super::image_slots`]): a template (or a context value inside one) can never make the
//! renderer read a local file or open a connection.

use super::assets::AssetImages;
use super::fonts::DEFAULT_FAMILY;
use super::glyph_text::GlyphText;
use super::image_slots::{self, FetchedImages};
use super::text_tiles::{
    ParsingOptions, TextTiles, Tile, TileTools, PLACEHOLDER_HREF, PLACEHOLDER_ID_PREFIX,
};
use super::RenderError;
use resvg::tiny_skia::{IntRect, Pixmap, Transform};
use resvg::usvg::{self, fontdb, ImageHrefResolver, ImageKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Rasterizes SVG text; holds the shared font database and shipped images.
pub struct Rasterizer {
    fonts: Arc<fontdb::Database>,
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
pub fn image_kind(bytes: Arc<Vec<u8>>) -> Option<ImageKind> {
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
    pub fn new(fonts: Arc<fontdb::Database>, images: Arc<AssetImages>) -> Self {
        Self {
            glyph_text: GlyphText::new(Arc::clone(&fonts), DEFAULT_FAMILY),
            default_font_size: usvg::Options::default().font_size,
            placeholder_png: Arc::new(super::png::transparent_pixel_png().to_vec()),
            fonts,
            images,
            text_tiles: TextTiles::default(),
        }
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
            default_font_size: self.default_font_size,
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
            font_family: DEFAULT_FAMILY.to_owned(),
            resources_dir: None,
            image_href_resolver: ImageHrefResolver {
                resolve_data: ImageHrefResolver::default_data_resolver(),
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

    /// Parses `svg` into a tree.
    pub fn parse(&self, svg: &str) -> Result<usvg::Tree, RenderError> {
        usvg::Tree::from_str(svg, &self.options()).map_err(|e| RenderError::Svg(e.to_string()))
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
    fn rasterize_inner(
        &self,
        svg: &str,
        width: u32,
        height: u32,
        scale: u8,
        fetched: Arc<FetchedImages>,
        use_text_tiles: bool,
    ) -> Result<Pixmap, RenderError> {
        // One XML parse serves both the image slots and the text tiles.
        let wants_tiles = use_text_tiles && svg.contains("<text");
        let document = (svg.contains("asset:") || wants_tiles)
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
        let Some(tiled) = tiled else {
            return self.render_tree(&parse(svg)?, width, height, scale);
        };
        let tree = parse(&tiled.svg)?;
        let (mut pixmap, transform) = self.canvas(&tree, width, height, scale)?;
        if !tiles_stay_on_top(&tree, &tiled.tiles, transform) {
            // Something is painted over a text: draw the texts in place instead.
            return self.render_tree(&parse(svg)?, width, height, scale);
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

/// The transform that stretches `tree`'s own size onto `pixel_width`×`pixel_height` pixels
/// (every render's; countdown frames use it too, so they draw exactly like the rest).
impl ParsingOptions for Rasterizer {
    fn parsing_options(&self) -> usvg::Options<'_> {
        self.options()
    }
}

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

/// Draws `tile` unscaled over `canvas` at its place (source-over on premultiplied pixels).
/// Most of a text tile is empty, so this skips what tiny-skia's general pattern pipeline
/// (`draw_pixmap`) would blend pixel by pixel; a test holds the two within a level.
fn draw_tile_over(canvas: &mut Pixmap, tile: &Tile) {
    let (canvas_width, canvas_height) = (canvas.width() as i32, canvas.height() as i32);
    let (tile_width, tile_height) = (tile.pixmap.width() as i32, tile.pixmap.height() as i32);
    let columns = (-tile.x).max(0)..(canvas_width - tile.x).min(tile_width);
    let rows = (-tile.y).max(0)..(canvas_height - tile.y).min(tile_height);
    if columns.is_empty() {
        return;
    }
    let source = tile.pixmap.data();
    let target = canvas.data_mut();
    for row in rows {
        let from = ((row * tile_width + columns.start) * 4) as usize;
        let to = (((tile.y + row) * canvas_width + tile.x + columns.start) * 4) as usize;
        let length = columns.len() * 4;
        let pixels = source[from..from + length].chunks_exact(4);
        for (src, dst) in pixels.zip(target[to..to + length].chunks_exact_mut(4)) {
            match src[3] {
                0 => {}
                255 => dst.copy_from_slice(src),
                alpha => {
                    let keep = 255 - u32::from(alpha);
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = (u32::from(*s) + (u32::from(*d) * keep + 127) / 255) as u8;
                    }
                }
            }
        }
    }
}

/// Whether drawing the tiles after everything else paints the same as drawing each at its
/// placeholder: true when nothing painted after a placeholder reaches into its tile's pixels.
/// (usvg turns each placeholder into a group holding one hidden image, under its id.)
fn tiles_stay_on_top(tree: &usvg::Tree, tiles: &[Arc<Tile>], transform: Transform) -> bool {
    let mut placed: Vec<IntRect> = Vec::with_capacity(tiles.len());
    for node in tree.root().children() {
        let placeholder = match node {
            usvg::Node::Group(group) => group
                .id()
                .strip_prefix(PLACEHOLDER_ID_PREFIX)
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| tiles.get(n)),
            _ => None,
        };
        if let Some(tile) = placeholder {
            if let Some(rect) =
                IntRect::from_xywh(tile.x, tile.y, tile.pixmap.width(), tile.pixmap.height())
            {
                placed.push(rect);
            }
            continue;
        }
        if placed.is_empty() {
            continue;
        }
        // Where this node may paint, in pixels: its stroke box and its layer box (which
        // holds filters), rounded out by a pixel for anti-aliasing.
        let stroke = node.abs_stroke_bounding_box();
        let reach = match node.abs_layer_bounding_box() {
            Some(layer) => stroke.join(&layer.to_rect()).unwrap_or(stroke),
            None => stroke,
        };
        let Some(reach) = reach.transform(transform).and_then(|r| {
            IntRect::from_ltrb(
                r.left().floor() as i32 - 1,
                r.top().floor() as i32 - 1,
                r.right().ceil() as i32 + 1,
                r.bottom().ceil() as i32 + 1,
            )
        }) else {
            return false;
        };
        if placed.iter().any(|tile| tile.intersect(&reach).is_some()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::text_tiles::Tiled;

    fn rasterizer() -> Rasterizer {
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let fonts = super::super::fonts::load(&assets.join("fonts")).unwrap();
        Rasterizer::new(
            fonts,
            Arc::new(AssetImages::load(&assets.join("images")).unwrap()),
        )
    }

    fn max_diff(a: &Pixmap, b: &Pixmap) -> u8 {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// The text tiles of `svg` at scale 1, as a render would make them.
    fn tile(rasterizer: &Rasterizer, svg: &str, width: u32, height: u32) -> Option<Tiled> {
        let document = roxmltree::Document::parse(svg).unwrap();
        rasterizer
            .text_tiles
            .tile(&rasterizer.tile_tools(), svg, &document, width, height, 1)
    }

    /// Per-channel differences: the largest, and the mean.
    fn difference(a: &Pixmap, b: &Pixmap) -> (u8, f64) {
        let diffs = a.data().iter().zip(b.data()).map(|(x, y)| x.abs_diff(*y));
        let (max, sum) = diffs.fold((0, 0u64), |(max, sum), d| (max.max(d), sum + u64::from(d)));
        (max, sum as f64 / a.data().len() as f64)
    }

    /// Plain texts of many kinds (sizes, weights, anchors, sub-pixel positions, opacity,
    /// accents, kerning pairs), with `shift` added to every `x`.
    fn plain_texts(shift: f32) -> String {
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
            let usvg_drawn = rasterizer
                .rasterize_inner(&svg, 300, 120, scale, Arc::default(), false)
                .unwrap();
            let glyph_drawn = rasterizer
                .rasterize_inner(&svg, 300, 120, scale, Arc::default(), true)
                .unwrap();
            // The yardstick: usvg drawing every text a quarter pixel to the right.
            let shifted = rasterizer
                .rasterize_inner(
                    &plain_texts(0.25 / f32::from(scale)),
                    300,
                    120,
                    scale,
                    Arc::default(),
                    false,
                )
                .unwrap();
            let (max, mean) = difference(&usvg_drawn, &glyph_drawn);
            let (_, shifted_mean) = difference(&usvg_drawn, &shifted);
            // tiny-skia resolves edges to a quarter pixel across, so a glyph placed 1/32 px
            // off can move an edge by one quarter-pixel column: 64 levels at most.
            assert!(max <= 64, "scale {scale}: {max} levels off");
            assert!(
                mean < shifted_mean / 4.0,
                "scale {scale}: mean difference {mean:.4}, a quarter-pixel shift gives {shifted_mean:.4}"
            );
        }
    }

    #[test]
    fn texts_under_later_shapes_are_drawn_in_place() {
        // The rectangle drawn after the first text covers part of it: drawing tiles last
        // would put the text on top, so the render draws its texts in place.
        let svg = plain_texts(0.0).replace(
            "</svg>",
            r##"<rect x="20" y="12" width="40" height="12" fill="#f59e0b"/></svg>"##,
        );
        let rasterizer = rasterizer();
        for scale in [1, 2] {
            let in_place = rasterizer
                .rasterize_inner(&svg, 300, 120, scale, Arc::default(), false)
                .unwrap();
            for _ in 0..3 {
                let render = rasterizer
                    .rasterize_inner(&svg, 300, 120, scale, Arc::default(), true)
                    .unwrap();
                assert_eq!(max_diff(&render, &in_place), 0, "scale {scale}");
            }
        }
    }

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
    fn tiles_blend_like_tiny_skia() {
        let mut canvas = Pixmap::new(40, 30).unwrap();
        for (i, pixel) in canvas.pixels_mut().iter_mut().enumerate() {
            let v = (i * 37 % 256) as u8;
            *pixel =
                resvg::tiny_skia::PremultipliedColorU8::from_rgba(v / 2, v / 3, v / 4, v / 2 + 100)
                    .unwrap();
        }
        let mut tile = Pixmap::new(25, 20).unwrap();
        for (i, pixel) in tile.pixels_mut().iter_mut().enumerate() {
            let alpha = [0u8, 255, 1, 128, 200, 37][i % 6];
            *pixel = resvg::tiny_skia::ColorU8::from_rgba(200, 30, 90, alpha).premultiply();
        }
        // Partly off the canvas on two sides.
        let tile = Tile {
            pixmap: tile,
            x: 25,
            y: -5,
        };
        let mut ours = canvas.clone();
        draw_tile_over(&mut ours, &tile);
        let mut theirs = canvas.clone();
        theirs.draw_pixmap(
            tile.x,
            tile.y,
            tile.pixmap.as_ref(),
            &resvg::tiny_skia::PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        assert!(
            max_diff(&ours, &theirs) <= 1,
            "{}",
            max_diff(&ours, &theirs)
        );
        assert!(max_diff(&ours, &canvas) > 100, "the tile was drawn");
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
    fn resolves_only_fetched_remote_images_and_never_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let fonts = crate::render::fonts::load(&root.join("fonts")).unwrap();
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
