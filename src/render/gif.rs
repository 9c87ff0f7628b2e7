//! GIF encoding: one fixed palette for the whole animation and frames that only carry the
//! rectangle that changed.
//!
//! Input is RGBA in tiny-skia's premultiplied layout: a full first frame, then *patches*
//! (rectangles of new pixels over the previous picture). The palette is built once from every
//! colour the frames use: exact when they fit in 255 entries (one index stays free for
//! transparency), otherwise a weighted median cut, so there is no per-frame quantization
//! noise. Each later frame is cut down to the bounding box of the pixels that really changed,
//! and unchanged pixels inside it become the transparent index (long runs that LZW loves).
//! LZW compression is the `gif` crate's own (weezl).
//! Frames that change nothing are folded into the previous frame's delay.

use std::borrow::Cow;

use gif::{DisposalMethod, Encoder, Frame, Repeat};

/// Largest canvas side we encode.
pub const MAX_SIDE: u32 = 4096;

/// A rectangle of new pixels in premultiplied RGBA (tiny-skia's `Pixmap::data` layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// `width * height * 4` bytes, rows top to bottom.
    pub rgba: Vec<u8>,
}

/// One animation step: paint `patch` over the current picture, then show it for `delay_cs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnimationFrame {
    pub patch: Patch,
    /// Display time in centiseconds (GIF's unit).
    pub delay_cs: u16,
}

/// Whether the animation restarts after its last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Looping {
    /// A NETSCAPE2.0 extension with a repeat count of 0 (forever).
    #[default]
    Forever,
    /// No loop extension: plays once and stays on the last frame.
    Once,
}

