//! `data:` images under the same limits as product photos.
//!
//! A `data:` URL needs no fetch, so it used to skip every image limit: a channel that writes
//! `cart.items[0].image_url` could put there a 100-byte WebP declaring 16383×16383 pixels
//! (a GiB-sized buffer when resvg decodes it) or a nested SVG (usvg parses and draws it, with
//! its own images and filters). The rasterizer's data resolver ([`data_resolver`]) therefore
//! never hands usvg the bytes it was given. It:
//!
//! - refuses SVG (`data:image/svg+xml`, or SVG bytes under another type): no nested SVG from
//!   data, ever;
//! - refuses more than [`MAX_DATA_BYTES`] of decoded data;
//! - reads the dimensions from the header and refuses a side over [`MAX_DATA_SIDE`] or more
//!   than [`MAX_DATA_PIXELS`] pixels, before decoding a pixel;
//! - decodes under `image::Limits` (`max_alloc` [`MAX_DATA_DECODE_BYTES`]) inside the
//!   process's decode budget (one decode per CPU, shared with the product photos, see
//!   `crate::sources::product_photos::DecodeBudget`);
//! - and gives usvg the decoded picture re-encoded as a PNG of its own, known size — so what
//!   resvg decodes is an image we made, not one whose header could lie to a second decoder.
//!
//! A refused image draws the product photos' placeholder: a neutral grey tile, with the
//! declared picture's aspect ratio when its header could be read (so it covers the area the
//! picture would have), square otherwise. Like a remote photo that could not be had, it never
//! fails the render.

use super::image_slots::placeholder;
use crate::sources::product_photos::{header_dimensions, reencode, DecodeBudget, DecodeLimits};
use resvg::usvg::{ImageHrefDataResolverFn, ImageKind, Options};
use std::sync::Arc;

/// Most bytes a `data:` image may hold (after base64 or percent decoding).
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;
/// Largest side, in pixels, of a `data:` image.
pub(crate) const MAX_DATA_SIDE: u32 = 4096;
/// Most bytes the decoder may allocate for one `data:` image.
pub(crate) const MAX_DATA_DECODE_BYTES: u64 = 32 * 1024 * 1024;
/// Most pixels of a `data:` image (its RGBA pixels fill the decode allocation limit).
pub(crate) const MAX_DATA_PIXELS: u64 = MAX_DATA_DECODE_BYTES / 4;

const DATA_LIMITS: DecodeLimits = DecodeLimits {
    max_dimension: MAX_DATA_SIDE,
    max_alloc_bytes: MAX_DATA_DECODE_BYTES,
};

/// Why a `data:` image was refused (for the debug log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataRefusal {
    /// SVG: never drawn from data.
    Svg,
    /// A media type that is not a raster image.
    NotAnImage,
    /// More than [`MAX_DATA_BYTES`].
    TooManyBytes,
    /// Over the side, pixel or allocation limits, or undecodable.
    Undecodable,
}

/// The usvg data resolver: every `data:` image bounded, a refused one drawn as a placeholder.
pub(crate) fn data_resolver() -> ImageHrefDataResolverFn<'static> {
    Box::new(|mime: &str, data: Arc<Vec<u8>>, _: &Options| {
        let png = match bounded_data_image(mime, &data) {
            Ok(png) => png,
            Err(refusal) => {
                tracing::debug!(?refusal, mime, bytes = data.len(), "data: image refused");
                let (width, height) = header_dimensions(&data).unwrap_or((1, 1));
                placeholder(width, height)?
            }
        };
        Some(ImageKind::PNG(png))
    })
}

