//! Fills a glyph's outline into anti-aliased coverage, for [`super::glyph_coverage`] to keep.
//!
//! The outline is read as usvg reads it (unhinted, in font units, flipped and scaled) and
//! filled by `ab_glyph_rasterizer`, which adds up each pixel's exact covered area from the
//! curves in one pass: faster than tiny-skia's supersampled path fill, and nearer the exact
//! coverage (`tile_drawing`'s and `text_runs`' tests measure both against an 8× supersampled
//! drawing), kept in sixteenths ([`in_sixteenths`]). Areas add up, so a glyph whose contours
//! overlap (some pixel covered more than once) is filled again with tiny-skia's non-zero fill,
//! which takes their union as usvg does.

use super::glyph_coverage::{Coverage, GlyphKey, STEPS};
use ab_glyph_rasterizer::{point, Point, Rasterizer};
use resvg::tiny_skia::{FillRule, Mask, PathBuilder, Transform};
use skrifa::instance::{LocationRef, Size};
use skrifa::outline::{DrawSettings, OutlineGlyphCollection, OutlinePen};

/// Coverage beyond a whole pixel (with room for rounding): contours overlap there.
const OVERLAP: f32 = 1.0 + 1.0 / 256.0;
/// The largest glyph canvas filled, in pixels (a glyph at the largest size drawn from kept
/// coverage is well within it; a broken outline is not).
const MAX_GLYPH_PIXELS: usize = 1024 * 1024;

/// Fills one glyph's outline (from the font's `outlines`, whose units per em are
/// `units_per_em`) at its size and sub-pixel offset. `None` for glyphs without an outline (a
/// space).
pub(super) fn fill(
    key: GlyphKey,
    outlines: &OutlineGlyphCollection<'_>,
    units_per_em: f32,
) -> Option<Coverage> {
    let outline = outlines.get(key.glyph.into())?;
    let scale = f32::from_bits(key.pixels_per_em) / units_per_em;
    let step = 1.0 / f32::from(STEPS);
    let mut pen = PlacedPen::new(
        scale,
        f32::from(key.step_x) * step,
        f32::from(key.step_y) * step,
    );
    outline
        .draw(
            DrawSettings::unhinted(Size::unscaled(), LocationRef::default()),
            &mut pen,
        )
        .ok()?;
    pen.coverage()
}

/// One piece of an outline, in pixels on the glyph's canvas.
enum Segment {
    Line(Point, Point),
    Quad(Point, Point, Point),
    Cubic(Point, Point, Point, Point),
}

/// Collects an outline as segments in pixels: font units scaled, flipped (font outlines point
/// up; pixels count down) and moved by the sub-pixel offset; every contour closed.
struct PlacedPen {
    scale: f32,
    offset_x: f32,
    offset_y: f32,
    segments: Vec<Segment>,
    /// Where the open contour started, and the pen's position.
    start: Option<Point>,
    at: Point,
    /// `[min x, min y, max x, max y]` of every point, control points included.
    bounds: Option<[f32; 4]>,
}

impl PlacedPen {
    fn new(scale: f32, offset_x: f32, offset_y: f32) -> Self {
        Self {
            scale,
            offset_x,
            offset_y,
            segments: Vec::new(),
            start: None,
            at: point(0.0, 0.0),
            bounds: None,
        }
    }

    fn place(&mut self, x: f32, y: f32) -> Point {
        let placed = point(
            x * self.scale + self.offset_x,
            -y * self.scale + self.offset_y,
        );
        let [min_x, min_y, max_x, max_y] = self
            .bounds
            .unwrap_or([placed.x, placed.y, placed.x, placed.y]);
        self.bounds = Some([
            min_x.min(placed.x),
            min_y.min(placed.y),
            max_x.max(placed.x),
            max_y.max(placed.y),
        ]);
        placed
    }