/// An encoded GIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedGif {
    pub bytes: Vec<u8>,
    /// Frames in the file (after folding frames that changed nothing).
    pub frames: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GifError {
    #[error("gif: no frames")]
    NoFrames,
    #[error("gif: canvas size {0}x{1} out of range")]
    BadSize(u32, u32),
    #[error("gif: the first frame must cover the whole canvas")]
    FirstFrameNotFull,
    #[error("gif: frame {0} lies outside the canvas or has the wrong byte length")]
    BadPatch(usize),
    #[error("gif: {0}")]
    Encode(#[from] gif::EncodingError),
}

/// Encodes an animation of `width` × `height` pixels.
pub fn encode_animation(
    width: u32,
    height: u32,
    frames: &[AnimationFrame],
    looping: Looping,
) -> Result<EncodedGif, GifError> {
    let (w16, h16) = check_size(width, height)?;
    let first = frames.first().ok_or(GifError::NoFrames)?;
    if (
        first.patch.x,
        first.patch.y,
        first.patch.width,
        first.patch.height,
    ) != (0, 0, width, height)
    {
        return Err(GifError::FirstFrameNotFull);
    }
    for (i, f) in frames.iter().enumerate() {
        check_patch(&f.patch, width, height).ok_or(GifError::BadPatch(i))?;
    }
    let palette = Palette::build(frames.iter().map(|f| &f.patch));
    let planned = plan_frames(width, height, frames, &palette);
    write_gif(w16, h16, &palette, &planned, looping)
}

/// Encodes one still picture (the expired state, or the first frame for Outlook).
pub fn encode_still(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, GifError> {
    let frame = AnimationFrame {
        patch: Patch {
            x: 0,
            y: 0,
            width,
            height,
            rgba: rgba.to_vec(),
        },
        delay_cs: 0,
    };
    Ok(encode_animation(width, height, std::slice::from_ref(&frame), Looping::Once)?.bytes)
}

fn check_size(width: u32, height: u32) -> Result<(u16, u16), GifError> {
    let ok = (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height);
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if ok => Ok((w, h)),
        _ => Err(GifError::BadSize(width, height)),
    }
}

fn check_patch(p: &Patch, width: u32, height: u32) -> Option<()> {
    let right = p.x.checked_add(p.width)?;
    let bottom = p.y.checked_add(p.height)?;
    let len = (p.width as usize)
        .checked_mul(p.height as usize)?
        .checked_mul(4)?;
    (p.width > 0 && p.height > 0 && right <= width && bottom <= height && p.rgba.len() == len)
        .then_some(())
}

/// A pixel as one `u32` (`r | g << 8 | b << 16 | a << 24`).
#[inline]
fn pixel(px: &[u8]) -> u32 {
    u32::from_le_bytes([px[0], px[1], px[2], px[3]])
}

/// The colour a premultiplied pixel shows in a GIF: opaque straight RGB, or `TRANSPARENT_KEY`
/// for pixels less than half covered (GIF transparency is one bit).
#[inline]
fn canonical(px: u32) -> u32 {
    let a = px >> 24;
    if a == 255 {
        px
    } else if a < 128 {
        TRANSPARENT_KEY
    } else {
        let un = |c: u32| ((c * 255 + a / 2) / a).min(255);
        un(px & 0xFF) | un((px >> 8) & 0xFF) << 8 | un((px >> 16) & 0xFF) << 16 | 0xFF00_0000
    }
}

const TRANSPARENT_KEY: u32 = 0;

/// Open-addressing map from a raw premultiplied pixel to a value, for exact, fast lookups.
struct ColourMap {
    keys: Vec<u32>,
    values: Vec<u32>,
    len: usize,
    shift: u32,
}

/// No real pixel has alpha 0 and a non-zero colour in premultiplied form.
const EMPTY: u32 = 1;

impl ColourMap {
    fn new() -> Self {
        ColourMap {
            keys: vec![EMPTY; 1024],
            values: vec![0; 1024],
            len: 0,
            shift: 32 - 10,
        }
    }

    #[inline]
    fn slot(&self, key: u32) -> usize {
        let mut i = (key.wrapping_mul(0x9E37_79B1) >> self.shift) as usize;
        let mask = self.keys.len() - 1;
        while self.keys[i] != key && self.keys[i] != EMPTY {
            i = (i + 1) & mask;
        }
        i
    }

    #[inline]
    fn get(&self, key: u32) -> Option<u32> {
        let i = self.slot(key);
        (self.keys[i] == key).then(|| self.values[i])
    }

    /// The value slot for `key`, inserted as `0` when new.
    #[inline]
    fn entry(&mut self, key: u32) -> &mut u32 {
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let i = self.slot(key);
        if self.keys[i] == EMPTY {
            self.keys[i] = key;
            self.len += 1;
        }
        &mut self.values[i]
    }

    fn grow(&mut self) {
        let old = std::mem::replace(
            self,
            ColourMap {
                keys: vec![EMPTY; self.keys.len() * 2],
                values: vec![0; self.keys.len() * 2],
                len: 0,
                shift: self.shift - 1,
            },
        );
        for (k, v) in old.keys.into_iter().zip(old.values) {
            if k != EMPTY {
                *self.entry(k) = v;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.keys
            .iter()
            .zip(&self.values)
            .filter(|(k, _)| **k != EMPTY)
            .map(|(k, v)| (*k, *v))
    }
}

/// The animation's one palette and the exact pixel → index map behind it.
struct Palette {
    /// `r, g, b` triples; the entry at `transparent` is a filler.
    rgb: Vec<u8>,
    /// The index meaning "transparent" (and "unchanged" in delta frames).
    transparent: u8,
    /// Whether any pixel is transparent (otherwise no frame ever needs clearing).
    has_transparent: bool,
    /// Raw premultiplied pixel → palette index.
    index: ColourMap,
}

/// Colours used as is up to this count; one more index is the transparent one.
const MAX_COLOURS: usize = 255;

impl Palette {
    fn build<'a>(patches: impl Iterator<Item = &'a Patch>) -> Palette {
        // Pass 1: every raw pixel value with its pixel count (runs counted at once).
        let mut counts = ColourMap::new();
        for p in patches {
            let mut run_px = EMPTY;
            let mut run_len = 0u32;
            for px in p.rgba.chunks_exact(4).map(pixel) {
                if px == run_px {
                    run_len += 1;
                    continue;
                }
                if run_len > 0 {
                    let c = counts.entry(run_px);
                    *c = c.saturating_add(run_len);
                }
                run_px = px;
                run_len = 1;
            }
            if run_len > 0 {
                let c = counts.entry(run_px);
                *c = c.saturating_add(run_len);
            }
        }
        // Distinct shown colours with their weights.
        let mut colours = ColourMap::new();
        for (raw, n) in counts.iter() {
            let c = canonical(raw);
            if c != TRANSPARENT_KEY {
                let e = colours.entry(c);
                *e = e.saturating_add(n);
            }
        }
        let mut weighted: Vec<(u32, u32)> = colours.iter().collect();
        weighted.sort_unstable();
        let chosen: Vec<u32> = if weighted.len() <= MAX_COLOURS {
            weighted.iter().map(|(c, _)| *c).collect()
        } else {
            median_cut(&weighted, MAX_COLOURS)
        };
        // Shown colour → index (exact, or nearest palette entry).
        let mut shown_index = ColourMap::new();
        for (c, _) in &weighted {
            let i = if weighted.len() <= MAX_COLOURS {
                chosen.binary_search(c).unwrap_or(0)
            } else {
                nearest(&chosen, *c)
            };
            *shown_index.entry(*c) = i as u32;
        }
        let transparent = chosen.len() as u8; // <= 255
        let mut index = ColourMap::new();
        let mut has_transparent = false;
        for (raw, _) in counts.iter() {
            let c = canonical(raw);
            has_transparent |= c == TRANSPARENT_KEY;
            let i = if c == TRANSPARENT_KEY {
                u32::from(transparent)
            } else {
                shown_index.get(c).unwrap_or(0)
            };
            *index.entry(raw) = i;
        }
        let mut rgb: Vec<u8> = chosen
            .iter()
            .flat_map(|c| [*c as u8, (c >> 8) as u8, (c >> 16) as u8])
            .collect();
        rgb.extend_from_slice(&[0, 0, 0]);
        Palette {
            rgb,
            transparent,
            has_transparent,
            index,
        }
    }

    /// Palette indices for a patch's pixels.
    fn indices(&self, p: &Patch) -> Vec<u8> {
        let mut out = Vec::with_capacity(p.rgba.len() / 4);
        let (mut last_px, mut last_i) = (EMPTY, self.transparent);
        for px in p.rgba.chunks_exact(4).map(pixel) {
            if px != last_px {
                last_px = px;
                // Every pixel was seen while building, so the lookup always hits.
                last_i = self.index.get(px).map_or(self.transparent, |i| i as u8);
            }
            out.push(last_i);
        }
        out
    }
}

fn channels(c: u32) -> [i32; 3] {
    [
        (c & 0xFF) as i32,
        ((c >> 8) & 0xFF) as i32,
        ((c >> 16) & 0xFF) as i32,
    ]
}

/// Index of the palette entry closest to `c` (squared RGB distance).
fn nearest(palette: &[u32], c: u32) -> usize {
    let [r, g, b] = channels(c);
    palette
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| {
            let [pr, pg, pb] = channels(**p);
            (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2)
        })
        .map_or(0, |(i, _)| i)
}

/// Weighted median cut of `(colour, weight)` down to at most `n` colours.
fn median_cut(colours: &[(u32, u32)], n: usize) -> Vec<u32> {
    let mut boxes: Vec<Vec<(u32, u32)>> = vec![colours.to_vec()];
    while boxes.len() < n {
        // Split the box with the widest channel range (weighted by its pixel count).
        let pick = boxes
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() > 1)
            .map(|(i, b)| {
                let (ch, range) = widest_channel(b);
                let weight: u64 = b.iter().map(|(_, w)| u64::from(*w)).sum();
                (i, ch, u64::from(range as u32) * weight.max(1))
            })
            .max_by_key(|(_, _, score)| *score);
        let Some((i, ch, _)) = pick else { break };
        let mut b = boxes.swap_remove(i);
        b.sort_unstable_by_key(|(c, _)| channels(*c)[ch]);
        let total: u64 = b.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut acc = 0u64;
        let mut cut = 1;
        for (j, (_, w)) in b.iter().enumerate() {
            acc += u64::from(*w);
            if acc * 2 >= total {
                cut = (j + 1).clamp(1, b.len() - 1);
                break;
            }
        }
        let hi = b.split_off(cut);
        boxes.push(b);
        boxes.push(hi);
    }
    boxes
        .iter()
        .map(|b| {
            let mut sum = [0u64; 3];
            let mut total = 0u64;
            for (c, w) in b {
                let w = u64::from(*w).max(1);
                for (s, v) in sum.iter_mut().zip(channels(*c)) {
                    *s += v as u64 * w;
                }
                total += w;
            }
            let avg = |s: u64| (s / total.max(1)) as u32;
            avg(sum[0]) | avg(sum[1]) << 8 | avg(sum[2]) << 16 | 0xFF00_0000
        })
        .collect()
}

