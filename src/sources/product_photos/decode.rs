//! Turning fetched bytes into the picture a template asked for, within bounds.
//!
//! The bytes are untrusted: a product photo's URL comes from context other systems wrote, and
//! a `data:` image (see `crate::render::image_limits`) sits in that context itself. A few
//! hundred bytes can declare a 16383×16383 picture (a GiB to decode), and an allow-listed
//! 8192×1 strip drawn `slice` into a 132×132 slot would, resized naively, make a
//! 1,081,344×132 intermediate. So every step here is bounded:
//!
//! 1. **Header first.** The format is sniffed from the bytes (JPEG, PNG, WebP or GIF only,
//!    never SVG) and the dimensions read from the header alone; a side over the limit, or a
//!    picture whose RGBA pixels would exceed the allocation limit, is refused before any
//!    pixel is decoded.
//! 2. **Decode with `image::Limits`** (the same sides and `max_alloc`), in case the header
//!    and the decoder disagree.
//! 3. **Bounded resize.** `Contain` fits inside the slot (no intermediate larger than the
//!    slot). `Cover` resizes and crops as `resize_to_fill` does when that intermediate is at
//!    most [`MAX_INTERMEDIATE_PIXELS`] (or twice the slot, for very large slots): every
//!    normal photo, so outputs stay the same. Otherwise the source is first cropped to the
//!    slot's aspect ratio and then resized straight to the slot: no intermediate at all. The resampler's own working buffer
//!    (source width × slot height, 16 bytes a pixel) is capped at [`MAX_RESIZE_WORK_BYTES`].
//! 4. **A process-wide decode budget** ([`DecodeBudget`]): at most one decode per CPU runs at
//!    once, whoever asks (remote photos, `data:` images); the others wait for a permit. So the
//!    memory decoding can take is bounded by CPUs × (allocation limit + resize work + slot),
//!    not by the number of blocking threads (up to 512).
//!
//! The result is encoded as a stored PNG (rows neither filtered nor deflated, so each render
//! that draws it decodes it as a copy), which resvg embeds as an `<image href>`. CPU-bound: call
//! [`prepare`] from `spawn_blocking` (holding a budget permit).

use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{FetchError, Fit};

/// Most bytes the resampler may use for its working buffer (source width × slot height in
/// `f32` RGBA); a resize needing more is refused as too large.
pub(crate) const MAX_RESIZE_WORK_BYTES: u64 = 256 * 1024 * 1024;

/// Most pixels of the intermediate `resize_to_fill` makes before cropping (16 MiB as RGBA),
/// unless the slot itself is more than half that; a `Cover` resize needing more crops first.
pub(crate) const MAX_INTERMEDIATE_PIXELS: u64 = 4 * 1024 * 1024;

/// Source-image limits for decoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeLimits {
    /// Largest side, in pixels, read from the header and enforced by the decoder.
    pub(crate) max_dimension: u32,
    /// Most bytes the decoder may allocate; also caps width × height × 4 from the header.
    pub(crate) max_alloc_bytes: u64,
}

/// A decoded, resized, PNG-encoded image.
pub(crate) struct Prepared {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) png: Vec<u8>,
}

/// The per-process decode budget: one permit per CPU, shared by every decode of the process
/// (all `ProductPhotos` and every render's `data:` images). Hold a permit while decoding and
/// resizing.
pub struct DecodeBudget;

impl DecodeBudget {
    fn semaphore() -> &'static Arc<Semaphore> {
        static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
        PERMITS.get_or_init(|| Arc::new(Semaphore::new(Self::permits())))
    }

    /// How many decodes may run at once: the number of CPUs (at least 1).
    pub fn permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Decodes running right now.
    pub fn in_use() -> usize {
        Self::permits() - Self::semaphore().available_permits()
    }

    /// Waits (without blocking a thread) for a permit.
    pub(crate) async fn acquire() -> OwnedSemaphorePermit {
        Arc::clone(Self::semaphore())
            .acquire_owned()
            .await
            .expect("the decode budget is never closed")
    }

    /// Blocks this thread until a permit is free (for synchronous callers: the rasterizer).
    pub(crate) fn acquire_blocking() -> OwnedSemaphorePermit {
        // The semaphore's wait needs no runtime: this thread parks until a permit is free.
        pollster::block_on(Self::acquire())
    }
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
    let resized = resize(source, width, height, fit)?;
    encode(resized)
}

/// Decodes `bytes` within `limits` and encodes the picture, at its own size, as PNG: a
/// raster whose size is known and bounded, for a resolver that does not know the slot.
pub(crate) fn reencode(bytes: &[u8], limits: DecodeLimits) -> Result<Prepared, FetchError> {
    encode(decode(bytes, limits)?)
}

/// The dimensions an image's header declares, without decoding a pixel; `None` for bytes
/// that are not a JPEG, PNG, WebP or GIF header.
pub(crate) fn header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let format = raster_format(bytes).ok()?;
    ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .ok()
}

