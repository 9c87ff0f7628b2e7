//! A PNG's scanlines deflated in bands of rows that later renders reuse.
//!
//! The cards of one block share most of their rows from one subscriber to the next (the frame,
//! the header, an empty item row, the footer), and deflating is a third of a render.
//! So the rows are cut into bands — each at least [`MIN_BAND_BYTES`] of scanlines and ending at
//! the first row that repeats the row above it (a gap in the layout), or at [`MAX_BAND_BYTES`]
//! — and each band is deflated on its own: a fresh raw deflate stream, ended by a sync flush
//! (the last band: by the final block). A band that starts where no row repeats (within a
//! gradient) gets the row above as its preset dictionary: the decoder has just written that
//! row, so the band's first row can still refer to it. A band's bytes then depend on its rows,
//! that row above when it has one, and whether it is last, and are kept by a 128-bit hash of
//! those ([`KeptBands`]). The zlib stream is the bands' bytes in order and the Adler-32 of all
//! the scanlines, combined from the bands' own (the way `pigz` joins the blocks it deflates
//! apart).
//!
//! Cutting at gaps keeps a changed text to the bands it is drawn in; each band's own Huffman
//! codes and fresh start cost under 1% more bytes than one stream on the demo blocks (the
//! bench's *PNG* table).

use super::kept_bytes::{self, KeptBytes, ReuseCounts};
use super::RenderError;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

/// Scanline bytes a band holds at least (27 rows of a 600-pixel RGBA card, 36 of an opaque
/// one). Each band is a Huffman block of its own, and a block costs about 11 µs to build and
/// flush whatever its size (a sync flush every 32 KiB made the cart's deflate 1.5× as slow as
/// one stream), while smaller bands are reused only a little more often: a card's item row is
/// taller than a band either way. Against 32 KiB bands, in the same run: the cart's first
/// encode +0.24 ms over the previous encoder instead of +0.30, the campaign stream 4.52–4.54×
/// the baseline instead of 4.44–4.48×.
const MIN_BAND_BYTES: usize = 64 * 1024;

/// Scanline bytes a band holds at most when no row repeats the one above (a gradient).
const MAX_BAND_BYTES: usize = 128 * 1024;

/// zlib-rs's level: on rendered blocks (flat colours, gradients, anti-aliased edges, unfiltered
/// rows) the best bytes for the time (see `png.rs`).
const LEVEL: i32 = 2;

/// Bytes of deflated bands kept across renders: the bands of about 1,300 different 600×300
/// cards (the demo cart's come to 25 KB).
const KEPT_BYTES: u64 = 32 * 1024 * 1024;

/// Deflated bands a full cache holds, at most about: a band of a card deflates to 1–10 KB (the
/// demo cart's seven bands to 3.6 KB on average), so a full cache holds some 9,000.
const ESTIMATED_BANDS: usize = 16 * 1024;

/// zlib's header for a 32 KiB window at a fast level (`FLEVEL` 1).
const ZLIB_HEADER: [u8; 2] = [0x78, 0x5e];

/// An empty final block with fixed codes: the whole deflate stream of a picture with no rows.
const EMPTY_FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One band deflated: raw deflate blocks ending on a byte boundary (non-final ones, but for the
/// last band), and the Adler-32 and length of the scanlines it holds.
struct DeflatedBand {
    bytes: Box<[u8]>,
    adler: u32,
    scanline_bytes: u64,
}

/// Deflated bands kept across renders, by a hash of their pixels and of how their scanlines
/// are made (colour type, width). Capped at [`KEPT_BYTES`].
pub(crate) struct KeptBands {
    kept: KeptBytes<u128, Arc<DeflatedBand>>,
    /// Bands reused, and bands deflated anew.
    counts: ReuseCounts,
}

impl Default for KeptBands {
    fn default() -> Self {
        Self {
            kept: kept_bytes::cache(ESTIMATED_BANDS, KEPT_BYTES, |band| {
                band.bytes.len() as u64 + 64
            }),
            counts: ReuseCounts::default(),
        }
    }
}

impl KeptBands {
    /// Forgets every kept band.
    pub(crate) fn clear(&self) {
        self.kept.clear();
    }

    /// Bands reused and bands deflated anew, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.counts.get()
    }

    /// Bytes held, as weighed against the cap.
    pub(crate) fn weighed_bytes(&self) -> u64 {
        self.kept.weight()
    }
}