fn widest_channel(b: &[(u32, u32)]) -> (usize, i32) {
    (0..3)
        .map(|ch| {
            let (lo, hi) = b.iter().fold((255, 0), |(lo, hi), (c, _)| {
                let v = channels(*c)[ch];
                (v.min(lo), v.max(hi))
            });
            (ch, hi - lo)
        })
        .max_by_key(|(_, r)| *r)
        .unwrap_or((0, 0))
}

/// An integer rectangle on the canvas (`x1`, `y1` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Rect {
    fn of(p: &Patch) -> Rect {
        Rect {
            x0: p.x as usize,
            y0: p.y as usize,
            x1: (p.x + p.width) as usize,
            y1: (p.y + p.height) as usize,
        }
    }

    fn union(self, o: Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }

    fn width(&self) -> usize {
        self.x1 - self.x0
    }
}

/// Bounding box of points, grown one point at a time.
#[derive(Default)]
struct BBox(Option<Rect>);

impl BBox {
    #[inline]
    fn add(&mut self, x: usize, y: usize) {
        let p = Rect {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        };
        self.0 = Some(self.0.map_or(p, |r| r.union(p)));
    }

    /// Adds a row segment `[x0, x1)` at `y`.
    #[inline]
    fn add_span(&mut self, y: usize, x0: usize, x1: usize) {
        self.add(x0, y);
        self.add(x1 - 1, y);
    }
}

