//! Plain texts: a top-level `<text>` whose look comes only from presentation attributes this
//! module understands — position, font size, weight and family, anchor, a solid fill and
//! opacity, on the text or inherited from the root — and whose content is one run of
//! characters, read the way usvg reads it (tabs and newlines become spaces, runs of spaces
//! collapse, one leading and one trailing space go).
//!
//! Anything else (a `<tspan>`, `style`, `transform`, letter spacing, lists of positions,
//! relative units, `xml:space`, …) makes the text "not plain": it is then left to usvg, which
//! understands all of SVG's text. Being strict here is what lets [`super::glyph_text`] draw
//! plain texts itself and still look like usvg.

use svgtypes::{FontFamily, Length, LengthUnit, Paint};

/// Presentation attributes a plain text inherits from the root (or sets itself).
const INHERITED_ATTRIBUTES: &[&str] = &[
    "font-size",
    "font-weight",
    "font-family",
    "font-style",
    "text-anchor",
    "fill",
    "fill-opacity",
];

/// Attributes only a plain text itself may carry.
const OWN_ATTRIBUTES: &[&str] = &["x", "y", "opacity"];

/// Root attributes besides the inherited ones that leave the texts plain.
const ROOT_ATTRIBUTES: &[&str] = &["width", "height", "viewBox", "version"];

/// Where the text's advance sits against its `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One plain text, resolved: user units, a weight from 1 to 1000, straight RGBA.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainText {
    pub content: String,
    pub x: f32,
    pub y: f32,
    pub font_size: f32,
    pub families: Vec<FontFamily>,
    pub weight: u16,
    pub anchor: Anchor,
    pub rgba: [u8; 4],
}

/// Reads `text` (a child of `root`) as a plain text; `None` when it is not one.
/// `default_font_size` is the size usvg uses when nothing sets one.
pub(super) fn read(
    text: roxmltree::Node<'_, '_>,
    root: roxmltree::Node<'_, '_>,
    default_font_size: f32,
) -> Option<PlainText> {
    let allowed = |node: roxmltree::Node<'_, '_>, own: &[&str]| {
        node.attributes().all(|a| {
            a.namespace().is_some_and(|ns| ns != XML_NAMESPACE)
                || INHERITED_ATTRIBUTES.contains(&a.name())
                || own.contains(&a.name())
        })
    };
    if !allowed(text, OWN_ATTRIBUTES) || !allowed(root, ROOT_ATTRIBUTES) {
        return None;
    }
    let mut children = text.children();
    let content = match (children.next(), children.next()) {
        (Some(only), None) if only.is_text() => collapse_spaces(only.text()?),
        _ => return None,
    };
    if content.is_empty() {
        return None;
    }
    let inherited = |name: &str| text.attribute(name).or_else(|| root.attribute(name));

    let font_size = match inherited("font-size") {
        Some(value) => pixels(value).filter(|size| *size > 0.0)?,
        None => default_font_size,
    };
    let weight = match inherited("font-weight") {
        None | Some("normal") => 400,
        Some("bold") => 700,
        Some(value) => value
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|w| (1..=1000).contains(w))?,
    };
    if !matches!(inherited("font-style"), None | Some("normal")) {
        return None;
    }
    let families = match inherited("font-family") {
        Some(value) => svgtypes::parse_font_families(value).ok()?,
        None => Vec::new(),
    };
    let anchor = match inherited("text-anchor") {
        None | Some("start") => Anchor::Start,
        Some("middle") => Anchor::Middle,
        Some("end") => Anchor::End,
        Some(_) => return None,
    };
    let color = match inherited("fill") {
        None => svgtypes::Color::black(),
        Some(value) => match Paint::from_str(value).ok()? {
            Paint::Color(color) => color,
            _ => return None,
        },
    };
    let fill_opacity = opacity(inherited("fill-opacity"))?;
    // `opacity` is not inherited: on the text it fades the whole text (one solid colour, so
    // the same as fading the fill).
    let text_opacity = opacity(text.attribute("opacity"))?;
    let alpha = (f32::from(color.alpha) / 255.0 * fill_opacity * text_opacity * 255.0).round();

    Some(PlainText {
        content,
        x: position(text.attribute("x"))?,
        y: position(text.attribute("y"))?,
        font_size,
        families,
        weight,
        anchor,
        rgba: [
            color.red,
            color.green,
            color.blue,
            alpha.clamp(0.0, 255.0) as u8,
        ],
    })
}