/// A picture's rows as deflate sees them.
pub(crate) struct Rows<'a, F> {
    /// The pixels scanlines are made of, row after row (e.g. a pixmap's premultiplied RGBA).
    pub pixels: &'a [u8],
    pub height: usize,
    /// What besides the pixels decides the scanlines (colour type, width): part of each band's
    /// key.
    pub form: u64,
    /// Bytes per scanline, its filter byte included.
    pub scanline_bytes: usize,
    /// Appends the scanlines of rows `range` to the buffer.
    pub scanlines: F,
}

/// The zlib stream of `rows`' scanlines, each band taken from `kept` when it holds it (and
/// kept there when deflated anew).
pub(crate) fn zlib<F>(rows: &Rows<'_, F>, kept: Option<&KeptBands>) -> Result<Vec<u8>, RenderError>
where
    F: Fn(Range<usize>, &mut Vec<u8>),
{
    let pixel_row_bytes = rows.pixels.len().checked_div(rows.height).unwrap_or(0);
    let min_rows = (MIN_BAND_BYTES / rows.scanline_bytes.max(1)).max(1);
    let max_rows = (MAX_BAND_BYTES / rows.scanline_bytes.max(1)).max(min_rows);
    let pixel_row = |row: usize| {
        rows.pixels
            .get(row * pixel_row_bytes..(row + 1) * pixel_row_bytes)
            .unwrap_or_default()
    };
    let mut stream = Vec::with_capacity(rows.pixels.len() / 24);
    stream.extend_from_slice(&ZLIB_HEADER);
    let mut adler = 1;
    WORKSPACE.with_borrow_mut(|workspace| {
        let workspace = workspace.get_or_insert_with(Workspace::new);
        let mut start = 0;
        // Whether `start` repeats the row above (the band before ended at a gap).
        let mut at_gap = false;
        while start < rows.height {
            // The band ends at the first row after `min_rows` that repeats the row above (a
            // gap in the layout), or after `max_rows`.
            let gap = (start + min_rows..(start + max_rows).min(rows.height))
                .find(|&row| pixel_row(row) == pixel_row(row - 1));
            let end = gap.unwrap_or((start + max_rows).min(rows.height));
            // A band that starts within a picture (a gradient) has the row above as its
            // dictionary: part of what decides its bytes, so hashed with them. One that starts
            // at a gap needs none (its first row is a copy of the row above, which costs little
            // on its own in a layout's gaps) and is then kept by its own rows alone, wherever
            // it is drawn. The key also says whether the band ends the stream.
            let above = usize::from(start > 0 && !at_gap);
            at_gap = gap.is_some();
            let last = end == rows.height;
            let pixels = rows
                .pixels
                .get((start - above) * pixel_row_bytes..end * pixel_row_bytes)
                .unwrap_or_default();
            let key = xxhash_rust::xxh3::xxh3_128_with_seed(
                pixels,
                rows.form << 2 | u64::from(last) << 1 | above as u64,
            );
            let band = match kept.and_then(|kept| Some((kept, kept.kept.get(&key)?))) {
                Some((kept, band)) => {
                    kept.counts.reused();
                    band
                }
                None => {
                    workspace.scanlines.clear();
                    (rows.scanlines)(start - above..end, &mut workspace.scanlines);
                    let band = Arc::new(workspace.deflate_band(above * rows.scanline_bytes, last)?);
                    if let Some(kept) = kept {
                        kept.counts.made();
                        kept.kept.insert(key, Arc::clone(&band));
                    }
                    band
                }
            };
            stream.extend_from_slice(&band.bytes);
            adler = zlib_rs::adler32::adler32_combine(adler, band.adler, band.scanline_bytes);
            start = end;
        }
        Ok::<_, RenderError>(())
    })?;
    if rows.height == 0 {
        stream.extend_from_slice(&EMPTY_FINAL_BLOCK);
    }
    stream.extend_from_slice(&adler.to_be_bytes());
    Ok(stream)
}

thread_local! {
    /// Each rendering thread's deflate state and buffers, made once (the state alone is about
    /// 300 KB, which a fresh allocation per render would also have to fault in).
    static WORKSPACE: RefCell<Option<Workspace>> = const { RefCell::new(None) };
}

struct Workspace {
    deflate: zlib_rs::Deflate,
    scanlines: Vec<u8>,
    out: Vec<u8>,
}

impl Workspace {
    fn new() -> Self {
        Self {
            deflate: zlib_rs::Deflate::new(LEVEL, false, 15),
            scanlines: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The scanlines now in the workspace after the first `dictionary` bytes (the row above,
    /// which the decoder will have just read) as one band: a fresh raw stream, sync-flushed,
    /// or finished when the band is the `last`.
    fn deflate_band(&mut self, dictionary: usize, last: bool) -> Result<DeflatedBand, RenderError> {
        let flush = if last {
            zlib_rs::DeflateFlush::Finish
        } else {
            zlib_rs::DeflateFlush::SyncFlush
        };
        let (dictionary, input) = self
            .scanlines
            .split_at(dictionary.min(self.scanlines.len()));
        self.deflate.reset();
        if !dictionary.is_empty() {
            self.deflate
                .set_dictionary(dictionary)
                .map_err(|e| RenderError::Encode(format!("deflate: {}", e.as_str())))?;
        }
        // Room for incompressible rows; grown below should it ever fall short.
        let room = zlib_rs::compress_bound(input.len()) + 64;
        if self.out.len() < room {
            self.out.resize(room, 0);
        }
        loop {
            let (read, written) = (
                self.deflate.total_in() as usize,
                self.deflate.total_out() as usize,
            );
            let status = self
                .deflate
                .compress(
                    input.get(read..).unwrap_or_default(),
                    self.out.get_mut(written..).unwrap_or_default(),
                    flush,
                )
                .map_err(|e| RenderError::Encode(format!("deflate: {}", e.as_str())))?;
            let written = self.deflate.total_out() as usize;
            // Finished, or flushed: every byte read and the output not filled.
            let done = match flush {
                zlib_rs::DeflateFlush::Finish => status == zlib_rs::Status::StreamEnd,
                _ => self.deflate.total_in() as usize == input.len() && written < self.out.len(),
            };
            if done {
                return Ok(DeflatedBand {
                    bytes: self.out[..written].into(),
                    adler: zlib_rs::adler32::adler32(1, input),
                    scanline_bytes: input.len() as u64,
                });
            }
            let grown = self.out.len() * 2;
            self.out.resize(grown, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `width` one-byte pixels, each scanline a zero filter byte and the row.
    fn byte_rows(
        pixels: &[u8],
        width: usize,
    ) -> Rows<'_, impl Fn(Range<usize>, &mut Vec<u8>) + '_> {
        Rows {
            pixels,
            height: pixels.len() / width,
            form: width as u64,
            scanline_bytes: width + 1,
            scanlines: move |range: Range<usize>, out: &mut Vec<u8>| {
                for row in pixels[range.start * width..range.end * width].chunks_exact(width) {
                    out.push(0);
                    out.extend_from_slice(row);
                }
            },
        }
    }

    /// Every scanline of `pixels` as rows of `width`.
    fn scanlines(pixels: &[u8], width: usize) -> Vec<u8> {
        let mut out = Vec::new();
        (byte_rows(pixels, width).scanlines)(0..pixels.len() / width, &mut out);
        out
    }

    /// `stream` inflated, its Adler-32 checked; at most `len` bytes are expected.
    fn inflate(stream: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0; len + 64];
        let (inflated, code) =
            zlib_rs::decompress_slice(&mut out, stream, zlib_rs::InflateConfig::default());
        assert_eq!(code, zlib_rs::ReturnCode::Ok, "a valid zlib stream");
        inflated.to_vec()
    }

    /// A picture of `height` rows of 1,000 bytes: a diagonal gradient (no row repeats the one
    /// above), with the rows `noisy` made of noise from `seed`.
    fn picture(height: usize, noisy: Range<usize>, seed: u32) -> Vec<u8> {
        let mut state = seed | 1;
        let mut pixels = Vec::with_capacity(height * 1000);
        for y in 0..height {
            for x in 0..1000 {
                let value = if noisy.contains(&y) {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                } else {
                    ((x + y) / 7) as u8
                };
                pixels.push(value);
            }
        }
        pixels
    }

    /// Rows per band of a picture 1,000 bytes wide in which no row repeats the one above.
    const FULL_BAND: usize = MAX_BAND_BYTES / 1001;

    /// Rows of a test picture: three bands, the last one shorter.
    const TALL: usize = 3 * FULL_BAND - 50;

    /// Noisy rows within the second band.
    const IN_SECOND_BAND: Range<usize> = FULL_BAND + 10..FULL_BAND + 15;

    #[test]
    fn bands_join_into_one_valid_zlib_stream() {
        let pixels = picture(TALL, IN_SECOND_BAND, 7);
        let stream = zlib(&byte_rows(&pixels, 1000), None).unwrap();
        let expected = scanlines(&pixels, 1000);
        assert_eq!(inflate(&stream, expected.len()), expected);
        assert!(stream.len() < expected.len() / 4, "{} bytes", stream.len());
    }

    #[test]
    fn kept_bands_are_reused_and_give_the_same_bytes() {
        let kept = KeptBands::default();
        let first = picture(TALL, IN_SECOND_BAND, 7);
        let alone = zlib(&byte_rows(&first, 1000), None).unwrap();
        let stored = zlib(&byte_rows(&first, 1000), Some(&kept)).unwrap();
        assert_eq!(stored, alone, "keeping changes nothing in the bytes");
        let bands = TALL.div_ceil(FULL_BAND);
        assert_eq!(kept.counts(), (0, bands as u64));
        // Other noise in the second band: that band alone is deflated anew.
        let second = picture(TALL, IN_SECOND_BAND, 99);
        let stream = zlib(&byte_rows(&second, 1000), Some(&kept)).unwrap();
        assert_eq!(kept.counts(), (bands as u64 - 1, bands as u64 + 1));
        let expected = scanlines(&second, 1000);
        assert_eq!(inflate(&stream, expected.len()), expected);
        assert_eq!(stream, zlib(&byte_rows(&second, 1000), None).unwrap());
    }

    #[test]
    fn a_changed_last_row_spoils_the_next_band_too() {
        // The next band refers to that row (its dictionary): reusing it would copy the old row.
        let kept = KeptBands::default();
        let first = picture(TALL, FULL_BAND - 1..FULL_BAND, 7);
        zlib(&byte_rows(&first, 1000), Some(&kept)).unwrap();
        let second = picture(TALL, FULL_BAND - 1..FULL_BAND, 99);
        let stream = zlib(&byte_rows(&second, 1000), Some(&kept)).unwrap();
        let bands = TALL.div_ceil(FULL_BAND) as u64;
        assert_eq!(kept.counts(), (bands - 2, bands + 2));
        let expected = scanlines(&second, 1000);
        assert_eq!(inflate(&stream, expected.len()), expected);
    }

    #[test]
    fn bands_end_at_gaps_so_a_shifted_card_still_reuses_its_bands() {
        // Blocks of noise between gaps of repeated rows; the second picture has three more
        // rows at the top: its bands start elsewhere, but end at the same gaps.
        let block = |seed: u32| picture(20, 0..20, seed);
        let gap = vec![200u8; 1000 * 4];
        let mut first = Vec::new();
        for seed in [2, 4, 6, 8, 10, 12, 14, 16] {
            first.extend_from_slice(&block(seed));
            first.extend_from_slice(&gap);
        }
        let mut second = vec![9u8; 1000 * 3];
        second.extend_from_slice(&first);
        let kept = KeptBands::default();
        zlib(&byte_rows(&first, 1000), Some(&kept)).unwrap();
        let (_, bands) = kept.counts();
        assert!(bands >= 3, "{bands} bands");
        let stream = zlib(&byte_rows(&second, 1000), Some(&kept)).unwrap();
        let (reused, deflated) = kept.counts();
        assert_eq!(reused, bands - 1, "all but the first band reused");
        assert_eq!(deflated, bands + 1);
        let expected = scanlines(&second, 1000);
        assert_eq!(inflate(&stream, expected.len()), expected);
    }

    #[test]
    fn the_form_keeps_same_bytes_of_different_pictures_apart() {
        let kept = KeptBands::default();
        let pixels = picture(30, 0..30, 3);
        zlib(&byte_rows(&pixels, 1000), Some(&kept)).unwrap();
        // The same bytes as rows of 500: other scanlines, so not the kept bands.
        let stream = zlib(&byte_rows(&pixels, 500), Some(&kept)).unwrap();
        assert_eq!(kept.counts().0, 0);
        let expected = scanlines(&pixels, 500);
        assert_eq!(inflate(&stream, expected.len()), expected);
    }

    #[test]
    fn an_empty_picture_is_an_empty_stream() {
        let stream = zlib(&byte_rows(&[], 10), None).unwrap();
        assert!(inflate(&stream, 0).is_empty());
    }
}