/// A frame ready for LZW: its rectangle, indices, delay and disposal.
struct PlannedFrame {
    rect: Rect,
    pixels: Vec<u8>,
    delay: u16,
    dispose: DisposalMethod,
}

/// Cuts each frame down to what changed, keeping `canvas` = what a viewer shows.
fn plan_frames(
    width: u32,
    height: u32,
    frames: &[AnimationFrame],
    pal: &Palette,
) -> Vec<PlannedFrame> {
    let w = width as usize;
    let t = pal.transparent;
    let full = Rect {
        x0: 0,
        y0: 0,
        x1: w,
        y1: height as usize,
    };
    let mut canvas = vec![t; w * height as usize];
    let mut out: Vec<PlannedFrame> = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let idx = pal.indices(&f.patch);
        let pr = Rect::of(&f.patch);
        if i == 0 {
            canvas.copy_from_slice(&idx);
            out.push(PlannedFrame {
                rect: full,
                pixels: idx,
                delay: f.delay_cs,
                dispose: DisposalMethod::Keep,
            });
            continue;
        }
        // Pixels going from opaque to transparent cannot be drawn over a kept frame: the
        // previous frame then grows to cover them and is disposed to the background.
        let mut clears = BBox::default();
        if pal.has_transparent {
            for y in pr.y0..pr.y1 {
                let row = &idx[(y - pr.y0) * pr.width()..][..pr.width()];
                for (x, &v) in (pr.x0..).zip(row) {
                    if v == t && canvas[y * w + x] != t {
                        clears.add(x, y);
                    }
                }
            }
        }
        let mut cleared = None;
        if let (Some(c), Some(prev)) = (clears.0, out.last_mut()) {
            let grown = prev.rect.union(c);
            prev.pixels = extract(&canvas, w, grown);
            prev.rect = grown;
            prev.dispose = DisposalMethod::Background;
            cleared = Some(grown);
        }
        // What the canvas shows after this frame, over `region`.
        let (region, next) = match cleared {
            None => (pr, idx),
            Some(c) => {
                let region = pr.union(c);
                let mut next = extract(&canvas, w, region);
                for y in pr.y0..pr.y1 {
                    let src = &idx[(y - pr.y0) * pr.width()..][..pr.width()];
                    let at = (y - region.y0) * region.width() + (pr.x0 - region.x0);
                    next[at..at + pr.width()].copy_from_slice(src);
                }
                // What it shows before: the previous frame's rectangle disposed.
                for y in c.y0..c.y1 {
                    canvas[y * w + c.x0..y * w + c.x1].fill(t);
                }
                (region, next)
            }
        };
        let mut changed = BBox::default();
        for y in region.y0..region.y1 {
            let new = &next[(y - region.y0) * region.width()..][..region.width()];
            let old = &canvas[y * w + region.x0..][..region.width()];
            if new == old {
                continue;
            }
            let first = new.iter().zip(old).position(|(a, b)| a != b).unwrap_or(0);
            let last = new.iter().zip(old).rposition(|(a, b)| a != b).unwrap_or(0);
            changed.add_span(y, region.x0 + first, region.x0 + last + 1);
        }
        let rect = match (changed.0, cleared) {
            (Some(r), _) => r,
            // Only the disposal changed the picture: a one-pixel "keep" frame shows it.
            (None, Some(c)) => Rect {
                x1: c.x0 + 1,
                y1: c.y0 + 1,
                ..c
            },
            (None, None) => {
                // Nothing changed: show the previous frame longer.
                if let Some(prev) = out.last_mut() {
                    prev.delay = prev.delay.saturating_add(f.delay_cs);
                }
                continue;
            }
        };
        let mut pixels = Vec::with_capacity(rect.width() * (rect.y1 - rect.y0));
        for y in rect.y0..rect.y1 {
            let new =
                &next[(y - region.y0) * region.width() + (rect.x0 - region.x0)..][..rect.width()];
            let old = &canvas[y * w + rect.x0..][..rect.width()];
            match cleared {
                // Unchanged pixels become transparent: "keep what is there".
                None => pixels.extend(
                    new.iter()
                        .zip(old)
                        .map(|(&n, &o)| if n == o { t } else { n }),
                ),
                Some(c) => {
                    pixels.extend((rect.x0..).zip(new.iter().zip(old)).map(|(x, (&n, &o))| {
                        if n == o && !c.contains(x, y) {
                            t
                        } else {
                            n
                        }
                    }))
                }
            }
        }
        for y in region.y0..region.y1 {
            let src = &next[(y - region.y0) * region.width()..][..region.width()];
            canvas[y * w + region.x0..][..region.width()].copy_from_slice(src);
        }
        out.push(PlannedFrame {
            rect,
            pixels,
            delay: f.delay_cs,
            dispose: DisposalMethod::Keep,
        });
    }
    out
}