/// A `data:` image (`mime` as the URL says, `data` decoded from base64 or percent-encoding)
/// re-encoded as a size-bounded PNG, or why not.
pub(crate) fn bounded_data_image(mime: &str, data: &[u8]) -> Result<Arc<Vec<u8>>, DataRefusal> {
    let mime = mime.trim().to_ascii_lowercase();
    if mime.contains("svg") {
        return Err(DataRefusal::Svg);
    }
    // The types usvg's own resolver accepts (`text/plain` is a data URL's default).
    if !matches!(
        mime.as_str(),
        "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp" | "text/plain"
    ) {
        return Err(DataRefusal::NotAnImage);
    }
    if data.len() > MAX_DATA_BYTES {
        return Err(DataRefusal::TooManyBytes);
    }
    let (width, height) = header_dimensions(data).ok_or_else(|| {
        if looks_like_svg(data) {
            DataRefusal::Svg
        } else {
            DataRefusal::NotAnImage
        }
    })?;
    if width > MAX_DATA_SIDE
        || height > MAX_DATA_SIDE
        || u64::from(width) * u64::from(height) > MAX_DATA_PIXELS
    {
        return Err(DataRefusal::Undecodable);
    }
    let _permit = DecodeBudget::acquire_blocking();
    reencode(data, DATA_LIMITS)
        .map(|prepared| Arc::new(prepared.png))
        .map_err(|_| DataRefusal::Undecodable)
}

fn looks_like_svg(data: &[u8]) -> bool {
    let head = &data[..data.len().min(512)];
    // gzip (svgz) or markup.
    head.starts_with(&[0x1f, 0x8b]) || String::from_utf8_lossy(head).contains("<svg")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};
    use std::io::Cursor;

    fn png_of(image: &RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    /// A lossless WebP header declaring `width`×`height`, and a few bytes of nothing.
    fn webp_declaring(width: u32, height: u32) -> Vec<u8> {
        let bits: u32 = (width - 1) | ((height - 1) << 14) | (1 << 28);
        let mut vp8l = vec![0x2f];
        vp8l.extend_from_slice(&bits.to_le_bytes());
        vp8l.extend_from_slice(&[0; 64]);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&((4 + 8 + vp8l.len()) as u32).to_le_bytes());
        out.extend_from_slice(b"WEBPVP8L");
        out.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
        out.extend_from_slice(&vp8l);
        out
    }

    #[test]
    fn small_rasters_are_reencoded_unchanged() {
        let red = RgbaImage::from_pixel(3, 2, Rgba([255, 0, 0, 255]));
        let png = bounded_data_image("image/png", &png_of(&red)).unwrap();
        let back = image::load_from_memory(&png).unwrap().into_rgba8();
        assert_eq!(back, red);
        // No type given (text/plain): the bytes decide.
        assert!(bounded_data_image("text/plain", &png_of(&red)).is_ok());
    }

    #[test]
    fn bombs_svg_and_oversized_data_are_refused() {
        let bomb = webp_declaring(16383, 16383);
        assert_eq!(header_dimensions(&bomb), Some((16383, 16383)));
        assert_eq!(
            bounded_data_image("image/webp", &bomb),
            Err(DataRefusal::Undecodable)
        );
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>"#;
        assert_eq!(
            bounded_data_image("image/svg+xml", svg),
            Err(DataRefusal::Svg)
        );
        assert_eq!(bounded_data_image("text/plain", svg), Err(DataRefusal::Svg));
        let mut big = png_of(&RgbaImage::new(1, 1));
        big.resize(MAX_DATA_BYTES + 1, 0);
        assert_eq!(
            bounded_data_image("image/png", &big),
            Err(DataRefusal::TooManyBytes)
        );
        // 4096 a side, but 16 Mi pixels: over the pixel cap.
        assert_eq!(
            bounded_data_image("image/webp", &webp_declaring(4096, 4096)),
            Err(DataRefusal::Undecodable)
        );
        assert_eq!(
            bounded_data_image("application/pdf", b"%PDF"),
            Err(DataRefusal::NotAnImage)
        );
    }

    #[test]
    fn the_resolver_draws_a_placeholder_with_the_declared_shape() {
        let resolve = data_resolver();
        let options = Options::default();
        let Some(ImageKind::PNG(tile)) = resolve(
            "image/webp",
            Arc::new(webp_declaring(16383, 8192)),
            &options,
        ) else {
            panic!("a placeholder PNG");
        };
        let tile = image::load_from_memory(&tile).unwrap().into_rgba8();
        assert_eq!(tile.dimensions(), (64, 33));
        assert_eq!(tile.get_pixel(0, 0).0, [229, 231, 235, 255]);
    }
}
