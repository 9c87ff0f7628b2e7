//! Draws plain texts ([`super::plain_text`]) from kept glyph coverage instead of filling every
//! glyph's outline on every render.
//!
//! The layout is [`super::text_layout`]'s — for a text its own font has entirely, the one usvg
//! makes (the same font query, harfrust shaping with the font's kerning and ligatures, advances
//! in font units scaled by size ÷ units per em); for any other, its runs of fallback fonts and
//! directions, which usvg gets as positioned runs ([`super::text_runs`]) and lays out alike.
//! The anchor applies to the whole advance, the alphabetic baseline sits at `y`, and the glyphs
//! come from [`GlyphCoverage`], rounded to a sixteenth of a pixel. The text's coverage is the
//! sum of its glyphs' (the same as filling them as one path where glyphs do not overlap), in
//! the text's colour. A text with colour or bitmap glyphs (emoji), a variable font or a glyph
//! larger than [`MAX_PIXELS_PER_EM`] is declined, and usvg draws it.

use super::glyph_coverage::{Coverage, GlyphCoverage, GlyphKey, STEPS};
use super::glyph_fill;
use super::plain_text::{Anchor, PlainText};
use super::text_layout::{Layout, Style, Typesetter};
use resvg::tiny_skia::{IntSize, Pixmap};
use skrifa::MetadataProvider;
use std::sync::Arc;
use svgtypes::FontFamily;

/// Larger glyphs are left to usvg (their coverage would be large to keep, and such texts
/// are rare enough that drawing them directly costs little).
pub(super) const MAX_PIXELS_PER_EM: f32 = 256.0;

/// A text's pixels (premultiplied, as tiny-skia keeps them) and where they go on the canvas.
pub struct DrawnText {
    pub x: i32,
    pub y: i32,
    pub pixmap: Pixmap,
}

pub struct GlyphText {
    typesetter: Arc<Typesetter>,
    /// The families of texts that name none.
    default_families: [FontFamily; 1],
    coverage: GlyphCoverage,
}

/// A glyph's coverage and its top-left corner on the canvas.
struct Placed {
    x: i32,
    y: i32,
    coverage: Arc<Coverage>,
}

impl GlyphText {
    pub(crate) fn new(typesetter: Arc<Typesetter>, default_family: &str) -> Self {
        Self {
            typesetter,
            default_families: [FontFamily::Named(default_family.to_owned())],
            coverage: GlyphCoverage::default(),
        }
    }

    /// Bytes of the kept glyphs.
    pub fn kept_bytes(&self) -> u64 {
        self.coverage.kept_bytes()
    }

    /// Forgets every kept glyph.
    pub fn clear(&self) {
        self.coverage.clear();
    }

    /// The style `text` is set in (its families, or the default family).
    pub(crate) fn style<'a>(&'a self, text: &'a PlainText) -> Style<'a> {
        Style {
            families: if text.families.is_empty() {
                &self.default_families[..]
            } else {
                &text.families[..]
            },
            weight: text.weight,
            size: text.font_size,
        }
    }

    /// `text` laid out as the renderer draws it.
    pub(crate) fn layout(&self, text: &PlainText) -> Option<Layout> {
        self.typesetter.layout(&text.content, &self.style(text))
    }

