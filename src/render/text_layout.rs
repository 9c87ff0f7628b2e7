//! One line of text laid out with the real fonts: the one place where opentime measures text,
//! for drawing plain texts ([`super::glyph_text`]), for handing them to usvg in runs it lays out
//! the same way ([`super::text_runs`]) and for the templates' text functions
//! ([`super::text_fit`]), so what a template measures is what the renderer draws.
//!
//! A text whose own face has every character and that has nothing right to left is one run,
//! shaped whole — exactly as usvg shapes it. Any other text is itemized the way a browser does
//! it: the bidirectional algorithm's runs (usvg's: a left-to-right paragraph), each split into
//! runs of one face (chosen per grapheme cluster, [`super::font_fallback`]) and one script;
//! characters without a script of their own (spaces, punctuation, digits) come from the text's
//! own font when it has them, else stay with the run they follow when its face has them. A cluster no font has is drawn as `�` (`?` when no font has that either): never left
//! blank, since the default font's missing-glyph box is empty. Each run is shaped alone with harfrust in its direction, with usvg's settings (kerning,
//! `wght` and automatic `opsz` on variable fonts). A glyph's advance is the font's, scaled by
//! size ÷ units per em: widths are linear in the size.

use super::font_fallback::{self, FontChoice, Hint};
use super::fonts::family_name;
use super::missing_characters::Coverage;
use harfrust::{
    Direction, ShapeOptions, ShapePlan, ShapePlanKey, ShaperData, ShaperInstance, Tag,
    UnicodeBuffer, Variation,
};
use prometheus_client::metrics::counter::Counter;
use quick_cache::sync::Cache;
use resvg::usvg::fontdb;
use skrifa::instance::{LocationRef, Size};
use skrifa::outline::{DrawSettings, OutlinePen};
use skrifa::MetadataProvider;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};
use svgtypes::FontFamily;
use unicode_bidi::{BidiClass, BidiInfo, Level};
use unicode_script::{Script, UnicodeScript};
use unicode_segmentation::UnicodeSegmentation;

/// Tables of colour or bitmap glyphs: such faces are drawn by usvg, not from outlines.
const PICTURE_TABLES: [&[u8; 4]; 6] = [b"CBDT", b"sbix", b"COLR", b"SVG ", b"EBDT", b"CBLC"];
/// Most shape plans kept per face: one per script, direction and weight instance it shapes.
const PLANS_PER_FACE: usize = 16;

/// A face ready to shape with (its bytes stay in the font database).
pub(crate) struct Face {
    pub(crate) id: fontdb::ID,
    /// A small number for glyph keys, given in the order faces are first used.
    pub(crate) number: u16,
    shaper: ShaperData,
    /// Shape plans made for this face (harfrust makes one per shaping call otherwise: about two
    /// fifths of the demo cart's shaping time).
    plans: Mutex<Vec<Arc<ShapePlan>>>,
    pub(crate) units_per_em: f32,
    /// Drawable from outlines alone: static, without colour or bitmap glyphs.
    pub(crate) outlines_only: bool,
    /// Variation axes (usvg sets `wght` from the weight, and `opsz` from the size).
    variable: bool,
    has_opsz: bool,
    /// The family to name in SVG so usvg picks this face again.
    pub(crate) family: Arc<str>,
}

impl Face {
    /// The kept shape plan `key` matches, or a new one from `make` (kept while there is room).
    fn plan(&self, key: &ShapePlanKey<'_>, make: impl FnOnce() -> ShapePlan) -> Arc<ShapePlan> {
        let kept = |plans: &[Arc<ShapePlan>]| plans.iter().find(|p| key.matches(p)).cloned();
        if let Some(plan) = self.plans.lock().ok().and_then(|plans| kept(&plans)) {
            return plan;
        }
        let plan = Arc::new(make());
        if let Ok(mut plans) = self.plans.lock() {
            if plans.len() < PLANS_PER_FACE && kept(&plans).is_none() {
                plans.push(Arc::clone(&plan));
            }
        }
        plan
    }
}

