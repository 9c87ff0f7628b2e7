//! The `<image>` slots of a rendered SVG: the product photos it draws (`href="http(s)://…"`)
//! and the shipped images (`href="asset:…"`), each with the pixel size it is drawn at, and
//! [`FetchedImages`], the photos an open fetched for them (`crate::open::photos`), which the
//! rasterizer's image resolver draws. A slot whose photo could not be had holds a neutral grey
//! tile of its shape, and the failure is kept so the answer can say so — never an error.

use crate::sources::product_photos::{FetchError, Fit, MAX_OUTPUT_DIMENSION};
use image::{ImageFormat, Rgba, RgbaImage};
use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

/// Most distinct remote images one render fetches; further slots get the placeholder.
pub(crate) const MAX_REMOTE_IMAGES: usize = 16;
/// The placeholder's colour: the light grey of an empty image slot.
const PLACEHOLDER_RGBA: [u8; 4] = [229, 231, 235, 255];
const XLINK: &str = "http://www.w3.org/1999/xlink";

/// One remote image as the SVG draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageSlot {
    pub href: String,
    /// Pixels on the final raster (already times the block scale and `scale`).
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
}

/// Why a slot shows the placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotFailure {
    #[error("{0}")]
    Fetch(FetchError),
    /// The render's deadline passed before the fetch finished.
    #[error("deadline passed")]
    Deadline,
    /// More than [`MAX_REMOTE_IMAGES`] distinct images in one render.
    #[error("too many images")]
    TooMany,
}

impl SlotFailure {
    pub fn reason(&self) -> &'static str {
        match self {
            SlotFailure::Fetch(error) => error.reason(),
            SlotFailure::Deadline => "deadline",
            SlotFailure::TooMany => "too-many-images",
        }
    }
}

/// The images fetched for one render, by `href`, with the placeholders and why.
#[derive(Debug, Default, Clone)]
pub struct FetchedImages {
    by_href: HashMap<String, Arc<Vec<u8>>>,
    failures: Vec<(String, SlotFailure)>,
}

impl FetchedImages {
    /// Encoded image bytes (PNG) for an `href`: the photo, or its placeholder.
    pub fn get(&self, href: &str) -> Option<&Arc<Vec<u8>>> {
        self.by_href.get(href)
    }

    /// The slots that show a placeholder, with the reason.
    pub fn failures(&self) -> &[(String, SlotFailure)] {
        &self.failures
    }

    /// `X-Opentime-Image-Fallback` value: the number of placeholders and their distinct
    /// reasons, e.g. `2 timeout,host-not-allowed`; `None` when every photo arrived.
    pub fn fallback_header(&self) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        let mut reasons: Vec<&str> = Vec::new();
        for (_, failure) in &self.failures {
            if !reasons.contains(&failure.reason()) {
                reasons.push(failure.reason());
            }
        }
        Some(format!("{} {}", self.failures.len(), reasons.join(",")))
    }

    /// A set holding one image (for tests of the resolver).
    #[cfg(test)]
    pub(crate) fn one(href: &str, bytes: Vec<u8>) -> Self {
        let mut fetched = Self::default();
        fetched.by_href.insert(href.to_owned(), Arc::new(bytes));
        fetched
    }

    /// Keeps the photo fetched for `slot`.
    pub(crate) fn insert(&mut self, slot: &ImageSlot, png: Vec<u8>) {
        self.by_href.insert(slot.href.clone(), Arc::new(png));
    }

    /// Puts the placeholder into `slot` and keeps why.
    pub(crate) fn fail(&mut self, slot: &ImageSlot, failure: SlotFailure) {
        if let Some(tile) = placeholder(slot.width, slot.height) {
            self.by_href.insert(slot.href.clone(), tile);
        }
        self.failures.push((slot.href.clone(), failure));
    }
}

/// The remote image slots of `svg`, one per distinct `href` (the largest size wins), in
/// document order. `block_width` is the block's declared width: the SVG is stretched to it.
pub(crate) fn find_slots(svg: &str, block_width: u32, scale: u8) -> Vec<ImageSlot> {
    let Ok(document) = roxmltree::Document::parse(svg) else {
        return Vec::new();
    };
    image_slots(&document, block_width, scale, |href| {
        let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    })
}

/// The slots of shipped images (`href="asset:NAME"`) of an already parsed SVG, like
/// [`find_slots`].
pub(crate) fn asset_slots(
    document: &roxmltree::Document<'_>,
    block_width: u32,
    scale: u8,
) -> Vec<ImageSlot> {
    image_slots(document, block_width, scale, |href| {
        href.starts_with("asset:")
    })
}

