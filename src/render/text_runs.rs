//! Plain texts usvg would not lay out like opentime, rewritten so that it does: a text that
//! needs several fonts or has right-to-left characters becomes the same `<text>` with one
//! `<tspan>` per run of [`super::text_layout`], each at its own `x` (a new text chunk, which
//! usvg shapes alone) and in the one family whose face has all of its characters. usvg then
//! shapes every run exactly as the layout did — same face, same direction, same characters —
//! and never needs its own fallback, which shapes a whole text with each fallback font and
//! breaks joined scripts (Arabic, Devanagari) mixed with Latin.
//!
//! Every path that hands an SVG to usvg goes through here first: a render drawing its texts in
//! place, a text tile drawn by usvg, the check's measurements.

use super::plain_text::{self, Anchor};
use super::text_layout::{Layout, Typesetter};
use std::fmt::Write as _;
use svgtypes::FontFamily;

/// Attributes the rewritten text sets itself.
const REPLACED: [&str; 2] = ["x", "text-anchor"];

/// `text` (a top-level `<text>` of `root`) rewritten into positioned runs; `None` when it is
/// not plain, or usvg lays it out like opentime unaided (one left-to-right run in its own
/// font).
pub(crate) fn rewrite_text(
    typesetter: &Typesetter,
    text: roxmltree::Node<'_, '_>,
    root: roxmltree::Node<'_, '_>,
    default_font_size: f32,
    default_family: &str,
) -> Option<String> {
    // ASCII is the default font's (and `text()` has character references decoded).
    if text.text().is_none_or(str::is_ascii) {
        return None;
    }
    let plain = plain_text::read(text, root, default_font_size)?;
    let default_families = [FontFamily::Named(default_family.to_owned())];
    let style = super::text_layout::Style {
        families: if plain.families.is_empty() {
            &default_families[..]
        } else {
            &plain.families[..]
        },
        weight: plain.weight,
        size: plain.font_size,
    };
    let layout = typesetter.layout(&plain.content, &style)?;
    if layout.single {
        return None;
    }
    let start_x = plain.x
        + match plain.anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => -layout.advance / 2.0,
            Anchor::End => -layout.advance,
        };
    Some(markup(text, &layout, start_x))
}