/// How a text is set: families (empty: the default family), weight, size in user units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style<'a> {
    pub(crate) families: &'a [FontFamily],
    pub(crate) weight: u16,
    pub(crate) size: f32,
}

/// A text laid out on one line, from its start (before the anchor moves it).
#[derive(Clone)]
pub(crate) struct Layout {
    /// Runs from left to right.
    pub(crate) runs: Vec<Run>,
    /// The whole advance, in user units.
    pub(crate) advance: f32,
    /// One left-to-right run in the text's own face: usvg lays it out the same way unaided.
    pub(crate) single: bool,
}

/// Consecutive characters of one face, direction and script.
#[derive(Clone)]
pub(crate) struct Run {
    pub(crate) face: Arc<Face>,
    /// The characters shaped, as given to the shaper (bidi marks around them when the run on
    /// its own would not resolve to its direction).
    pub(crate) text: String,
    /// Where the run's characters start in the text.
    pub(crate) start: usize,
    pub(crate) rtl: bool,
    /// Left edge, from the text's start, in user units.
    pub(crate) x: f32,
    pub(crate) advance: f32,
    pub(crate) glyphs: Vec<Glyph>,
    /// Only spaces: nothing to draw.
    pub(crate) blank: bool,
}

/// One shaped glyph, in user units from the text's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Glyph {
    pub(crate) id: u32,
    /// The pen before this glyph.
    pub(crate) pen: f32,
    pub(crate) advance: f32,
    /// The shaper's offsets (`dy` up).
    pub(crate) dx: f32,
    pub(crate) dy: f32,
    /// The byte offset in the text of the first character this glyph draws.
    pub(crate) cluster: usize,
}

/// Glyph extents kept for measuring ink.
const KEPT_EXTENTS: usize = 200_000;

/// Lays out text with the fallback fonts; shared by the rasterizer and the text functions.
pub(crate) struct Typesetter {
    choice: Arc<FontChoice>,
    faces: RwLock<HashMap<fontdb::ID, Arc<Face>>>,
    /// Glyph outlines' horizontal extents, by face number and glyph.
    extents: Cache<(u16, u32), Option<(f32, f32)>>,
    /// What is known of which characters some font has.
    coverage: Coverage,
    /// Characters drawn as a missing-glyph box.
    missing: Counter,
}

/// Characters of a run before shaping.
struct Piece {
    range: Range<usize>,
    face: fontdb::ID,
    script: Option<Script>,
    /// A grapheme cluster no font has, drawn as this character instead.
    stands_in: Option<char>,
}

/// What a cluster no font has is drawn as: the replacement character, or a question mark
/// where no font has that either (never nothing).
const STAND_INS: [char; 2] = ['\u{FFFD}', '?'];

impl Typesetter {
    pub(crate) fn new(choice: Arc<FontChoice>) -> Self {
        Self {
            choice,
            faces: RwLock::new(HashMap::new()),
            extents: Cache::new(KEPT_EXTENTS),
            coverage: Coverage::new(),
            missing: Counter::default(),
        }
    }

    pub(crate) fn database(&self) -> &Arc<fontdb::Database> {
        self.choice.database()
    }

