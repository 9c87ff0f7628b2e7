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
