//! Pixmap → PNG bytes. Two modes, chosen per block ([`PngMode`]):
//!
//! - **Lossless** (the default): RGB when every pixel is opaque, RGBA otherwise; no row filter;
//!   zlib-rs at level 2, in bands of rows that a block's later renders reuse ([`png_bands`]).
//!   Rendered blocks are flat colours, gradients and anti-aliased edges, and on them unfiltered
//!   rows at a fast level beat every filter: a shifted copy of the row above (a diagonal
//!   gradient) or of a run stays a long match, where filtered rows turn into runs of zeros whose
//!   hash chains hide it. Measured on the demo blocks (`cargo bench --bench render`, *PNG*):
//!   0.41–0.53× the bytes of fdeflate's fast mode with the Paeth filter, the previous encoder,
//!   for 0.07–0.24 ms more on a block's first renders (less once its bands are kept).
//! - **Palette** (`png = "palette"`): at most 256 colours — every colour exactly when the
//!   picture has that few, else a k-means palette (in Oklab) with Floyd–Steinberg error
//!   diffusion at half strength (enough to hide the bands a gradient would show, little enough
//!   to keep flat areas flat and the bytes low), kept only when no channel of any pixel moves
//!   more than [`PALETTE_MAX_ERROR`]; translucent pixels keep their exact colour and alpha
//!   (`tRNS`). Otherwise the block is written losslessly.
//!
//! Pixmaps are premultiplied; translucent pixels are demultiplied first.

use super::png_bands::{self, KeptBands, Rows};
use super::RenderError;
use bytes::Bytes;
use palette::Srgb;
use resvg::tiny_skia::{Pixmap, PremultipliedColorU8};
use std::collections::HashMap;
use std::ops::Range;

/// How a block's PNG is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PngMode {
    #[default]
    Lossless,
    /// An indexed PNG when it keeps every pixel within [`PALETTE_MAX_ERROR`].
    Palette,
}

/// The most a palette may move any channel of any opaque pixel (of 255); beyond it, the block
/// is written losslessly. Diffused error moves single pixels by up to about this much (the
/// demo blocks: 11–22) while their neighbourhood keeps its colour.
pub const PALETTE_MAX_ERROR: u8 = 24;

/// How much of each pixel's error is diffused to its neighbours.
const ERROR_DIFFUSION: f32 = 0.5;

/// Translucent colours a palette keeps exactly, at most (the anti-aliased rounded corners of a
/// demo card need about 80); a picture with more is written losslessly.
const MAX_TRANSLUCENT_COLOURS: usize = 96;

/// A pixmap (premultiplied, as tiny-skia keeps it) as lossless PNG bytes.
pub(crate) fn encode(pixmap: &Pixmap) -> Result<Vec<u8>, RenderError> {
    encode_reusing(pixmap, None)
}

/// [`encode`], with the bands of rows deflated by earlier renders taken from `kept` (see
/// [`png_bands`]).
fn encode_reusing(pixmap: &Pixmap, kept: Option<&KeptBands>) -> Result<Vec<u8>, RenderError> {
    let (width, height) = (pixmap.width(), pixmap.height());
    let (color, channels) = if is_opaque(pixmap) {
        (png::ColorType::Rgb, 3)
    } else {
        (png::ColorType::Rgba, 4)
    };
    let rows = Rows {
        pixels: pixmap.data(),
        height: height as usize,
        form: u64::from(width) << 8 | color as u64,
        scanline_bytes: 1 + width as usize * channels,
        scanlines: |range: Range<usize>, out: &mut Vec<u8>| match color {
            png::ColorType::Rgb => append_rgb_scanlines(pixmap, range, out),
            _ => append_rgba_scanlines(pixmap, range, out),
        },
    };
    let compressed = png_bands::zlib(&rows, kept)?;
    write(&compressed, width, height, color, None)
}