    /// Face `id`, prepared on first use.
    pub(crate) fn face(&self, id: fontdb::ID) -> Option<Arc<Face>> {
        if let Some(face) = self.faces.read().ok()?.get(&id) {
            return Some(Arc::clone(face));
        }
        let database = self.choice.database();
        let family: Arc<str> = Arc::from(family_name(database.face(id)?)?);
        let mut faces = self.faces.write().ok()?;
        if let Some(face) = faces.get(&id) {
            return Some(Arc::clone(face));
        }
        let number = u16::try_from(faces.len()).ok()?;
        let face = database
            .with_face_data(id, |data, index| {
                let font = skrifa::FontRef::from_index(data, index).ok()?;
                let metrics = font.metrics(Size::unscaled(), LocationRef::default());
                if !(16..=16384).contains(&metrics.units_per_em) {
                    return None;
                }
                let variable = !font.axes().is_empty();
                let pictures = PICTURE_TABLES
                    .iter()
                    .any(|tag| font.table_data(Tag::new(tag)).is_some());
                Some(Face {
                    id,
                    number,
                    shaper: ShaperData::new(&font),
                    plans: Mutex::default(),
                    units_per_em: f32::from(metrics.units_per_em),
                    outlines_only: !variable && !pictures,
                    variable,
                    has_opsz: font.axes().get_by_tag(Tag::new(b"opsz")).is_some(),
                    family,
                })
            })
            .flatten()?;
        let face = Arc::new(face);
        faces.insert(id, Arc::clone(&face));
        Some(face)
    }

    /// Lays out `content` (white space already collapsed, as usvg reads it) in `style`.
    /// `None` when no font can be queried at all.
    pub(crate) fn layout(&self, content: &str, style: &Style<'_>) -> Option<Layout> {
        let own_id = self.choice.primary(style.families, style.weight)?;
        let own = self.face(own_id)?;
        let all_covered = self
            .choice
            .database()
            .with_face_data(own_id, |data, index| {
                let font = skrifa::FontRef::from_index(data, index).ok()?;
                let charmap = font.charmap();
                Some(content.chars().all(|c| charmap.map(c).is_some()))
            })
            .flatten()
            .unwrap_or(false);
        let rtl = !content.is_ascii() && BidiInfo::new(content, Some(Level::ltr())).has_rtl();
        if all_covered && !rtl {
            let run = self.shape(content, 0, &own, false, style, 0.0)?;
            return Some(Layout {
                advance: run.advance,
                runs: vec![run],
                single: true,
            });
        }
        self.itemized(content, style, own_id)
    }

    /// The layout of a text that needs several runs (or one in another face, or right to
    /// left).
    fn itemized(&self, content: &str, style: &Style<'_>, own: fontdb::ID) -> Option<Layout> {
        let hint = Hint::of(content);
        let bidi = BidiInfo::new(content, Some(Level::ltr()));
        let mut runs: Vec<Run> = Vec::new();
        let mut pen = 0.0f32;
        for paragraph in &bidi.paragraphs {
            let (levels, level_runs) = bidi.visual_runs(paragraph, paragraph.range.clone());
            for range in level_runs {
                let rtl = levels.get(range.start).is_some_and(|l| l.is_rtl());
                let mut pieces = self.itemize(content, range, style.weight, hint, own);
                if rtl {
                    pieces = split_edge_spaces(content, pieces);
                    pieces.reverse();
                }
                for piece in pieces {
                    let face = self.face(piece.face)?;
                    let mut buffer = [0u8; 4];
                    let chars = match piece.stands_in {
                        Some(stand_in) => &*stand_in.encode_utf8(&mut buffer),
                        None => &content[piece.range.clone()],
                    };
                    let blank = chars.chars().all(|c| c == ' ');
                    let mark = match rtl {
                        true => '\u{200F}',
                        false => '\u{200E}',
                    };
                    let text = if blank || resolves_alone(chars, rtl) {
                        chars.to_owned()
                    } else {
                        format!("{mark}{chars}{mark}")
                    };
                    let mut run = self.shape(&text, piece.range.start, &face, rtl, style, pen)?;
                    if text.len() != piece.range.len() {
                        // Glyph clusters point into the text, not into the marked or stood-in
                        // run.
                        let shift = if text.len() > chars.len() {
                            mark.len_utf8()
                        } else {
                            0
                        };
                        let last = piece.range.end.saturating_sub(1).max(piece.range.start);
                        for glyph in &mut run.glyphs {
                            glyph.cluster = match piece.stands_in {
                                Some(_) => piece.range.start,
                                None => glyph
                                    .cluster
                                    .saturating_sub(shift)
                                    .clamp(piece.range.start, last),
                            };
                        }
                    }
                    run.blank = blank;
                    pen += run.advance;
                    runs.push(run);
                }
            }
        }
        // usvg would lay out the same text alone: one left-to-right run of the characters as
        // they are, in the text's own face.
        let single =
            runs.len() == 1 && !runs[0].rtl && runs[0].face.id == own && runs[0].text == content;
        Some(Layout {
            runs,
            advance: pen,
            single,
        })
    }