fn extract(canvas: &[u8], w: usize, r: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.width() * (r.y1 - r.y0));
    for y in r.y0..r.y1 {
        out.extend_from_slice(&canvas[y * w + r.x0..y * w + r.x1]);
    }
    out
}

fn write_gif(
    width: u16,
    height: u16,
    pal: &Palette,
    frames: &[PlannedFrame],
    looping: Looping,
) -> Result<EncodedGif, GifError> {
    let mut enc = Encoder::new(Vec::new(), width, height, &pal.rgb)?;
    if looping == Looping::Forever {
        enc.set_repeat(Repeat::Infinite)?;
    }
    for f in frames {
        // Indexed pixels against the global palette; the `gif` crate LZW-compresses them
        // (weezl), with the smallest code size the frame's indices allow.
        // Rect sides are within the canvas, which fits u16.
        let frame = Frame {
            delay: f.delay,
            dispose: f.dispose,
            transparent: Some(pal.transparent),
            left: f.rect.x0 as u16,
            top: f.rect.y0 as u16,
            width: f.rect.width() as u16,
            height: (f.rect.y1 - f.rect.y0) as u16,
            palette: None,
            buffer: Cow::Borrowed(&f.pixels),
            ..Frame::default()
        };
        enc.write_frame(&frame)?;
    }
    Ok(EncodedGif {
        bytes: enc.into_inner()?,
        frames: frames.len(),
    })
}

