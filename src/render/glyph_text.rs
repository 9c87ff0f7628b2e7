//! Draws plain texts ([`super::plain_text`]) from kept glyph coverage instead of filling every
//! glyph's outline on every render.
//!
//! Layout follows usvg step by step — the same font query, harfrust shaping with the font's
//! kerning and ligatures, advances in font units scaled by size ÷ units per em, the anchor
//! applied to the whole advance, the alphabetic baseline at `y` — and the glyphs come from
//! [`GlyphCoverage`], rounded to a sixteenth of a pixel. The text's coverage is the sum of its
//! glyphs' (the same as filling them as one path where glyphs do not overlap), in the text's
//! colour. A text this module cannot match usvg on (a character the chosen font lacks,
//! right-to-left script, a glyph larger than [`MAX_PIXELS_PER_EM`]) is declined, and usvg
//! draws it.

use super::glyph_coverage::{self, Coverage, GlyphCoverage, GlyphKey, STEPS};
use super::plain_text::{Anchor, PlainText};
use harfrust::{Direction, ShapeOptions, ShaperData, UnicodeBuffer};
use resvg::tiny_skia::{IntSize, Pixmap};
use resvg::usvg::fontdb;
use skrifa::instance::{LocationRef, Size};
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

/// One font face, ready to shape with (its bytes stay in the font database).
struct Face {
    id: fontdb::ID,
    shaper: ShaperData,
    units_per_em: f32,
}

pub struct GlyphText {
    fonts: Arc<fontdb::Database>,
    faces: Vec<Face>,
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
    /// Prepares every static face of `fonts` (variable fonts are left to usvg, which applies
    /// their variations).
    pub fn new(fonts: Arc<fontdb::Database>, default_family: &str) -> Self {
        let faces = fonts
            .faces()
            .filter_map(|info| {
                fonts
                    .with_face_data(info.id, |data, index| {
                        let font = skrifa::FontRef::from_index(data, index).ok()?;
                        let metrics = font.metrics(Size::unscaled(), LocationRef::default());
                        if !font.axes().is_empty() || metrics.units_per_em == 0 {
                            return None;
                        }
                        Some(Face {
                            id: info.id,
                            shaper: ShaperData::new(&font),
                            units_per_em: f32::from(metrics.units_per_em),
                        })
                    })
                    .flatten()
            })
            .collect();
        Self {
            fonts,
            faces,
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
        let (face_number, face) = self.select(text)?;
        self.fonts
            .with_face_data(face.id, |data, index| {
                let font = skrifa::FontRef::from_index(data, index).ok()?;
                self.draw_with(
                    text,
                    &font,
                    (face_number, face),
                    (pixels_per_unit, pixels_per_em),
                    (canvas_width, canvas_height),
                )
            })
            .flatten()
    }

    /// [`GlyphText::draw`] with the face's bytes at hand, at so many pixels per user unit and
    /// per em.
    fn draw_with(
        &self,
        text: &PlainText,
        font: &skrifa::FontRef<'_>,
        (face_number, face): (u16, &Face),
        (pixels_per_unit, pixels_per_em): (f32, f32),
        (canvas_width, canvas_height): (u32, u32),
    ) -> Option<DrawnText> {
        let charmap = font.charmap();
        if text.content.chars().any(|c| charmap.map(c).is_none()) {
            return None;
        }
        if unicode_bidi::BidiInfo::new(&text.content, Some(unicode_bidi::Level::ltr())).has_rtl() {
            return None;
        }

        let mut buffer = UnicodeBuffer::new();
        buffer.push_str(&text.content);
        buffer.set_direction(Direction::LeftToRight);
        buffer.guess_segment_properties();
        let shaper = face.shaper.shaper(font).build();
        let shaped = shaper.shape(buffer, ShapeOptions::new());

        // User units per font unit.
        let scale = text.font_size / face.units_per_em;
        let advance: f32 = shaped
            .glyph_positions()
            .iter()
            .map(|p| p.x_advance as f32 * scale)
            .sum();
        let start_x = text.x
            + match text.anchor {
                Anchor::Start => 0.0,
                Anchor::Middle => -advance / 2.0,
                Anchor::End => -advance,
            };

        let steps = f32::from(STEPS);
        // Read the outlines table only if a glyph is missing from the kept ones.
        let mut outlines = None;
        let mut placed = Vec::with_capacity(shaped.len());
        let mut pen = 0.0f32;
        for (info, position) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
            if info.glyph_id == 0 {
                return None;
            }
            let x = (start_x + pen + position.x_offset as f32 * scale) * pixels_per_unit;
            let y = (text.y - position.y_offset as f32 * scale) * pixels_per_unit;
            pen += position.x_advance as f32 * scale;
            let (whole_x, step_x) = split(x, steps);
            let (whole_y, step_y) = split(y, steps);
            let key = GlyphKey {
                face: face_number,
                glyph: info.glyph_id,
                pixels_per_em: pixels_per_em.to_bits(),
                step_x,
                step_y,
            };
            let coverage = self.coverage.get(key, || {
                let outlines = outlines.get_or_insert_with(|| font.outline_glyphs());
                glyph_coverage::fill(key, outlines, face.units_per_em)
            });
            if coverage.width > 0 {
                placed.push(Placed {
                    x: whole_x.saturating_add(coverage.left),
                    y: whole_y.saturating_add(coverage.top),
                    coverage,
                });
            }
        }
        compose(&placed, text.rgba, canvas_width, canvas_height)
    }

    /// The face usvg's default font selector would pick for `text`.
    fn select(&self, text: &PlainText) -> Option<(u16, &Face)> {
        let families = if text.families.is_empty() {
            &self.default_families[..]
        } else {
            &text.families[..]
        };
        let mut names: Vec<fontdb::Family<'_>> = families
            .iter()
            .map(|family| match family {
                FontFamily::Serif => fontdb::Family::Serif,
                FontFamily::SansSerif => fontdb::Family::SansSerif,
                FontFamily::Cursive => fontdb::Family::Cursive,
                FontFamily::Fantasy => fontdb::Family::Fantasy,
                FontFamily::Monospace => fontdb::Family::Monospace,
                FontFamily::Named(name) => fontdb::Family::Name(name.as_str()),
            })
            .collect();
        names.push(fontdb::Family::Serif);
        let id = self.fonts.query(&fontdb::Query {
            families: &names,
            weight: fontdb::Weight(text.weight),
            stretch: fontdb::Stretch::Normal,
            style: fontdb::Style::Normal,
        })?;
        let number = self.faces.iter().position(|face| face.id == id)?;
        Some((u16::try_from(number).ok()?, &self.faces[number]))
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