    /// `content[range]` (one bidi level) cut into runs of one face and script, in logical order.
    fn itemize(
        &self,
        content: &str,
        range: Range<usize>,
        weight: u16,
        hint: Hint,
        own: fontdb::ID,
    ) -> Vec<Piece> {
        let mut pieces: Vec<Piece> = Vec::new();
        let Some(slice) = content.get(range.clone()) else {
            return pieces;
        };
        let mut stand_in = None;
        for (offset, cluster) in slice.grapheme_indices(true) {
            let start = range.start + offset;
            let end = start + cluster.len();
            let script = strong_script(cluster);
            let needed: Vec<char> = cluster
                .chars()
                .filter(|c| !font_fallback::is_invisible(*c))
                .collect();
            // A character without a script of its own (a space, punctuation, a digit) comes
            // from the text's own font when that has it, as in a browser; else it stays in the
            // run it follows, when that run's font has it.
            let common = script.is_none() && !font_fallback::is_emoji_cluster(cluster);
            let follows = pieces.last().filter(|piece| {
                common
                    && piece.stands_in.is_none()
                    && !self.choice.covers(own, &needed)
                    && self.choice.covers(piece.face, &needed)
            });
            let face = match follows {
                Some(piece) => Some(piece.face),
                None => self.choice.for_cluster(cluster, weight, hint, Some(own)),
            };
            let Some(face) = face else {
                // No font has it: a stand-in, in a run of its own.
                let (character, face) = *stand_in.get_or_insert_with(|| self.stand_in(weight, own));
                pieces.push(Piece {
                    range: start..end,
                    face,
                    script: None,
                    stands_in: Some(character),
                });
                continue;
            };
            match pieces.last_mut() {
                Some(piece)
                    if piece.face == face
                        && piece.stands_in.is_none()
                        && (script.is_none()
                            || piece.script.is_none()
                            || piece.script == script) =>
                {
                    piece.range.end = end;
                    piece.script = piece.script.or(script);
                }
                _ => pieces.push(Piece {
                    range: start..end,
                    face,
                    script,
                    stands_in: None,
                }),
            }
        }
        pieces
    }

    /// What a cluster no font has is drawn as, and in which face.
    fn stand_in(&self, weight: u16, own: fontdb::ID) -> (char, fontdb::ID) {
        STAND_INS
            .iter()
            .find_map(|c| {
                let mut buffer = [0u8; 4];
                let face = self.choice.for_cluster(
                    c.encode_utf8(&mut buffer),
                    weight,
                    Hint::None,
                    Some(own),
                )?;
                Some((*c, face))
            })
            .unwrap_or((STAND_INS[1], own))
    }