/// The picture as an RGBA PNG whose rows are stored, neither filtered nor deflated: resvg
/// decodes a kept photo on every render that draws it, and a stored PNG decodes as a copy
/// (inflating and unfiltering a compressed one was 7.5% of a render whose texts and bands were
/// all kept; `cargo bench --bench render`). The photo cache weighs the bytes kept, so it holds
/// fewer photos than it would compressed.
fn encode(image: DynamicImage) -> Result<Prepared, FetchError> {
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut png = Vec::with_capacity(rgba.len() + height as usize + 1024);
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::NoCompression);
    encoder.set_filter(png::Filter::NoFilter);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&rgba)?;
            writer.finish()
        })
        .map_err(|_| FetchError::Internal)?;
    // Kept in the image cache, which weighs the length: no spare capacity held beyond it.
    png.shrink_to_fit();
    Ok(Prepared { width, height, png })
}

/// Resizes with a bounded intermediate (see the module doc).
fn resize(
    source: DynamicImage,
    width: u32,
    height: u32,
    fit: Fit,
) -> Result<DynamicImage, FetchError> {
    let (source_width, source_height) = (source.width(), source.height());
    let slot_pixels = u64::from(width) * u64::from(height);
    let work = |source_width: u32, target_height: u32| {
        u64::from(source_width) * u64::from(target_height) * 16
    };
    match fit {
        Fit::Contain => {
            let (_, h) = fill_dimensions(source_width, source_height, width, height, false);
            if work(source_width, h) > MAX_RESIZE_WORK_BYTES {
                return Err(FetchError::TooLarge);
            }
            Ok(source.resize(width, height, FilterType::Lanczos3))
        }
        Fit::Cover => {
            let (w, h) = fill_dimensions(source_width, source_height, width, height, true);
            let intermediate = u64::from(w) * u64::from(h);
            if intermediate <= MAX_INTERMEDIATE_PIXELS.max(slot_pixels.saturating_mul(2)) {
                if work(source_width, h) > MAX_RESIZE_WORK_BYTES {
                    return Err(FetchError::TooLarge);
                }
                return Ok(source.resize_to_fill(width, height, FilterType::Lanczos3));
            }
            // Crop to the slot's aspect ratio first: the resize then makes the slot directly.
            let (x, y, crop_width, crop_height) =
                centred_crop(source_width, source_height, width, height);
            if work(crop_width, height) > MAX_RESIZE_WORK_BYTES {
                return Err(FetchError::TooLarge);
            }
            Ok(source.crop_imm(x, y, crop_width, crop_height).resize_exact(
                width,
                height,
                FilterType::Lanczos3,
            ))
        }
    }
}

/// The size `image`'s `resize` (`fill == false`) or `resize_to_fill` (`fill == true`)
/// scales a `width`×`height` source to for a `nwidth`×`nheight` box (the same arithmetic).
fn fill_dimensions(width: u32, height: u32, nwidth: u32, nheight: u32, fill: bool) -> (u32, u32) {
    let wratio = f64::from(nwidth) / f64::from(width.max(1));
    let hratio = f64::from(nheight) / f64::from(height.max(1));
    let ratio = if fill {
        wratio.max(hratio)
    } else {
        wratio.min(hratio)
    };
    // `as` saturates: a huge intermediate stays huge, it does not wrap.
    let side = |s: u32| ((f64::from(s) * ratio).round() as u32).max(1);
    (side(width), side(height))
}

/// The centred part of a `width`×`height` source with the aspect ratio of `nwidth`×`nheight`:
/// (x, y, crop width, crop height).
fn centred_crop(width: u32, height: u32, nwidth: u32, nheight: u32) -> (u32, u32, u32, u32) {
    let (w, h, nw, nh) = (
        u64::from(width),
        u64::from(height),
        u64::from(nwidth),
        u64::from(nheight),
    );
    if w * nh > nw * h {
        // Wider than the slot: keep the full height.
        let crop = ((h * nw + nh / 2) / nh).clamp(1, w) as u32;
        ((width - crop) / 2, 0, crop, height)
    } else {
        let crop = ((w * nh + nw / 2) / nw).clamp(1, h) as u32;
        (0, (height - crop) / 2, width, crop)
    }
}

/// The format of `bytes` if it is one we decode (trust the bytes, not the Content-Type:
/// CDNs mislabel images all the time).
fn raster_format(bytes: &[u8]) -> Result<ImageFormat, FetchError> {
    let format = image::guess_format(bytes).map_err(|_| FetchError::NotAnImage)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(FetchError::NotAnImage);
    }
    Ok(format)
}

fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<DynamicImage, FetchError> {
    let format = raster_format(bytes)?;
    // The header alone first: nothing is allocated for a picture over the limits.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| FetchError::Decode)?;
    if width == 0
        || height == 0
        || width > limits.max_dimension
        || height > limits.max_dimension
        || u64::from(width) * u64::from(height) * 4 > limits.max_alloc_bytes
    {
        return Err(FetchError::TooLarge);
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

    /// A PNG whose IHDR declares `width`×`height` RGBA, with a tiny IDAT (a decompression
    /// bomb's header: decoding it would allocate width × height × 4 bytes).
    pub(crate) fn png_declaring(width: u32, height: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let sum = crc32fast::hash(&out[start..]);
            out.extend_from_slice(&sum.to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        // zlib: a stored, empty final block.
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn a_bomb_is_refused_from_its_header() {
        let bomb = png_declaring(16383, 16383);
        assert!(bomb.len() < 100);
        assert_eq!(header_dimensions(&bomb), Some((16383, 16383)));
        // Over the side limit, and (with a larger side limit) over the allocation limit.
        assert!(matches!(
            prepare(&bomb, 132, 132, Fit::Cover, LIMITS),
            Err(FetchError::TooLarge)
        ));
        let wide = DecodeLimits {
            max_dimension: 16384,
            max_alloc_bytes: 64 << 20,
        };
        assert!(matches!(
            prepare(&bomb, 132, 132, Fit::Cover, wide),
            Err(FetchError::TooLarge)
        ));
    }

    #[test]
    fn a_strip_covers_a_slot_without_a_giant_intermediate() {
        // 4096×1: left half red, right half blue. resize_to_fill would make 540,672×132
        // (71 Mpx, 285 MiB as RGBA, more as the resampler's f32 rows).
        let strip = RgbaImage::from_fn(4096, 1, |x, _| {
            if x < 2048 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let bytes = png_of(&strip);
        let started = std::time::Instant::now();
        let cover = prepare(&bytes, 132, 132, Fit::Cover, LIMITS).unwrap();
        assert_eq!((cover.width, cover.height), (132, 132));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // The centre of the strip: the boundary between red and blue.
        let px = decoded(&cover);
        assert!(px.get_pixel(0, 60).0[0] > 100 || px.get_pixel(131, 60).0[2] > 100);
        let contain = prepare(&bytes, 132, 132, Fit::Contain, LIMITS).unwrap();
        assert_eq!((contain.width, contain.height), (132, 1));
    }

    #[test]
    fn normal_photos_resize_exactly_as_before() {
        let photo =
            RgbaImage::from_fn(64, 48, |x, y| Rgba([(x * 4) as u8, (y * 5) as u8, 90, 255]));
        let bytes = png_of(&photo);
        for (w, h) in [(44, 44), (88, 30), (20, 60), (132, 132)] {
            let ours = decoded(&prepare(&bytes, w, h, Fit::Cover, LIMITS).unwrap());
            let before = DynamicImage::ImageRgba8(photo.clone())
                .resize_to_fill(w, h, FilterType::Lanczos3)
                .into_rgba8();
            assert!(ours == before, "{w}×{h} differs");
        }
    }

    #[test]
    fn prepared_photos_are_stored_so_a_render_decodes_them_as_a_copy() {
        let photo =
            RgbaImage::from_fn(64, 48, |x, y| Rgba([(x * 4) as u8, (y * 5) as u8, 90, 200]));
        let prepared = prepare(&png_of(&photo), 44, 44, Fit::Cover, LIMITS).unwrap();
        // The rows as they are: 44 × 44 RGBA pixels and a filter byte per row, at least.
        assert!(
            prepared.png.len() >= 44 * (1 + 44 * 4),
            "{} bytes",
            prepared.png.len()
        );
        let idat = prepared
            .png
            .windows(4)
            .position(|w| w == b"IDAT")
            .expect("an IDAT chunk");
        // After the zlib header, the first deflate block's type bits: 00, stored.
        let first_block = prepared.png[idat + 4 + 2];
        assert_eq!(first_block >> 1 & 0b11, 0, "a stored block");
        // Every row unfiltered: what resvg decodes is the straight pixels.
        let mut reader = png::Decoder::new(Cursor::new(&prepared.png))
            .read_info()
            .unwrap();
        let mut rows = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut rows).unwrap();
        assert_eq!(rows, decoded(&prepared).into_raw());
        let before = DynamicImage::ImageRgba8(photo)
            .resize_to_fill(44, 44, FilterType::Lanczos3)
            .into_rgba8();
        assert!(decoded(&prepared) == before, "the same pixels as before");
    }

    #[test]
    fn centred_crops_have_the_slot_aspect_ratio() {
        assert_eq!(centred_crop(8192, 1, 132, 132), (4095, 0, 1, 1));
        assert_eq!(centred_crop(1, 8192, 132, 132), (0, 4095, 1, 1));
        assert_eq!(centred_crop(1000, 100, 200, 100), (400, 0, 200, 100));
        assert_eq!(centred_crop(100, 1000, 100, 200), (0, 400, 100, 200));
    }

    #[tokio::test]
    async fn the_decode_budget_has_one_permit_per_cpu() {
        let permits = DecodeBudget::permits();
        assert!(permits >= 1);
        let held = DecodeBudget::acquire().await;
        assert!(DecodeBudget::in_use() >= 1);
        drop(held);
        let blocking = tokio::task::spawn_blocking(DecodeBudget::acquire_blocking)
            .await
            .unwrap();
        drop(blocking);
    }
}