    /// Draws `text` at `pixels_per_unit` pixels per user unit on a canvas of `canvas_width` ×
    /// `canvas_height` pixels. `None` when usvg should draw it instead, or when nothing of it
    /// lands on the canvas.
    pub fn draw(
        &self,
        text: &PlainText,
        pixels_per_unit: f32,
        canvas_width: u32,
        canvas_height: u32,
    ) -> Option<DrawnText> {
        let pixels_per_em = text.font_size * pixels_per_unit;
        if !(pixels_per_em > 0.0 && pixels_per_em <= MAX_PIXELS_PER_EM) {
            return None;
        }
        let layout = self.layout(text)?;
        if layout
            .runs
            .iter()
            .any(|run| !run.blank && !run.face.outlines_only)
        {
            return None;
        }
        let start_x = text.x
            + match text.anchor {
                Anchor::Start => 0.0,
                Anchor::Middle => -layout.advance / 2.0,
                Anchor::End => -layout.advance,
            };
        let steps = f32::from(STEPS);
        let database = self.typesetter.database();
        let mut placed = Vec::with_capacity(layout.runs.iter().map(|r| r.glyphs.len()).sum());
        for run in layout.runs.iter().filter(|run| !run.blank) {
            let face = &run.face;
            database.with_face_data(face.id, |data, index| {
                // Read the outlines table only if a glyph is missing from the kept ones.
                let mut outlines = None;
                for glyph in &run.glyphs {
                    let x = (start_x + glyph.pen + glyph.dx) * pixels_per_unit;
                    let y = (text.y - glyph.dy) * pixels_per_unit;
                    let (whole_x, step_x) = split(x, steps);
                    let (whole_y, step_y) = split(y, steps);
                    let key = GlyphKey {
                        face: face.number,
                        glyph: glyph.id,
                        pixels_per_em: pixels_per_em.to_bits(),
                        step_x,
                        step_y,
                    };
                    let coverage = self.coverage.get(key, || {
                        let outlines = outlines.get_or_insert_with(|| {
                            skrifa::FontRef::from_index(data, index)
                                .ok()
                                .map(|font| font.outline_glyphs())
                        });
                        glyph_fill::fill(key, outlines.as_ref()?, face.units_per_em)
                    });
                    if coverage.width > 0 {
                        placed.push(Placed {
                            x: whole_x.saturating_add(coverage.left),
                            y: whole_y.saturating_add(coverage.top),
                            coverage,
                        });
                    }
                }
            })?;
        }
        compose(&placed, text.rgba, canvas_width, canvas_height)
    }
}

/// A pixel coordinate as a whole pixel and a sub-pixel step (`0..steps`).
fn split(coordinate: f32, steps: f32) -> (i32, u8) {
    let whole = coordinate.floor();
    let step = ((coordinate - whole) * steps).round();
    if step >= steps {
        (whole as i32 + 1, 0)
    } else {
        (whole as i32, step as u8)
    }
}

/// Adds up the placed glyphs' coverage, clipped to the canvas, in one colour.
fn compose(
    placed: &[Placed],
    rgba: [u8; 4],
    canvas_width: u32,
    canvas_height: u32,
) -> Option<DrawnText> {
    let left = placed.iter().map(|p| p.x).min()?.max(0);
    let top = placed.iter().map(|p| p.y).min()?.max(0);
    let right = placed
        .iter()
        .map(|p| p.x.saturating_add(p.coverage.width as i32))
        .max()?
        .min(i32::try_from(canvas_width).ok()?);
    let bottom = placed
        .iter()
        .map(|p| p.y.saturating_add(p.coverage.height as i32))
        .max()?
        .min(i32::try_from(canvas_height).ok()?);
    if right <= left || bottom <= top {
        return None;
    }
    let (width, height) = ((right - left) as usize, (bottom - top) as usize);
    let mut sum = vec![0u8; width * height];
    for glyph in placed {
        let coverage = &glyph.coverage;
        let (glyph_width, glyph_height) = (coverage.width as i32, coverage.height as i32);
        let columns = (left - glyph.x).max(0)..(right - glyph.x).min(glyph_width);
        if columns.is_empty() {
            continue;
        }
        for row in (top - glyph.y).max(0)..(bottom - glyph.y).min(glyph_height) {
            let from = (row * glyph_width) as usize;
            let source =
                &coverage.alpha[from + columns.start as usize..from + columns.end as usize];
            let to = ((glyph.y + row - top) as usize) * width
                + (glyph.x + columns.start - left) as usize;
            for (out, value) in sum[to..to + source.len()].iter_mut().zip(source) {
                *out = out.saturating_add(*value);
            }
        }
    }
    // The colour at each coverage value, premultiplied (tiny-skia's pixel format).
    let [red, green, blue, alpha] = rgba.map(u32::from);
    let shade = |coverage: u32| {
        let a = (coverage * alpha + 127) / 255;
        [red, green, blue, 255].map(|channel| ((channel * a + 127) / 255) as u8)
    };
    let shades: Vec<[u8; 4]> = (0..=255).map(shade).collect();
    let mut pixels = Vec::with_capacity(sum.len() * 4);
    for value in sum {
        pixels.extend_from_slice(&shades[usize::from(value)]);
    }
    let size = IntSize::from_wh(width as u32, height as u32)?;
    Some(DrawnText {
        x: left,
        y: top,
        pixmap: Pixmap::from_vec(pixels, size)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rounds_to_the_nearest_step() {
        assert_eq!(split(10.0, 16.0), (10, 0));
        assert_eq!(split(10.5, 16.0), (10, 8));
        assert_eq!(split(10.99, 16.0), (11, 0));
        assert_eq!(split(-0.25, 16.0), (-1, 12));
    }
}