    /// Shapes `text` in `face` as one run starting at `x`; `start` is where its characters
    /// start in the whole text (glyph clusters are given from there).
    fn shape(
        &self,
        text: &str,
        start: usize,
        face: &Arc<Face>,
        rtl: bool,
        style: &Style<'_>,
        x: f32,
    ) -> Option<Run> {
        self.choice
            .database()
            .with_face_data(face.id, |data, index| {
                let font = skrifa::FontRef::from_index(data, index).ok()?;
                let mut buffer = UnicodeBuffer::new();
                buffer.push_str(text);
                buffer.set_direction(match rtl {
                    true => Direction::RightToLeft,
                    false => Direction::LeftToRight,
                });
                buffer.guess_segment_properties();
                let instance = face.variable.then(|| {
                    let mut variations = vec![Variation {
                        tag: Tag::new(b"wght"),
                        value: f32::from(style.weight),
                    }];
                    if face.has_opsz {
                        variations.push(Variation {
                            tag: Tag::new(b"opsz"),
                            value: style.size,
                        });
                    }
                    ShaperInstance::from_variations(&font, variations)
                });
                let shaper = face
                    .shaper
                    .shaper(&font)
                    .instance(instance.as_ref())
                    .build();
                // The properties harfrust would plan for itself (no script: none guessed).
                let script = Some(buffer.script()).filter(|s| *s != harfrust::script::UNKNOWN);
                let language = buffer.language();
                let key = ShapePlanKey::new(script, buffer.direction())
                    .language(language.as_ref())
                    .instance(instance.as_ref());
                let plan = face.plan(&key, || {
                    ShapePlan::new(&shaper, buffer.direction(), script, language.as_ref(), &[])
                });
                let shaped = shaper.shape(buffer, ShapeOptions::new().plan(Some(&plan)));
                // User units per font unit.
                let scale = style.size / face.units_per_em;
                let mut glyphs = Vec::with_capacity(shaped.len());
                let mut pen = 0.0f32;
                for (info, position) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
                    let advance = position.x_advance as f32 * scale;
                    glyphs.push(Glyph {
                        id: info.glyph_id,
                        pen: x + pen,
                        advance,
                        dx: position.x_offset as f32 * scale,
                        dy: position.y_offset as f32 * scale,
                        cluster: start + info.cluster as usize,
                    });
                    pen += advance;
                }
                Some(Run {
                    face: Arc::clone(face),
                    text: text.to_owned(),
                    start,
                    rtl,
                    x,
                    advance: pen,
                    glyphs,
                    blank: false,
                })
            })
            .flatten()
    }

    /// The ink of `layout`: its left and right edges from the text's start, in user units
    /// (`None` when nothing has ink). Glyphs without outlines (bitmaps) count by their advance.
    pub(crate) fn ink(&self, layout: &Layout, size: f32) -> Option<(f32, f32)> {
        let mut edges: Option<(f32, f32)> = None;
        for run in layout.runs.iter().filter(|run| !run.blank) {
            let scale = size / run.face.units_per_em;
            for glyph in &run.glyphs {
                let (left, right) = match self.glyph_extent(&run.face, glyph.id) {
                    Some((left, right)) => {
                        let origin = glyph.pen + glyph.dx;
                        (origin + left * scale, origin + right * scale)
                    }
                    None if !run.face.outlines_only && glyph.advance > 0.0 => {
                        (glyph.pen, glyph.pen + glyph.advance)
                    }
                    None => continue,
                };
                edges = Some(match edges {
                    Some((l, r)) => (l.min(left), r.max(right)),
                    None => (left, right),
                });
            }
        }
        edges
    }

    /// The horizontal extent of a glyph's outline in font units (its control points, so never
    /// less than the ink); `None` for glyphs without one.
    fn glyph_extent(&self, face: &Face, glyph: u32) -> Option<(f32, f32)> {
        let key = (face.number, glyph);
        if let Some(kept) = self.extents.get(&key) {
            return kept;
        }
        let extent = self
            .choice
            .database()
            .with_face_data(face.id, |data, index| {
                let font = skrifa::FontRef::from_index(data, index).ok()?;
                let outline = font.outline_glyphs().get(glyph.into())?;
                let mut pen = ExtentPen::default();
                outline
                    .draw(
                        DrawSettings::unhinted(Size::unscaled(), LocationRef::default()),
                        &mut pen,
                    )
                    .ok()?;
                pen.extent
            })
            .flatten();
        self.extents.insert(key, extent);
        extent
    }

    /// The characters of `svg`'s texts that no font has, each with how often it occurs;
    /// counted in [`Typesetter::missing_counter`].
    pub(crate) fn missing_characters(&self, svg: &str) -> Vec<(char, usize)> {
        let missing = self.coverage.missing_in(&self.choice, svg);
        let total: usize = missing.iter().map(|(_, count)| count).sum();
        if total > 0 {
            self.missing.inc_by(total as u64);
        }
        missing
    }

    /// Characters drawn as a missing-glyph box, so far (for the metrics).
    pub(crate) fn missing_counter(&self) -> &Counter {
        &self.missing
    }
}