/// Test support: decodes a GIF into what a viewer shows after each frame.
#[cfg(test)]
pub(crate) mod decode {
    /// A decoded animation: straight RGBA canvases (transparent = 0), delays, loop extension.
    pub(crate) struct Decoded {
        pub width: usize,
        pub height: usize,
        pub canvases: Vec<Vec<u8>>,
        pub delays: Vec<u16>,
        pub loops_forever: bool,
        pub has_loop_extension: bool,
        pub global_palette_len: usize,
        pub local_palettes: usize,
    }

    pub(crate) fn decode(bytes: &[u8]) -> Decoded {
        let mut opts = gif::DecodeOptions::new();
        opts.set_color_output(gif::ColorOutput::RGBA);
        let mut d = opts.read_info(bytes).expect("gif header");
        let (width, height) = (usize::from(d.width()), usize::from(d.height()));
        let global_palette_len = d.global_palette().map_or(0, <[u8]>::len) / 3;
        let mut canvas = vec![0u8; width * height * 4];
        let mut canvases = Vec::new();
        let mut delays = Vec::new();
        let mut local_palettes = 0;
        let mut pending_clear: Option<(usize, usize, usize, usize)> = None;
        while let Some(f) = d.read_next_frame().expect("gif frame") {
            if let Some((l, t, fw, fh)) = pending_clear.take() {
                for y in t..t + fh {
                    canvas[(y * width + l) * 4..(y * width + l + fw) * 4].fill(0);
                }
            }
            let (l, t) = (usize::from(f.left), usize::from(f.top));
            let (fw, fh) = (usize::from(f.width), usize::from(f.height));
            for y in 0..fh {
                for x in 0..fw {
                    let src = &f.buffer[(y * fw + x) * 4..][..4];
                    if src[3] != 0 {
                        let at = ((t + y) * width + l + x) * 4;
                        canvas[at..at + 4].copy_from_slice(src);
                    }
                }
            }
            local_palettes += usize::from(f.palette.is_some());
            canvases.push(canvas.clone());
            delays.push(f.delay);
            if f.dispose == gif::DisposalMethod::Background {
                pending_clear = Some((l, t, fw, fh));
            }
        }
        let has_loop_extension = bytes.windows(11).any(|w| w == b"NETSCAPE2.0");
        Decoded {
            width,
            height,
            canvases,
            delays,
            loops_forever: d.repeat() == gif::Repeat::Infinite,
            has_loop_extension,
            global_palette_len,
            local_palettes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode::decode;
    use super::*;

    fn solid(x: u32, y: u32, w: u32, h: u32, px: [u8; 4]) -> Patch {
        Patch {
            x,
            y,
            width: w,
            height: h,
            rgba: px.repeat((w * h) as usize),
        }
    }

    fn frame(patch: Patch, delay_cs: u16) -> AnimationFrame {
        AnimationFrame { patch, delay_cs }
    }

    const RED: [u8; 4] = [255, 0, 0, 255];
    const BLUE: [u8; 4] = [0, 0, 255, 255];
    const CLEAR: [u8; 4] = [0, 0, 0, 0];

    #[test]
    fn delays_loop_and_dirty_rects() {
        let frames = vec![
            frame(solid(0, 0, 20, 10, RED), 100),
            frame(solid(5, 2, 3, 3, BLUE), 100),
            frame(solid(0, 0, 20, 10, RED), 50),
        ];
        let gif = encode_animation(20, 10, &frames, Looping::Forever).expect("encodes");
        let d = decode(&gif.bytes);
        assert_eq!(gif.frames, 3);
        assert_eq!(d.delays, vec![100, 100, 50]);
        assert!(d.loops_forever && d.has_loop_extension);
        assert_eq!(d.local_palettes, 0, "one global palette only");
        assert_eq!(&d.canvases[1][(3 * 20 + 6) * 4..][..4], &BLUE);
        assert_eq!(&d.canvases[1][(3 * 20 + 4) * 4..][..4], &RED);
        assert_eq!(d.canvases[2], d.canvases[0]);
        let once = encode_animation(20, 10, &frames, Looping::Once).expect("encodes");
        let d = decode(&once.bytes);
        assert!(!d.has_loop_extension && !d.loops_forever);
    }

    #[test]
    fn unchanged_frames_fold_into_the_delay() {
        let frames = vec![
            frame(solid(0, 0, 8, 8, RED), 100),
            frame(solid(1, 1, 2, 2, RED), 100),
            frame(solid(1, 1, 2, 2, BLUE), 100),
            frame(solid(1, 1, 2, 2, BLUE), 100),
        ];
        let gif = encode_animation(8, 8, &frames, Looping::Once).expect("encodes");
        let d = decode(&gif.bytes);
        assert_eq!(d.delays, vec![200, 200]);
    }

    #[test]
    fn opaque_to_transparent_uses_background_disposal() {
        let frames = vec![
            frame(solid(0, 0, 8, 8, CLEAR), 10),
            frame(solid(2, 2, 4, 4, RED), 10),
            frame(solid(0, 0, 8, 8, CLEAR), 10),
            frame(solid(3, 3, 1, 1, BLUE), 10),
        ];
        let gif = encode_animation(8, 8, &frames, Looping::Once).expect("encodes");
        let d = decode(&gif.bytes);
        assert!(d.canvases[0].iter().all(|&b| b == 0));
        assert_eq!(&d.canvases[1][(3 * 8 + 3) * 4..][..4], &RED);
        assert!(
            d.canvases[2].iter().all(|&b| b == 0),
            "red area cleared again"
        );
        let lit: Vec<usize> = d.canvases[3]
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, p)| p[3] != 0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lit, vec![3 * 8 + 3]);
    }