    /// The coverage of the outline drawn so far, trimmed to the pixels it covers. `None` for
    /// an empty or broken outline.
    fn coverage(mut self) -> Option<Coverage> {
        self.close();
        let [min_x, min_y, max_x, max_y] = self.bounds?;
        if ![min_x, min_y, max_x, max_y].iter().all(|v| v.is_finite()) {
            return None;
        }
        let (left, top) = (min_x.floor() - 1.0, min_y.floor() - 1.0);
        let (right, bottom) = (max_x.ceil() + 1.0, max_y.ceil() + 1.0);
        let (width, height) = ((right - left) as usize, (bottom - top) as usize);
        if width == 0 || height == 0 || width.saturating_mul(height) > MAX_GLYPH_PIXELS {
            return None;
        }
        let mut rasterizer = Rasterizer::new(width, height);
        let at = |p: Point| point(p.x - left, p.y - top);
        for segment in &self.segments {
            match *segment {
                Segment::Line(a, b) => rasterizer.draw_line(at(a), at(b)),
                Segment::Quad(a, b, c) => rasterizer.draw_quad(at(a), at(b), at(c)),
                Segment::Cubic(a, b, c, d) => rasterizer.draw_cubic(at(a), at(b), at(c), at(d)),
            }
        }
        let mut alpha = vec![0u8; width * height];
        let mut overlapping = false;
        rasterizer.for_each_pixel(|index, coverage| {
            overlapping |= coverage > OVERLAP;
            if let Some(pixel) = alpha.get_mut(index) {
                *pixel = in_sixteenths(coverage);
            }
        });
        if overlapping {
            // Contours that overlap add up their areas: fill their union as usvg does instead.
            alpha = nonzero_fill(&self.segments, left, top, width, height)?;
        }
        Some(trimmed(Coverage {
            left: left as i32,
            top: top as i32,
            width: width as u32,
            height: height as u32,
            alpha,
        }))
    }

    /// Ends the open contour with a line back to its start.
    fn close(&mut self) {
        if let Some(start) = self.start.take() {
            if start != self.at {
                self.segments.push(Segment::Line(self.at, start));
            }
            self.at = start;
        }
    }
}

impl OutlinePen for PlacedPen {
    fn move_to(&mut self, x: f32, y: f32) {
        self.close();
        self.at = self.place(x, y);
        self.start = Some(self.at);
    }

    fn line_to(&mut self, x: f32, y: f32) {
        let to = self.place(x, y);
        self.segments.push(Segment::Line(self.at, to));
        self.at = to;
    }

    fn quad_to(&mut self, cx0: f32, cy0: f32, x: f32, y: f32) {
        let control = self.place(cx0, cy0);
        let to = self.place(x, y);
        self.segments.push(Segment::Quad(self.at, control, to));
        self.at = to;
    }

    fn curve_to(&mut self, cx0: f32, cy0: f32, cx1: f32, cy1: f32, x: f32, y: f32) {
        let (c0, c1) = (self.place(cx0, cy0), self.place(cx1, cy1));
        let to = self.place(x, y);
        self.segments.push(Segment::Cubic(self.at, c0, c1, to));
        self.at = to;
    }

    fn close(&mut self) {
        PlacedPen::close(self);
    }
}

/// `coverage` without its empty rows and columns (every text drawn with the glyph composites
/// fewer pixels); an empty coverage for a glyph that covers nothing.
fn trimmed(coverage: Coverage) -> Coverage {
    let width = coverage.width as usize;
    let rows = || coverage.alpha.chunks_exact(width.max(1));
    let inked_row = |row: &[u8]| row.iter().any(|&a| a > 0);
    let (Some(first_row), Some(last_row)) =
        (rows().position(inked_row), rows().rposition(inked_row))
    else {
        return Coverage::empty();
    };
    let inked_columns = rows().filter_map(|row| {
        Some((
            row.iter().position(|&a| a > 0)?,
            row.iter().rposition(|&a| a > 0)?,
        ))
    });
    let (first_column, last_column) = inked_columns.fold((width, 0), |(first, last), (l, r)| {
        (first.min(l), last.max(r))
    });
    if (first_row, last_row, first_column, last_column)
        == (0, coverage.height as usize - 1, 0, width - 1)
    {
        return coverage;
    }
    let alpha = rows()
        .skip(first_row)
        .take(last_row - first_row + 1)
        .flat_map(|row| &row[first_column..=last_column])
        .copied()
        .collect();
    Coverage {
        left: coverage.left + first_column as i32,
        top: coverage.top + first_row as i32,
        width: (last_column - first_column + 1) as u32,
        height: (last_row - first_row + 1) as u32,
        alpha,
    }
}

/// The same segments filled with tiny-skia's anti-aliased non-zero fill, as usvg fills them:
/// where contours overlap, their union.
fn nonzero_fill(
    segments: &[Segment],
    left: f32,
    top: f32,
    width: usize,
    height: usize,
) -> Option<Vec<u8>> {
    let mut path = PathBuilder::new();
    let mut at = None;
    for segment in segments {
        let start = match *segment {
            Segment::Line(a, _) | Segment::Quad(a, _, _) | Segment::Cubic(a, _, _, _) => a,
        };
        if at != Some(start) {
            path.move_to(start.x, start.y);
        }
        let end = match *segment {
            Segment::Line(_, b) => {
                path.line_to(b.x, b.y);
                b
            }
            Segment::Quad(_, b, c) => {
                path.quad_to(b.x, b.y, c.x, c.y);
                c
            }
            Segment::Cubic(_, b, c, d) => {
                path.cubic_to(b.x, b.y, c.x, c.y, d.x, d.y);
                d
            }
        };
        at = Some(end);
    }
    let path = path.finish()?;
    let mut mask = Mask::new(u32::try_from(width).ok()?, u32::try_from(height).ok()?)?;
    mask.fill_path(
        &path,
        FillRule::Winding,
        true,
        Transform::from_translate(-left, -top),
    );
    Some(mask.data().to_vec())
}