/// A pixmap as PNG bytes in `mode` (lossless bands reused from `kept`); in the palette mode,
/// losslessly when no palette keeps the picture.
pub(crate) fn encode_as(
    pixmap: &Pixmap,
    mode: PngMode,
    kept: Option<&KeptBands>,
) -> Result<Vec<u8>, RenderError> {
    let (width, height) = (pixmap.width(), pixmap.height());
    match mode {
        PngMode::Lossless => encode_reusing(pixmap, kept),
        PngMode::Palette => {
            let rgba = straight_rgba(pixmap);
            match quantize(&rgba, width, height) {
                Some(indexed) => indexed.write(width, height),
                None => encode_reusing(pixmap, kept),
            }
        }
    }
}

/// Whether every pixel is opaque (then the PNG needs no alpha).
fn is_opaque(pixmap: &Pixmap) -> bool {
    pixmap.pixels().iter().all(|p| p.alpha() == u8::MAX)
}

/// The pixmap's pixels as straight (not premultiplied) RGBA bytes, row after row.
fn straight_rgba(pixmap: &Pixmap) -> Vec<u8> {
    let mut data = pixmap.data().to_vec();
    demultiply(pixmap.pixels(), &mut data);
    data
}

/// Writes the straight colour of every translucent pixel of `pixels` over its four bytes in
/// `bytes` (a copy of the premultiplied pixels: opaque ones are the same either way).
fn demultiply(pixels: &[PremultipliedColorU8], bytes: &mut [u8]) {
    for (pixel, bytes) in pixels.iter().zip(bytes.chunks_exact_mut(4)) {
        if pixel.alpha() != u8::MAX {
            let c = pixel.demultiply();
            bytes.copy_from_slice(&[c.red(), c.green(), c.blue(), c.alpha()]);
        }
    }
}

/// Appends PNG's unfiltered scanlines of the pixmap's `rows` as straight RGBA to `out`: per
/// row the filter byte (0, none), then the row's pixels — demultiplied while copied.
fn append_rgba_scanlines(pixmap: &Pixmap, rows: Range<usize>, out: &mut Vec<u8>) {
    let width = pixmap.width() as usize;
    for (row, pixels) in pixmap
        .data()
        .chunks_exact(width * 4)
        .zip(pixmap.pixels().chunks_exact(width))
        .take(rows.end)
        .skip(rows.start)
    {
        out.push(0);
        let start = out.len();
        out.extend_from_slice(row);
        demultiply(pixels, &mut out[start..]);
    }
}

/// Appends PNG's unfiltered scanlines of an opaque pixmap's `rows` as RGB to `out`
/// (premultiplied and straight are the same when every pixel is opaque).
fn append_rgb_scanlines(pixmap: &Pixmap, rows: Range<usize>, out: &mut Vec<u8>) {
    let width = pixmap.width() as usize;
    let start = out.len();
    out.resize(start + rows.len() * (1 + width * 3), 0);
    for (line, row) in out[start..]
        .chunks_exact_mut(1 + width * 3)
        .zip(pixmap.data().chunks_exact(width * 4).skip(rows.start))
    {
        for (rgb, rgba) in line[1..].chunks_exact_mut(3).zip(row.chunks_exact(4)) {
            rgb.copy_from_slice(&rgba[..3]);
        }
    }
}

/// A picture of at most 256 colours: the palette (RGBA), and one index per pixel.
pub(crate) struct Indexed {
    pub(crate) palette: Vec<[u8; 4]>,
    pub(crate) indices: Vec<u8>,
}

impl Indexed {
    fn write(&self, width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
        let width = width as usize;
        let rows = Rows {
            pixels: &self.indices,
            height: height as usize,
            form: (width as u64) << 8 | png::ColorType::Indexed as u64,
            scanline_bytes: 1 + width,
            scanlines: |range: Range<usize>, out: &mut Vec<u8>| {
                for row in self
                    .indices
                    .chunks_exact(width)
                    .take(range.end)
                    .skip(range.start)
                {
                    out.push(0);
                    out.extend_from_slice(row);
                }
            },
        };
        write(
            &png_bands::zlib(&rows, None)?,
            width as u32,
            height,
            png::ColorType::Indexed,
            Some(&self.palette),
        )
    }
}