    #[test]
    fn many_colours_use_one_shared_palette() {
        let mut rgba = Vec::new();
        for i in 0..4096u32 {
            rgba.extend_from_slice(&[(i % 64 * 4) as u8, (i / 64 * 4) as u8, 128, 255]);
        }
        let frames = vec![frame(
            Patch {
                x: 0,
                y: 0,
                width: 64,
                height: 64,
                rgba: rgba.clone(),
            },
            0,
        )];
        let gif = encode_animation(64, 64, &frames, Looping::Once).expect("encodes");
        let d = decode(&gif.bytes);
        assert_eq!(d.global_palette_len, 256);
        let worst = d.canvases[0]
            .iter()
            .zip(&rgba)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(worst <= 24, "median cut error {worst}");
    }

    #[test]
    fn partial_alpha_is_demultiplied() {
        // 50% white over nothing, premultiplied: 128,128,128,128 → opaque white.
        let gif = encode_still(1, 1, &[128, 128, 128, 128]).expect("encodes");
        let d = decode(&gif);
        assert_eq!(d.canvases[0], vec![255, 255, 255, 255]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            encode_animation(0, 10, &[], Looping::Once),
            Err(GifError::BadSize(0, 10))
        ));
        assert!(matches!(
            encode_animation(4, 4, &[], Looping::Once),
            Err(GifError::NoFrames)
        ));
        let small = vec![frame(solid(0, 0, 2, 2, RED), 0)];
        assert!(matches!(
            encode_animation(4, 4, &small, Looping::Once),
            Err(GifError::FirstFrameNotFull)
        ));
        let outside = vec![
            frame(solid(0, 0, 4, 4, RED), 0),
            frame(solid(3, 3, 2, 2, RED), 0),
        ];
        assert!(matches!(
            encode_animation(4, 4, &outside, Looping::Once),
            Err(GifError::BadPatch(1))
        ));
        assert!(encode_still(2, 2, &[0; 3]).is_err());
    }
}