/// Collects the horizontal extent of an outline's points.
#[derive(Default)]
struct ExtentPen {
    extent: Option<(f32, f32)>,
}

impl ExtentPen {
    fn point(&mut self, x: f32) {
        self.extent = Some(match self.extent {
            Some((left, right)) => (left.min(x), right.max(x)),
            None => (x, x),
        });
    }
}

impl OutlinePen for ExtentPen {
    fn move_to(&mut self, x: f32, _: f32) {
        self.point(x);
    }

    fn line_to(&mut self, x: f32, _: f32) {
        self.point(x);
    }

    fn quad_to(&mut self, cx0: f32, _: f32, x: f32, _: f32) {
        self.point(cx0);
        self.point(x);
    }

    fn curve_to(&mut self, cx0: f32, _: f32, cx1: f32, _: f32, x: f32, _: f32) {
        self.point(cx0);
        self.point(cx1);
        self.point(x);
    }

    fn close(&mut self) {}
}

/// The script of a cluster's first character that has one of its own.
fn strong_script(cluster: &str) -> Option<Script> {
    cluster
        .chars()
        .map(|c| c.script())
        .find(|s| !matches!(s, Script::Common | Script::Inherited | Script::Unknown))
}

/// Whether `text` alone, in a left-to-right paragraph (as usvg reads each run it gets), comes
/// out all in direction `rtl`.
fn resolves_alone(text: &str, rtl: bool) -> bool {
    let bidi = BidiInfo::new(text, Some(Level::ltr()));
    let [paragraph] = bidi.paragraphs.as_slice() else {
        return false;
    };
    let (levels, _) = bidi.visual_runs(paragraph, paragraph.range.clone());
    text.char_indices().all(|(i, c)| {
        font_fallback::is_invisible(c) || levels.get(i).is_some_and(|l| l.is_rtl() == rtl)
    })
}

/// Right-to-left pieces with the spaces at their ends split off: on its own, a run's trailing
/// space would go to the other side (rule L1), so such spaces are runs of their own.
fn split_edge_spaces(content: &str, pieces: Vec<Piece>) -> Vec<Piece> {
    let is_space = |c: char| unicode_bidi::bidi_class(c) == BidiClass::WS;
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let text = &content[piece.range.clone()];
        let lead = text.len() - text.trim_start_matches(is_space).len();
        let trail = text.len() - text.trim_end_matches(is_space).len();
        let (start, end) = (piece.range.start, piece.range.end);
        if lead + trail >= text.len() {
            out.push(piece);
            continue;
        }
        let part = |range: Range<usize>| Piece {
            range,
            face: piece.face,
            script: piece.script,
            stands_in: piece.stands_in,
        };
        if lead > 0 {
            out.push(part(start..start + lead));
        }
        out.push(part(start + lead..end - trail));
        if trail > 0 {
            out.push(part(end - trail..end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_resolve_alone_unless_a_neutral_sits_at_their_edge() {
        assert!(resolves_alone("محمد", true));
        assert!(resolves_alone("محمد علي", true));
        assert!(resolves_alone("2024", false));
        assert!(resolves_alone("Maria", false));
        assert!(!resolves_alone("محمد!", true));
        assert!(!resolves_alone("(محمد", true));
    }

    #[test]
    fn right_to_left_pieces_lose_their_edge_spaces() {
        let content = " שלום ";
        let face = fontdb::ID::dummy();
        let pieces = vec![Piece {
            range: 0..content.len(),
            face,
            script: None,
            stands_in: None,
        }];
        let ranges: Vec<&str> = split_edge_spaces(content, pieces)
            .iter()
            .map(|p| &content[p.range.clone()])
            .collect();
        assert_eq!(ranges, [" ", "שלום", " "]);
    }
}