/// The picture (`width`×`height` straight RGBA pixels) as [`Indexed`] when a palette keeps it
/// within [`PALETTE_MAX_ERROR`].
pub(crate) fn quantize(rgba: &[u8], width: u32, height: u32) -> Option<Indexed> {
    let mut translucent: Vec<[u8; 4]> = Vec::new();
    let mut opaque_colours: HashMap<[u8; 3], u8> = HashMap::new();
    for p in rgba.chunks_exact(4) {
        let colour = [p[0], p[1], p[2], p[3]];
        if p[3] == u8::MAX {
            if opaque_colours.len() <= 256 {
                let next = u8::try_from(opaque_colours.len()).unwrap_or(u8::MAX);
                opaque_colours.entry([p[0], p[1], p[2]]).or_insert(next);
            }
        } else if !translucent.contains(&colour) {
            if translucent.len() == MAX_TRANSLUCENT_COLOURS {
                return None;
            }
            translucent.push(colour);
        }
    }
    let room = 256 - translucent.len();
    // The opaque colours and each opaque pixel's index among them.
    let (opaque_palette, opaque_indices): (Vec<[u8; 3]>, Vec<u8>) = if opaque_colours.len() <= room
    {
        let mut palette = vec![[0; 3]; opaque_colours.len()];
        for (colour, index) in &opaque_colours {
            palette[usize::from(*index)] = *colour;
        }
        let indices = rgba
            .chunks_exact(4)
            .map(|p| {
                opaque_colours
                    .get(&[p[0], p[1], p[2]])
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        (palette, indices)
    } else {
        let pixels: Vec<Srgb<u8>> = rgba
            .chunks_exact(4)
            .map(|p| Srgb::new(p[0], p[1], p[2]))
            .collect();
        let image = quantette::ImageRef::new(width, height, pixels.as_slice()).ok()?;
        let (palette, indices) = quantette::Pipeline::new()
            .palette_size(quantette::PaletteSize::try_from_usize(room)?)
            .ditherer(quantette::dither::FloydSteinberg::with_error_diffusion(
                ERROR_DIFFUSION,
            )?)
            .quantize_method(quantette::QuantizeMethod::kmeans())
            .input_image(image)
            .output_srgb8_indexed_image()
            .into_parts();
        let palette = palette
            .into_iter()
            .map(|c| [c.red, c.green, c.blue])
            .collect();
        (palette, indices)
    };
    let offset = translucent.len();
    let mut max_error = 0u8;
    let mut indices = Vec::with_capacity(opaque_indices.len());
    for (p, &index) in rgba.chunks_exact(4).zip(&opaque_indices) {
        if p[3] == u8::MAX {
            let entry = opaque_palette.get(usize::from(index))?;
            for (a, b) in entry.iter().zip(p) {
                max_error = max_error.max(a.abs_diff(*b));
            }
            indices.push(u8::try_from(offset + usize::from(index)).ok()?);
        } else {
            let colour = [p[0], p[1], p[2], p[3]];
            let entry = translucent.iter().position(|c| *c == colour)?;
            indices.push(u8::try_from(entry).ok()?);
        }
    }
    if max_error > PALETTE_MAX_ERROR {
        return None;
    }
    let mut palette: Vec<[u8; 4]> = translucent;
    palette.extend(opaque_palette.iter().map(|&[r, g, b]| [r, g, b, u8::MAX]));
    Some(Indexed { palette, indices })
}

/// Writes `compressed` (the zlib stream of rows of `color` pixels, each after its filter byte)
/// as a PNG's one `IDAT` chunk, with `palette` for indexed pictures (its alphas as `tRNS` when
/// any is below 255).
fn write(
    compressed: &[u8],
    width: u32,
    height: u32,
    color: png::ColorType,
    palette: Option<&[[u8; 4]]>,
) -> Result<Vec<u8>, RenderError> {
    // A palette's alphas up to its last translucent entry (none when every entry is opaque).
    let alphas = palette.and_then(|palette| {
        let last_translucent = palette.iter().rposition(|c| c[3] != u8::MAX)?;
        Some(
            palette[..=last_translucent]
                .iter()
                .map(|c| c[3])
                .collect::<Vec<u8>>(),
        )
    });
    // Kept in the render cache, which weighs the length: sized exactly, for the signature,
    // IHDR, PLTE and tRNS, IDAT and IEND.
    let chunks = 8
        + 25
        + palette.map_or(0, |p| 12 + 3 * p.len())
        + alphas.as_ref().map_or(0, |a| 12 + a.len())
        + 12
        + 12;
    let mut out = Vec::with_capacity(chunks + compressed.len());
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    if let Some(palette) = palette {
        encoder.set_palette(
            palette
                .iter()
                .flat_map(|c| [c[0], c[1], c[2]])
                .collect::<Vec<u8>>(),
        );
    }
    if let Some(alphas) = alphas {
        encoder.set_trns(alphas);
    }
    let encode_error = |e: png::EncodingError| RenderError::Encode(e.to_string());
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer
        .write_chunk(png::chunk::IDAT, compressed)
        .map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    Ok(out)
}

/// A fully transparent PNG: invisible, but never a broken-image icon.
pub fn transparent_png(width: u32, height: u32) -> Result<Bytes, RenderError> {
    let pixmap = Pixmap::new(width.max(1), height.max(1))
        .ok_or_else(|| RenderError::Encode(format!("cannot allocate {width}×{height}")))?;
    Ok(Bytes::from(encode(&pixmap)?))
}

/// A 1×1 transparent PNG (the answer to image URLs that name nothing).
pub fn transparent_pixel_png() -> Bytes {
    transparent_png(1, 1).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use resvg::tiny_skia::Color;

    fn decode(bytes: &[u8]) -> image::RgbaImage {
        image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
            .unwrap()
            .to_rgba8()
    }

    #[test]
    fn opaque_pixmaps_round_trip() {
        let mut pixmap = Pixmap::new(3, 2).unwrap();
        pixmap.fill(Color::from_rgba8(10, 200, 30, 255));
        let bytes = encode(&pixmap).unwrap();
        let image = decode(&bytes);
        assert_eq!((image.width(), image.height()), (3, 2));
        assert_eq!(image.get_pixel(2, 1).0, [10, 200, 30, 255]);
    }

    /// The colour type byte of the PNG's header (2 = RGB, 3 = indexed, 6 = RGBA).
    fn colour_type(bytes: &[u8]) -> u8 {
        bytes[25]
    }

    fn max_channel_difference(a: &image::RgbaImage, b: &image::RgbaImage) -> u8 {
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// A 300×40 gradient over more than 256 colours, horizontal and (in green) vertical, so no
    /// row repeats another; with rounded (translucent) corners.
    fn gradient_card() -> Pixmap {
        let mut pixmap = Pixmap::new(300, 40).unwrap();
        for y in 0..40 {
            for x in 0..300u32 {
                let (t, u) = (x as f32 / 299.0, y as f32 / 39.0);
                let corner = !(2..=297).contains(&x) && !(2..=37).contains(&y);
                let alpha = if corner { 0.5 } else { 1.0 };
                let colour =
                    Color::from_rgba(0.1 + 0.6 * t, 0.2 + 0.3 * u, 0.9 - 0.7 * t, alpha).unwrap();
                pixmap.fill_rect(
                    resvg::tiny_skia::Rect::from_xywh(x as f32, y as f32, 1.0, 1.0).unwrap(),
                    &resvg::tiny_skia::Paint {
                        shader: resvg::tiny_skia::Shader::SolidColor(colour),
                        blend_mode: resvg::tiny_skia::BlendMode::Source,
                        ..Default::default()
                    },
                    resvg::tiny_skia::Transform::identity(),
                    None,
                );
            }
        }
        pixmap
    }

    #[test]
    fn opaque_pixmaps_are_written_as_rgb_and_translucent_ones_as_rgba() {
        let mut pixmap = Pixmap::new(4, 4).unwrap();
        pixmap.fill(Color::from_rgba8(10, 200, 30, 255));
        assert_eq!(colour_type(&encode(&pixmap).unwrap()), 2);
        let card = gradient_card();
        let bytes = encode(&card).unwrap();
        assert_eq!(colour_type(&bytes), 6);
        assert_eq!(decode(&bytes).get_pixel(0, 0).0[3], 128);
        // One translucent pixel, in the last row: RGBA, every pixel as it was.
        let mut late = Pixmap::new(5, 3).unwrap();
        late.fill(Color::from_rgba8(10, 200, 30, 255));
        late.fill_rect(
            resvg::tiny_skia::Rect::from_xywh(4.0, 2.0, 1.0, 1.0).unwrap(),
            &resvg::tiny_skia::Paint {
                blend_mode: resvg::tiny_skia::BlendMode::Source,
                shader: resvg::tiny_skia::Shader::SolidColor(Color::from_rgba8(10, 200, 30, 51)),
                ..Default::default()
            },
            resvg::tiny_skia::Transform::identity(),
            None,
        );
        let bytes = encode(&late).unwrap();
        assert_eq!(colour_type(&bytes), 6);
        let decoded = decode(&bytes);
        assert_eq!(decoded.get_pixel(0, 0).0, [10, 200, 30, 255]);
        assert_eq!(decoded.get_pixel(4, 2).0[3], 51);
    }

    #[test]
    fn a_palette_keeps_few_colours_exactly() {
        let mut pixmap = Pixmap::new(8, 8).unwrap();
        pixmap.fill(Color::from_rgba8(10, 200, 30, 255));
        pixmap.fill_rect(
            resvg::tiny_skia::Rect::from_xywh(0.0, 0.0, 4.0, 4.0).unwrap(),
            &resvg::tiny_skia::Paint::default(),
            resvg::tiny_skia::Transform::identity(),
            None,
        );
        let bytes = encode_as(&pixmap, PngMode::Palette, None).unwrap();
        assert_eq!(colour_type(&bytes), 3);
        assert_eq!(decode(&bytes), decode(&encode(&pixmap).unwrap()));
    }

    #[test]
    fn a_palette_of_a_gradient_stays_within_the_stated_error_and_keeps_translucent_pixels() {
        let card = gradient_card();
        let exact = decode(&encode(&card).unwrap());
        let bytes = encode_as(&card, PngMode::Palette, None).unwrap();
        assert_eq!(colour_type(&bytes), 3, "a palette was used");
        let indexed = decode(&bytes);
        assert!(max_channel_difference(&exact, &indexed) <= PALETTE_MAX_ERROR);
        assert_eq!(
            indexed.get_pixel(0, 0),
            exact.get_pixel(0, 0),
            "corners exact"
        );
        assert!(bytes.len() < encode(&card).unwrap().len());
    }

    #[test]
    fn noise_no_palette_can_keep_is_written_losslessly() {
        let mut pixmap = Pixmap::new(64, 64).unwrap();
        let mut state = 0x2545_f491_u32;
        for byte in pixmap.data_mut().chunks_exact_mut(4) {
            for channel in &mut byte[..3] {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *channel = (state >> 24) as u8;
            }
            byte[3] = 255;
        }
        let bytes = encode_as(&pixmap, PngMode::Palette, None).unwrap();
        assert_eq!(colour_type(&bytes), 2, "lossless RGB");
        assert_eq!(decode(&bytes), decode(&encode(&pixmap).unwrap()));
    }

    #[test]
    fn pngs_hold_no_spare_capacity() {
        // The render cache weighs a PNG by its length: its capacity must be no larger.
        let mut opaque = Pixmap::new(4, 4).unwrap();
        opaque.fill(Color::from_rgba8(10, 200, 30, 255));
        let card = gradient_card();
        for bytes in [
            encode(&opaque).unwrap(),
            encode(&card).unwrap(),
            encode_as(&opaque, PngMode::Palette, None).unwrap(),
            encode_as(&card, PngMode::Palette, None).unwrap(),
        ] {
            assert_eq!(bytes.capacity(), bytes.len());
        }
    }

    #[test]
    fn translucent_pixmaps_keep_straight_alpha() {
        let mut pixmap = Pixmap::new(1, 1).unwrap();
        pixmap.fill(Color::from_rgba8(200, 100, 0, 128));
        let image = decode(&encode(&pixmap).unwrap());
        let [r, g, b, a] = image.get_pixel(0, 0).0;
        assert_eq!(a, 128);
        assert!(
            r.abs_diff(200) <= 1 && g.abs_diff(100) <= 1 && b == 0,
            "{r} {g} {b}"
        );
    }
}