/// A pixel's coverage (0 to 1) as an alpha value, rounded to a sixteenth of the range: the
/// steps tiny-skia's anti-aliasing has too. Exact values are no nearer the true coverage to
/// the eye, but texts at 256 levels cost about 45% more PNG bytes on the demo cart (36.2 KB
/// against 24.9 KB), as their edges no longer repeat byte for byte.
fn in_sixteenths(coverage: f32) -> u8 {
    ((coverage.min(1.0) * 16.0).round() * (255.0 / 16.0)).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width`×`height` rectangle with its top-left corner at (`x`, `y`) on the canvas,
    /// drawn the way fonts draw outlines (y up: the pen's flip turns it over).
    fn rectangle(pen: &mut PlacedPen, (x, y): (f32, f32), (width, height): (f32, f32)) {
        pen.move_to(x, -y);
        pen.line_to(x + width, -y);
        pen.line_to(x + width, -(y + height));
        pen.line_to(x, -(y + height));
        pen.close();
    }

    /// The coverage of pixel (`x`, `y`); 0 outside the glyph's rectangle.
    fn at(coverage: &Coverage, x: i32, y: i32) -> u8 {
        let (column, row) = (x - coverage.left, y - coverage.top);
        let inside = (0..coverage.width as i32).contains(&column)
            && (0..coverage.height as i32).contains(&row);
        if !inside {
            return 0;
        }
        coverage.alpha[row as usize * coverage.width as usize + column as usize]
    }

    #[test]
    fn a_square_covers_its_pixels_and_half_of_those_its_edges_halve() {
        let mut pen = PlacedPen::new(1.0, 0.5, 0.0);
        rectangle(&mut pen, (2.0, 2.0), (4.0, 4.0));
        let coverage = pen.coverage().unwrap();
        // Moved half a pixel right: columns 2.5 to 6.5, rows 2 to 6, and nothing around them.
        assert_eq!(
            (coverage.left, coverage.top, coverage.width, coverage.height),
            (2, 2, 5, 4)
        );
        assert_eq!(at(&coverage, 4, 3), 255);
        assert_eq!(at(&coverage, 2, 3), 128);
        assert_eq!(at(&coverage, 6, 5), 128);
    }

    #[test]
    fn overlapping_contours_are_filled_as_their_union() {
        let mut pen = PlacedPen::new(1.0, 0.0, 0.0);
        // Two bars ending half-way down row 5, overlapping from x 6 to 6.5.
        rectangle(&mut pen, (2.0, 2.0), (4.5, 3.5));
        rectangle(&mut pen, (6.0, 2.0), (4.0, 3.5));
        let coverage = pen.coverage().unwrap();
        assert_eq!(at(&coverage, 6, 3), 255);
        // Pixel (6, 5): the second bar covers its top half, the first a quarter within that.
        // Their union is half the pixel; their areas added up would be three quarters.
        let shared = at(&coverage, 6, 5);
        assert!(shared.abs_diff(128) <= 2, "{shared}, not the union's 128");
        assert!(at(&coverage, 4, 5).abs_diff(128) <= 2);
        assert_eq!(at(&coverage, 10, 3), 0);
    }

    #[test]
    fn a_counter_stays_empty() {
        let mut pen = PlacedPen::new(1.0, 0.0, 0.0);
        rectangle(&mut pen, (2.0, 2.0), (6.0, 6.0));
        // The inner square drawn the other way round, as fonts draw counters.
        pen.move_to(4.0, -4.0);
        pen.line_to(4.0, -6.0);
        pen.line_to(6.0, -6.0);
        pen.line_to(6.0, -4.0);
        pen.close();
        let coverage = pen.coverage().unwrap();
        assert_eq!(at(&coverage, 3, 3), 255);
        assert_eq!(at(&coverage, 4, 4), 0);
        assert_eq!(at(&coverage, 5, 5), 0);
    }

    #[test]
    fn an_empty_or_oversized_outline_gives_no_coverage() {
        assert!(PlacedPen::new(1.0, 0.0, 0.0).coverage().is_none());
        let mut huge = PlacedPen::new(1e9, 0.0, 0.0);
        rectangle(&mut huge, (0.0, 0.0), (1.0, 1.0));
        assert!(huge.coverage().is_none());
        let mut broken = PlacedPen::new(f32::INFINITY, 0.0, 0.0);
        rectangle(&mut broken, (0.0, 0.0), (1.0, 1.0));
        assert!(broken.coverage().is_none());
    }
}
