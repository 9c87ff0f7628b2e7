//! Turning fetched bytes into the picture a template asked for.
//!
//! Decodes JPEG, PNG, WebP or GIF (first frame) within pixel and memory limits, so a
//! decompression bomb is an error rather than an out-of-memory kill; resizes with
//! Lanczos3 (sharp on downscaling, no moiré on product photos); and encodes the result
//! as PNG, which resvg can embed as an `<image href>`. CPU-bound: call it from
//! `spawn_blocking`.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{FetchError, Fit};

/// Source-image limits for decoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeLimits {
    pub(crate) max_dimension: u32,
    pub(crate) max_alloc_bytes: u64,
}

/// A decoded, resized, PNG-encoded image.
pub(crate) struct Prepared {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) png: Vec<u8>,
}

/// Resizes an image shipped with opentime (trusted bytes, loaded at start-up) to the pixel
/// size a template draws it at, so resvg neither decodes a large image nor resamples it on
/// every render. `None` when the bytes are not an image.
pub(crate) fn resize_to_png(bytes: &[u8], width: u32, height: u32, fit: Fit) -> Option<Vec<u8>> {
    let limits = DecodeLimits {
        max_dimension: 8192,
        max_alloc_bytes: 256 * 1024 * 1024,
    };
    prepare(bytes, width, height, fit, limits)
        .ok()
        .map(|prepared| prepared.png)
}

/// Decodes `bytes`, resizes to `width`×`height` by `fit`, encodes as PNG.
pub(crate) fn prepare(
    bytes: &[u8],
    width: u32,
    height: u32,
    fit: Fit,
    limits: DecodeLimits,
) -> Result<Prepared, FetchError> {
    let source = decode(bytes, limits)?;
    let resized = match fit {
        Fit::Cover => source.resize_to_fill(width, height, FilterType::Lanczos3),
        Fit::Contain => source.resize(width, height, FilterType::Lanczos3),
    };
    let rgba = DynamicImage::ImageRgba8(resized.into_rgba8());
    let mut png = Vec::new();
    rgba.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|_| FetchError::Internal)?;
    Ok(Prepared {
        width: rgba.width(),
        height: rgba.height(),
        png,
    })
}

fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<DynamicImage, FetchError> {
    // Trust the bytes, not the Content-Type: CDNs mislabel images all the time.
    let format = image::guess_format(bytes).map_err(|_| FetchError::NotAnImage)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(FetchError::NotAnImage);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_dimension);
    decode_limits.max_image_height = Some(limits.max_dimension);
    decode_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(decode_limits);
    reader.decode().map_err(|error| match error {
        image::ImageError::Limits(_) => FetchError::TooLarge,
        _ => FetchError::Decode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    const LIMITS: DecodeLimits = DecodeLimits {
        max_dimension: 4096,
        max_alloc_bytes: 64 << 20,
    };

    fn png_of(img: &RgbaImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn decoded(p: &Prepared) -> RgbaImage {
        image::load_from_memory(&p.png).unwrap().into_rgba8()
    }

    #[test]
    fn cover_fills_and_crops_contain_fits() {
        // 80×40: left half red, right half blue.
        let img = RgbaImage::from_fn(80, 40, |x, _| {
            if x < 40 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let bytes = png_of(&img);
        let cover = prepare(&bytes, 20, 20, Fit::Cover, LIMITS).unwrap();
        assert_eq!((cover.width, cover.height), (20, 20));
        let px = decoded(&cover);
        assert_eq!(px.get_pixel(2, 10).0, [255, 0, 0, 255]);
        assert_eq!(px.get_pixel(17, 10).0, [0, 0, 255, 255]);

        let contain = prepare(&bytes, 20, 20, Fit::Contain, LIMITS).unwrap();
        assert_eq!((contain.width, contain.height), (20, 10));
    }

    #[test]
    fn non_images_and_bombs_are_errors() {
        assert!(matches!(
            prepare(b"<html>nope</html>", 10, 10, Fit::Cover, LIMITS),
            Err(FetchError::NotAnImage)
        ));
        // A valid PNG header with a truncated body.
        let bytes = png_of(&RgbaImage::new(8, 8));
        assert!(matches!(
            prepare(&bytes[..40], 10, 10, Fit::Cover, LIMITS),
            Err(FetchError::Decode)
        ));
        // Larger than the dimension limit.
        let small = DecodeLimits {
            max_dimension: 16,
            max_alloc_bytes: 1 << 20,
        };
        let big = png_of(&RgbaImage::new(64, 8));
        assert!(matches!(
            prepare(&big, 10, 10, Fit::Cover, small),
            Err(FetchError::TooLarge)
        ));
        // A format we do not take (BMP magic).
        assert!(matches!(
            prepare(b"BM\0\0\0\0\0\0\0\0", 10, 10, Fit::Cover, LIMITS),
            Err(FetchError::NotAnImage)
        ));
    }
}