const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// SVG 1.1 white space handling for a text with one text child and no `xml:space`.
pub(super) fn collapse_spaces(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if matches!(c, '\r' | '\n' | '\t') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    if out.starts_with(' ') {
        out.remove(0);
    }
    out
}

/// A length in user units: a plain number or pixels (other units are not plain).
fn pixels(value: &str) -> Option<f32> {
    let length: Length = value.trim().parse().ok()?;
    matches!(length.unit, LengthUnit::None | LengthUnit::Px)
        .then_some(length.number as f32)
        .filter(|n| n.is_finite())
}

/// A single `x` or `y` (absent is 0; a list of positions is not plain).
fn position(value: Option<&str>) -> Option<f32> {
    match value {
        None => Some(0.0),
        Some(value) => pixels(value),
    }
}

/// An opacity as a number or a percentage, clamped to 0–1 (absent is 1).
fn opacity(value: Option<&str>) -> Option<f32> {
    let Some(value) = value.map(str::trim) else {
        return Some(1.0);
    };
    let number = match value.strip_suffix('%') {
        Some(percent) => percent.parse::<f32>().ok()? / 100.0,
        None => value.parse::<f32>().ok()?,
    };
    number.is_finite().then_some(number.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_first(svg: &str) -> Option<PlainText> {
        let document = roxmltree::Document::parse(svg).unwrap();
        let root = document.root_element();
        let text = root.children().find(|n| n.has_tag_name("text")).unwrap();
        read(text, root, 12.0)
    }

    const ROOT: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" font-family="Inter" fill="#112233">"##;

    #[test]
    fn resolves_own_and_inherited_attributes() {
        let text = read_first(&format!(
            r#"{ROOT}<text x="4" y="20px" font-size="15" font-weight="bold" text-anchor="end" fill-opacity="50%">
              Hi   Zoë,	there </text></svg>"#
        ))
        .unwrap();
        assert_eq!(text.content, "Hi Zoë, there");
        assert_eq!((text.x, text.y, text.font_size), (4.0, 20.0, 15.0));
        assert_eq!((text.weight, text.anchor), (700, Anchor::End));
        assert_eq!(text.families, vec![FontFamily::Named("Inter".into())]);
        assert_eq!(text.rgba, [0x11, 0x22, 0x33, 128]);
    }

    #[test]
    fn defaults_follow_svg() {
        let text = read_first(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><text>a</text></svg>"#,
        )
        .unwrap();
        assert_eq!(
            (text.x, text.y, text.font_size, text.weight),
            (0.0, 0.0, 12.0, 400)
        );
        assert_eq!((text.anchor, text.rgba), (Anchor::Start, [0, 0, 0, 255]));
    }

    #[test]
    fn anything_else_is_not_plain() {
        for text in [
            r#"<text x="1 2 3">a</text>"#,
            r#"<text>a<tspan>b</tspan></text>"#,
            r#"<text style="fill:red">a</text>"#,
            r#"<text transform="rotate(3)">a</text>"#,
            r#"<text letter-spacing="2">a</text>"#,
            r#"<text font-size="2em">a</text>"#,
            r#"<text font-weight="bolder">a</text>"#,
            r#"<text font-style="italic">a</text>"#,
            r#"<text fill="url(#g)">a</text>"#,
            r#"<text fill="none">a</text>"#,
            r#"<text stroke="red">a</text>"#,
            r#"<text xml:space="preserve">a</text>"#,
            r#"<text>  </text>"#,
        ] {
            let svg = format!(r#"{ROOT}{text}</svg>"#);
            assert_eq!(read_first(&svg), None, "{text}");
        }
        let transformed_root = r#"<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9" transform="scale(2)"><text>a</text></svg>"#;
        assert_eq!(read_first(transformed_root), None);
    }
}
