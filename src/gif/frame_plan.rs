//! Frame planning: each frame cut down to the rectangle of pixels that really changed on the
//! viewer's canvas, with unchanged pixels inside it turned into the transparent index, frames
//! that change nothing folded into the previous delay, and background disposal where pixels
//! go from opaque to transparent.

use ::gif::DisposalMethod;

use super::palette::Palette;
use super::{AnimationFrame, Patch};

/// An integer rectangle on the canvas (`x1`, `y1` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rect {
    pub(super) x0: usize,
    pub(super) y0: usize,
    pub(super) x1: usize,
    pub(super) y1: usize,
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

    pub(super) fn width(&self) -> usize {
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
pub(super) struct PlannedFrame {
    pub(super) rect: Rect,
    /// Of the two forms that draw the same picture — the pixels that did not change as the
    /// transparent index, or every pixel in its own colour — the one with fewer colour changes
    /// ([`fewer_changes`]).
    pub(super) pixels: Vec<u8>,
    pub(super) delay: u16,
    pub(super) dispose: DisposalMethod,
}

/// Cuts each frame down to what changed, keeping `canvas` = what a viewer shows.
pub(super) fn plan_frames(
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
        let mut shown = Vec::with_capacity(pixels.capacity());
        for y in rect.y0..rect.y1 {
            let new =
                &next[(y - region.y0) * region.width() + (rect.x0 - region.x0)..][..rect.width()];
            let old = &canvas[y * w + rect.x0..][..rect.width()];
            shown.extend_from_slice(new);
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
            pixels: fewer_changes(pixels, shown),
            delay: f.delay_cs,
            dispose: DisposalMethod::Keep,
        });
    }
    out
}

/// Of two forms of a frame, the one with fewer colour changes along its rows: LZW writes long
/// runs cheaply. A digit redrawn in full over a plain background usually beats the same digit
/// with its unchanged pixels made transparent (in the demo countdown, by the compressed bytes
/// always but once, by 2%). Palette order cannot change the choice: renumbering keeps every
/// change a change.
fn fewer_changes(unchanged_transparent: Vec<u8>, own_colours: Vec<u8>) -> Vec<u8> {
    if colour_changes(&own_colours) < colour_changes(&unchanged_transparent) {
        own_colours
    } else {
        unchanged_transparent
    }
}

/// Neighbouring pixels of different indices (row ends included: LZW sees one stream).
fn colour_changes(pixels: &[u8]) -> usize {
    pixels.windows(2).filter(|w| w[0] != w[1]).count()
}

fn extract(canvas: &[u8], w: usize, r: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.width() * (r.y1 - r.y0));
    for y in r.y0..r.y1 {
        out.extend_from_slice(&canvas[y * w + r.x0..y * w + r.x1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::gif::decode::decode;
    use crate::gif::testkit::{frame, solid, BLUE, CLEAR, RED};
    use crate::gif::{encode_animation, Looping};

    #[test]
    fn unchanged_frames_fold_into_the_delay() {
        let frames = vec![
            frame(solid(0, 0, 8, 8, RED), 100),
            frame(solid(1, 1, 2, 2, RED), 100),
            frame(solid(1, 1, 2, 2, BLUE), 100),
            frame(solid(1, 1, 2, 2, BLUE), 100),
        ];
        let gif = encode_animation(8, 8, &frames, Looping::Once).expect("encodes");
        let d = decode(&gif.bytes).expect("decodes");
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
        let d = decode(&gif.bytes).expect("decodes");
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
}