/// The rewritten element: the text's own attributes but its position and anchor, and a
/// `<tspan>` per run that draws something, in the text's order.
fn markup(text: roxmltree::Node<'_, '_>, layout: &Layout, start_x: f32) -> String {
    let mut out = String::from("<text");
    for attribute in text.attributes() {
        if attribute.namespace().is_some() || REPLACED.contains(&attribute.name()) {
            continue;
        }
        let _ = write!(
            out,
            r#" {}="{}""#,
            attribute.name(),
            escape(attribute.value())
        );
    }
    let mut runs: Vec<_> = layout.runs.iter().filter(|run| !run.blank).collect();
    runs.sort_by_key(|run| run.start);
    let first = runs.first().map_or(start_x, |run| start_x + run.x);
    let _ = write!(out, r#" x="{first}" text-anchor="start">"#);
    for run in runs {
        let _ = write!(
            out,
            r#"<tspan x="{}" font-family="'{}'">{}</tspan>"#,
            start_x + run.x,
            run.face.family,
            escape(&run.text)
        );
    }
    out.push_str("</text>");
    out
}

/// Every top-level plain text of `svg` (`document` is `svg` parsed) that needs it, rewritten;
/// `None` when none does.
pub(crate) fn rewrite_svg(
    typesetter: &Typesetter,
    svg: &str,
    document: &roxmltree::Document<'_>,
    default_font_size: f32,
    default_family: &str,
) -> Option<String> {
    if svg.is_ascii() && !svg.contains("&#") {
        return None;
    }
    let root = document.root_element();
    let mut out = String::with_capacity(svg.len() + 256);
    let mut copied_to = 0;
    for text in root.children().filter(|n| n.has_tag_name("text")) {
        let Some(rewritten) =
            rewrite_text(typesetter, text, root, default_font_size, default_family)
        else {
            continue;
        };
        let range = text.range();
        out.push_str(svg.get(copied_to..range.start)?);
        out.push_str(&rewritten);
        copied_to = range.end;
    }
    if copied_to == 0 {
        return None;
    }
    out.push_str(svg.get(copied_to..)?);
    Some(out)
}

/// Text and attribute values as XML character data.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        self, ink_bounds, ink_pixels, max_diff, mean_diff, noto_rasterizer, reference_drawing,
        text_svg, SCRIPT_NAMES,
    };
    use super::super::text_layout::Style;
    use std::sync::Arc;
    use svgtypes::FontFamily;

    const INTER: [FontFamily; 1] = [FontFamily::SansSerif];

    #[test]
    fn names_in_every_script_put_ink_where_the_layout_puts_them() {
        let rasterizer = noto_rasterizer();
        let (x, y, size) = (40.0, 60.0, 32.0);
        for (script, name) in SCRIPT_NAMES {
            let style = Style {
                families: &INTER,
                weight: 700,
                size,
            };
            let layout = rasterizer.typesetter().layout(name, &style).unwrap();
            let svg = text_svg(name, (700, 100), (x, y), size, 700, "start");
            assert!(
                rasterizer.typesetter().missing_characters(&svg).is_empty(),
                "{script}: a character has no font"
            );
            // In place (usvg, in runs), then as a text seen for the first time and as a kept
            // tile.
            let in_place = rasterizer
                .rasterize_inner(&svg, 700, 100, 1, Arc::default(), false)
                .unwrap();
            let reference = reference_drawing(&rasterizer, &svg, 700, 100, 1);
            let usvg_mean = mean_diff(&reference, &in_place);
            let renders = [
                in_place.clone(),
                rasterizer
                    .rasterize_inner(&svg, 700, 100, 1, Arc::default(), true)
                    .unwrap(),
                rasterizer
                    .rasterize_inner(&svg, 700, 100, 1, Arc::default(), true)
                    .unwrap(),
                rasterizer
                    .rasterize_inner(&svg, 700, 100, 1, Arc::default(), true)
                    .unwrap(),
            ];
            for (n, pixmap) in renders.iter().enumerate() {
                let (left, top, right, bottom) = ink_bounds(pixmap)
                    .unwrap_or_else(|| panic!("{script}, render {n}: nothing drawn"));
                let (start, end) = (x, x + layout.advance);
                // The ink spans the name: from its start to its end (a pixel or two of side
                // bearing either way), between the ascender and the descender lines.
                assert!(
                    (left as f32) >= start - 2.0 && (left as f32) <= start + 0.1 * layout.advance,
                    "{script}, render {n}: ink starts at {left}, the name at {start}"
                );
                assert!(
                    (right as f32) <= end + 2.0 && (right as f32) >= end - 0.1 * layout.advance,
                    "{script}, render {n}: ink ends at {right}, the name at {end}"
                );
                assert!(
                    (top as f32) >= y - 1.3 * size && (bottom as f32) <= y + 0.5 * size,
                    "{script}, render {n}: ink from {top} to {bottom}, baseline {y}"
                );
                let inked = ink_pixels(pixmap) as f32;
                assert!(
                    inked > 0.08 * layout.advance * size,
                    "{script}, render {n}: only {inked} pixels of ink"
                );
                // Against the exact coverage (as near as an 8× drawing gets): on the whole as
                // near as usvg's own drawing, and no pixel far off. Where two glyphs of a joined
                // script overlap by a sliver, the sliver counts twice (glyph coverages add up).
                let off = max_diff(&reference, pixmap);
                assert!(off <= 96, "{script}, render {n}: {off} levels off");
                let mean = mean_diff(&reference, pixmap);
                assert!(
                    mean <= usvg_mean,
                    "{script}, render {n}: mean error {mean:.3}, usvg's {usvg_mean:.3}"
                );
            }
        }
    }

    #[test]
    fn without_runs_usvg_loses_joined_scripts_mixed_with_latin() {
        // What the runs are for: usvg's own fallback shapes the whole text with each font and
        // keeps a fallback's glyphs only where the glyph counts agree, so a ligature (Arabic
        // lam-alef) in a Latin line leaves the Arabic undrawn, and a conjunct (Devanagari) is
        // shaped in pieces: a visible virama, the vowel sign on the wrong side.
        let rasterizer = noto_rasterizer();
        let render = |name: &str| {
            let text = format!("Hi {name}!");
            let svg = text_svg(&text, (600, 100), (20.0, 60.0), 32.0, 700, "start");
            let unaided = resvg::usvg::Tree::from_str(&svg, &rasterizer.options()).unwrap();
            let unaided = rasterizer.render_tree(&unaided, 600, 100, 1).unwrap();
            let in_runs = rasterizer
                .rasterize_inner(&svg, 600, 100, 1, Arc::default(), false)
                .unwrap();
            (unaided, in_runs)
        };
        let (unaided, in_runs) = render("علاء");
        let hi_and_bang = ink_pixels(&render("").0);
        assert!(
            ink_pixels(&unaided) < hi_and_bang + 20,
            "the Arabic is drawn unaided"
        );
        assert!(ink_pixels(&in_runs) > hi_and_bang + 150);
        let (unaided, in_runs) = render("प्रिया");
        let differing = unaided
            .pixels()
            .iter()
            .zip(in_runs.pixels())
            .filter(|(a, b)| a.alpha().abs_diff(b.alpha()) > 128)
            .count();
        assert!(differing > 150, "only {differing} pixels differ");
    }

    #[test]
    fn fallback_faces_keep_the_weight_and_the_language() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        let database = typesetter.database();
        let faces = |text: &str, weight: u16| -> Vec<(String, u16)> {
            let style = Style {
                families: &INTER,
                weight,
                size: 20.0,
            };
            let layout = typesetter.layout(text, &style).unwrap();
            let mut faces: Vec<(String, u16)> = layout
                .runs
                .iter()
                .filter(|run| !run.blank)
                .map(|run| {
                    let face = database.face(run.face.id).unwrap();
                    (run.face.family.to_string(), face.weight.0)
                })
                .collect();
            // Runs of one face and different scripts (kanji, kana) count once.
            faces.dedup();
            faces
        };
        assert_eq!(
            faces("Hi Мария", 700),
            [("Inter".into(), 700), ("Noto Sans".into(), 700)]
        );
        assert_eq!(faces("Мария", 400), [("Noto Sans".into(), 400)]);
        assert_eq!(faces("张伟", 700), [("Noto Sans CJK SC".into(), 700)]);
        assert_eq!(
            faces("佐藤 さくら", 400),
            [("Noto Sans CJK JP".into(), 400)]
        );
        assert_eq!(faces("김민준", 400), [("Noto Sans CJK KR".into(), 400)]);
        assert_eq!(
            faces("Zoë 🎉", 400),
            [("Inter".into(), 400), ("Noto Color Emoji".into(), 400)]
        );
        // Punctuation inside right-to-left text stays in its font when that has it.
        assert_eq!(
            faces("مرحبا، محمد", 400),
            [("Noto Sans Arabic".into(), 400)]
        );
        assert_eq!(
            faces("שלום, דוד", 400),
            [
                ("Noto Sans Hebrew".into(), 400),
                ("Inter".into(), 400),
                ("Noto Sans Hebrew".into(), 400)
            ]
        );
    }

    #[test]
    fn a_character_no_font_has_is_found_and_never_left_blank() {
        let rasterizer = noto_rasterizer();
        let svg = text_svg("A\u{10FFFD}B", (200, 60), (10.0, 40.0), 24.0, 400, "start");
        assert_eq!(
            rasterizer.typesetter().missing_characters(&svg),
            [('\u{10FFFD}', 1)]
        );
        let with = rasterizer
            .rasterize_inner(&svg, 200, 60, 1, Arc::default(), true)
            .unwrap();
        let without = rasterizer
            .rasterize_inner(
                &text_svg("AB", (200, 60), (10.0, 40.0), 24.0, 400, "start"),
                200,
                60,
                1,
                Arc::default(),
                true,
            )
            .unwrap();
        // A stand-in (the replacement character) takes room and ink between A and B.
        assert!(ink_pixels(&with) > ink_pixels(&without) + 40);
        // With the shipped fonts only, Cyrillic has no font: question marks, counted, never
        // blank.
        let shipped = testkit::rasterizer();
        let cyrillic = text_svg("Мария", (200, 60), (10.0, 40.0), 24.0, 400, "start");
        assert_eq!(shipped.typesetter().missing_characters(&cyrillic).len(), 5);
        let boxes = shipped
            .rasterize_inner(&cyrillic, 200, 60, 1, Arc::default(), true)
            .unwrap();
        assert!(ink_pixels(&boxes) > 100);
        assert_eq!(shipped.typesetter().missing_counter().get(), 5);
    }
}
