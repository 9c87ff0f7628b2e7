//! The animation's one palette: every colour the frames show, exact when at most 255 of them
//! (one index stays free for transparency), otherwise a weighted median cut; and the exact map
//! from each raw premultiplied pixel to its index.

use super::Patch;

/// A pixel as one `u32` (`r | g << 8 | b << 16 | a << 24`).
#[inline]
pub(super) fn pixel(px: &[u8]) -> u32 {
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
pub(super) struct Palette {
    /// `r, g, b` triples; the entry at `transparent` is a filler.
    pub(super) rgb: Vec<u8>,
    /// The index meaning "transparent" (and "unchanged" in delta frames).
    pub(super) transparent: u8,
    /// Whether any pixel is transparent (otherwise no frame ever needs clearing).
    pub(super) has_transparent: bool,
    /// Raw premultiplied pixel → palette index.
    index: ColourMap,
}

/// Colours used as is up to this count; one more index is the transparent one.
const MAX_COLOURS: usize = 255;

impl Palette {
    pub(super) fn build<'a>(patches: impl Iterator<Item = &'a Patch>) -> Palette {
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
    pub(super) fn indices(&self, p: &Patch) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use crate::gif::decode::decode;
    use crate::gif::testkit::frame;
    use crate::gif::{encode_animation, encode_still, Looping, Patch};

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
        let d = decode(&gif.bytes).expect("decodes");
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
        let d = decode(&gif).expect("decodes");
        assert_eq!(d.canvases[0], vec![255, 255, 255, 255]);
    }
}
