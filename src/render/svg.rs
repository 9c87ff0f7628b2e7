//! SVG → pixels with usvg/resvg, using only the shipped fonts and images.
//!
//! Image references resolve to `asset:NAME` (shipped images), `data:` URLs, and http(s) URLs
//! only when they were fetched beforehand for this render ([`FetchedImages`], see
//! [`super::remote`]): a template (or a context value inside one) can never make the
//! renderer read a local file or open a connection.

use super::assets::AssetImages;
use super::fonts::DEFAULT_FAMILY;
use super::remote::{self, FetchedImages};
use super::text_tiles::TextTiles;
use super::RenderError;
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, fontdb, ImageHrefResolver, ImageKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Rasterizes SVG text; holds the shared font database and shipped images.
pub struct Rasterizer {
    fonts: Arc<fontdb::Database>,
    images: Arc<AssetImages>,
    /// Texts already drawn, reused by later renders (see `text_tiles`).
    text_tiles: TextTiles,
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
            fonts,
            images,
            text_tiles: TextTiles::default(),
        }
    }

    /// Texts reused from earlier renders and texts drawn anew, so far.
    pub fn text_tile_counts(&self) -> (u64, u64) {
        self.text_tiles.counts()
    }

    /// Forgets the kept text tiles, so the next render draws every text again.
    pub fn forget_text_tiles(&self) {
        self.text_tiles.clear();
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
            Some(document) => remote::asset_slots(document, width, scale)
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
                    .tile(self, svg, document, width, height, scale)
            });
        let svg = match tiled {
            Some(tiled) => {
                sized.extend(tiled.images);
                std::borrow::Cow::Owned(tiled.svg)
            }
            None => std::borrow::Cow::Borrowed(svg),
        };
        let tree = usvg::Tree::from_str(&svg, &self.options_for(fetched, sized))
            .map_err(|e| RenderError::Svg(e.to_string()))?;
        self.render_tree(&tree, width, height, scale)
    }

    /// Renders a parsed tree; see [`Rasterizer::rasterize`].
    pub fn render_tree(
        &self,
        tree: &usvg::Tree,
        width: u32,
        height: u32,
        scale: u8,
    ) -> Result<Pixmap, RenderError> {
        let scale = u32::from(scale.max(1));
        let (pixel_width, pixel_height) = (width * scale, height * scale);
        let mut pixmap = Pixmap::new(pixel_width, pixel_height).ok_or_else(|| {
            RenderError::Svg(format!("cannot allocate {pixel_width}×{pixel_height}"))
        })?;
        let size = tree.size();
        let transform = Transform::from_scale(
            pixel_width as f32 / size.width(),
            pixel_height as f32 / size.height(),
        );
        resvg::render(tree, transform, &mut pixmap.as_mut());
        Ok(pixmap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn text_tiles_draw_what_the_texts_draw() {
        // Sizes, weights, anchors, a sub-pixel position, a rotated text, translucent fill, and
        // a shape painted over a text (painting order must be kept).
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="120" viewBox="0 0 300 120" font-family="Inter">
            <rect width="300" height="120" fill="#f8fafc"/>
            <text x="10.3" y="30.7" font-size="22" font-weight="700" fill="#111827">Hi Zoë, €1,249.00</text>
            <text x="290" y="60" font-size="13" fill="#6b7280" text-anchor="end">Qty 2 · right aligned</text>
            <text x="40" y="100" font-size="15" fill="#4f46e5" fill-opacity="0.6" transform="rotate(-8 40 100)">tilted</text>
            <rect x="20" y="12" width="40" height="12" fill="#f59e0b"/>
            <text x="150" y="110" font-size="11" fill="#111827" text-anchor="middle">Complete your order →</text>
        </svg>"##;
        let rasterizer = rasterizer();
        for scale in [1, 2] {
            let plain = rasterizer
                .rasterize_inner(svg, 300, 120, scale, Arc::default(), false)
                .unwrap();
            let render = || {
                rasterizer
                    .rasterize_inner(svg, 300, 120, scale, Arc::default(), true)
                    .unwrap()
            };
            // Seen once: drawn in place. Seen again: tiled. Then drawn from the kept tiles.
            let (once, tiled, kept) = (render(), render(), render());
            assert_eq!(
                max_diff(&once, &plain),
                0,
                "scale {scale}: seen once, drawn in place"
            );
            let off = max_diff(&plain, &tiled);
            assert!(off <= 2, "scale {scale}: tiles {off} levels off");
            assert_eq!(
                max_diff(&tiled, &kept),
                0,
                "scale {scale}: kept tiles draw the same"
            );
        }
        // Texts were really tiled (not silently rendered as they are).
        let tiled = rasterizer
            .text_tiles
            .tile(
                &rasterizer,
                svg,
                &roxmltree::Document::parse(svg).unwrap(),
                300,
                120,
                1,
            )
            .unwrap();
        assert_eq!(tiled.images.len(), 4);
        assert!(!tiled.svg.contains("<text"));
    }

    #[test]
    fn texts_that_depend_on_more_than_their_markup_are_left_alone() {
        let rasterizer = rasterizer();
        let gradient = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40"><defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs><text x="5" y="20" fill="url(#g)">x</text></svg>"##;
        assert!(rasterizer
            .text_tiles
            .tile(
                &rasterizer,
                gradient,
                &roxmltree::Document::parse(gradient).unwrap(),
                100,
                40,
                1
            )
            .is_none());
        let styled = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40"><style>text{fill:red}</style><text x="5" y="20">x</text></svg>"##;
        assert!(rasterizer
            .text_tiles
            .tile(
                &rasterizer,
                styled,
                &roxmltree::Document::parse(styled).unwrap(),
                100,
                40,
                1
            )
            .is_none());
        let view_box = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="40" viewBox="0 0 50 20"><text x="5" y="20">x</text></svg>"##;
        assert!(rasterizer
            .text_tiles
            .tile(
                &rasterizer,
                view_box,
                &roxmltree::Document::parse(view_box).unwrap(),
                100,
                40,
                1
            )
            .is_none());
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