/// The `<image>` slots whose `href` passes `wanted`, with the pixel size each is drawn at.
fn image_slots(
    document: &roxmltree::Document<'_>,
    block_width: u32,
    scale: u8,
    wanted: impl Fn(&str) -> bool,
) -> Vec<ImageSlot> {
    let root = document.root_element();
    let root_width = length(root.attribute("width")).or_else(|| {
        root.attribute("viewBox")
            .and_then(|v| v.split_whitespace().nth(2))
            .and_then(|w| w.parse::<f64>().ok())
    });
    let stretch = match root_width {
        Some(width) if width > 0.0 => f64::from(block_width) / width,
        _ => 1.0,
    } * f64::from(scale.max(1));
    let mut slots: Vec<ImageSlot> = Vec::new();
    for node in document.descendants().filter(|n| n.has_tag_name("image")) {
        let Some(href) = href(&node) else {
            continue;
        };
        if !wanted(href) {
            continue;
        }
        let side = |name| {
            let pixels = (length(node.attribute(name)).unwrap_or(0.0) * stretch).ceil();
            // `as` saturates; NaN becomes 0, which clamps to 1.
            (pixels as u32).clamp(1, MAX_OUTPUT_DIMENSION)
        };
        let (width, height) = (side("width"), side("height"));
        let fit = match node.attribute("preserveAspectRatio") {
            Some(value) if value.contains("slice") => Fit::Cover,
            Some(value) if value.trim() == "none" => Fit::Cover,
            _ => Fit::Contain,
        };
        match slots.iter_mut().find(|slot| slot.href == href) {
            Some(slot) => {
                slot.width = slot.width.max(width);
                slot.height = slot.height.max(height);
            }
            None => slots.push(ImageSlot {
                href: href.to_owned(),
                width,
                height,
                fit,
            }),
        }
    }
    slots
}

/// A grey tile with the slot's aspect ratio (at most 64 px a side: it is stretched anyway);
/// also what a refused `data:` image draws (see `super::image_limits`).
pub(crate) fn placeholder(width: u32, height: u32) -> Option<Arc<Vec<u8>>> {
    let longest = width.max(height).max(1);
    let fit = |side: u32| ((u64::from(side) * 64).div_ceil(u64::from(longest)) as u32).max(1);
    let tile = RgbaImage::from_pixel(fit(width), fit(height), Rgba(PLACEHOLDER_RGBA));
    let mut png = Vec::new();
    tile.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .ok()?;
    Some(Arc::new(png))
}

/// An `<image>`'s `href` (or `xlink:href`), trimmed.
pub(crate) fn href<'a>(image: &roxmltree::Node<'a, '_>) -> Option<&'a str> {
    image
        .attribute("href")
        .or_else(|| image.attribute((XLINK, "href")))
        .map(str::trim)
}

/// The root `<svg>`'s size in user units, when it gives a positive `width` and `height` and its
/// `viewBox`, if any, is `0 0 width height` (so a user unit is the root's own).
pub(crate) fn own_size(root: &roxmltree::Node<'_, '_>) -> Option<(f64, f64)> {
    if !root.has_tag_name("svg") {
        return None;
    }
    let positive = |name| length(root.attribute(name)).filter(|n| *n > 0.0);
    let (width, height) = (positive("width")?, positive("height")?);
    if let Some(view_box) = root.attribute("viewBox") {
        let numbers: Vec<f64> = view_box
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        if numbers != [0.0, 0.0, width, height] {
            return None;
        }
    }
    Some((width, height))
}

/// An SVG length in user units (`44`, `44px`, `44.5`); percentages and other units are `None`.
pub(crate) fn length(value: Option<&str>) -> Option<f64> {
    let value = value?.trim();
    let number = value.strip_suffix("px").unwrap_or(value).trim();
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_remote_slots_with_their_pixel_size() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="300" height="100" viewBox="0 0 300 100">
            <image href="https://cdn.test/a.jpg" x="0" y="0" width="44" height="40" preserveAspectRatio="xMidYMid slice"/>
            <image xlink:href="http://cdn.test/b.png" width="10px" height="20"/>
            <image href="asset:products/mug.png" width="10" height="10"/>
            <image href="data:image/png;base64,AAAA" width="10" height="10"/>
            <image href="https://cdn.test/a.jpg" width="50" height="10"/>
            <image href="" width="10" height="10"/>
        </svg>"##;
        let slots = find_slots(svg, 600, 2);
        assert_eq!(
            slots,
            vec![
                ImageSlot {
                    href: "https://cdn.test/a.jpg".into(),
                    width: 200,
                    height: 160,
                    fit: Fit::Cover
                },
                ImageSlot {
                    href: "http://cdn.test/b.png".into(),
                    width: 40,
                    height: 80,
                    fit: Fit::Contain
                },
            ]
        );
        assert!(find_slots("not xml", 600, 1).is_empty());
    }

    #[test]
    fn header_counts_placeholders_and_names_reasons() {
        let mut fetched = FetchedImages::default();
        assert_eq!(fetched.fallback_header(), None);
        let slot = |href: &str| ImageSlot {
            href: href.into(),
            width: 40,
            height: 20,
            fit: Fit::Cover,
        };
        fetched.fail(&slot("a"), SlotFailure::Deadline);
        fetched.fail(&slot("b"), SlotFailure::Fetch(FetchError::HostNotAllowed));
        fetched.fail(&slot("c"), SlotFailure::Deadline);
        assert_eq!(
            fetched.fallback_header().as_deref(),
            Some("3 deadline,host-not-allowed")
        );
        let tile = image::load_from_memory(fetched.get("a").unwrap()).unwrap();
        assert_eq!((tile.width(), tile.height()), (64, 32));
    }
}
