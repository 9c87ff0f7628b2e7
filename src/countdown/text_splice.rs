//! Sees a frame's SVG as fixed markup with holes: the plain contents of its `<text>` elements.
//! Tells whether another frame differs only in those contents, and builds a standalone SVG
//! holding just one text, so redrawing a changed text costs one tiny parse.
//!
//! This is string surgery on our own Tera output, not a general XML library: it understands
//! tags, quoted attributes, comments, CDATA and processing instructions, and refuses (returns
//! `None`) whatever it does not understand, which sends the frame down the full-render path.

use std::ops::Range;

/// Elements a dynamic text may sit in (they only group; they paint nothing themselves).
const ANCESTORS: [&str; 3] = ["svg", "g", "a"];

/// Top-level elements that paint nothing but may be referenced by the text (`url(#…)`, CSS).
const GLOBALS: [&str; 10] = [
    "defs",
    "style",
    "linearGradient",
    "radialGradient",
    "pattern",
    "clipPath",
    "mask",
    "filter",
    "symbol",
    "marker",
];

/// Prefix of the ids given to texts that have none, to find them in the parsed tree.
const INJECTED_ID: &str = "opentime-text-";

/// A `<text>` element with plain character content, which may change from frame to frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextSlot {
    /// The character data in the base SVG.
    content: Range<usize>,
    /// Where to insert ` id="…"` in the base SVG, if the element has no id.
    inject_at: Option<usize>,
    /// The element's id (its own or the injected one).
    id: String,
    /// Standalone document up to the content: ancestors' start tags, globals, `<text …>`.
    head: String,
    /// Standalone document after the content: `</text>` and the ancestors' end tags.
    tail: String,
}

/// A base frame's SVG seen as fixed markup with [`TextSlot`]s in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skeleton {
    slots: Vec<TextSlot>,
}

/// An open element: its name and the byte range of its start tag.
type OpenElement<'a> = (&'a str, (usize, usize));

#[derive(Debug, Clone, Copy)]
enum Tag<'a> {
    Start {
        name: &'a str,
        range: (usize, usize),
        self_closing: bool,
    },
    End {
        name: &'a str,
        end: usize,
    },
    /// Comment, processing instruction, CDATA, doctype.
    Other,
}

/// The next markup item at or after `from`: its start, end (exclusive) and kind. `Err(())`
/// for markup we do not handle.
fn next_tag(s: &str, from: usize) -> Result<Option<(usize, usize, Tag<'_>)>, ()> {
    let b = s.as_bytes();
    let Some(lt) = s.get(from..).and_then(|r| r.find('<')).map(|i| from + i) else {
        return Ok(None);
    };
    let rest = &s[lt..];
    let close = |pat: &str| rest.find(pat).map(|i| lt + i + pat.len()).ok_or(());
    if rest.starts_with("<!--") {
        return Ok(Some((lt, close("-->")?, Tag::Other)));
    }
    if rest.starts_with("<![CDATA[") {
        return Ok(Some((lt, close("]]>")?, Tag::Other)));
    }
    if rest.starts_with("<?") {
        return Ok(Some((lt, close("?>")?, Tag::Other)));
    }
    if rest.starts_with("<!") {
        let end = close(">")?;
        // An internal DTD subset could define entities; not ours to interpret.
        return if s[lt..end].contains('[') {
            Err(())
        } else {
            Ok(Some((lt, end, Tag::Other)))
        };
    }
    let is_end = rest.starts_with("</");
    let name_start = lt + if is_end { 2 } else { 1 };
    let mut i = name_start;
    while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>') {
        i += 1;
    }
    let name = &s[name_start..i];
    if name.is_empty() {
        return Err(());
    }
    // Find the closing '>' outside quoted attribute values.
    let mut quote = None;
    while i < b.len() {
        match (quote, b[i]) {
            (None, b'"' | b'\'') => quote = Some(b[i]),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => break,
            _ => {}
        }
        i += 1;
    }
    if i >= b.len() {
        return Err(());
    }
    let end = i + 1;
    let tag = if is_end {
        Tag::End { name, end }
    } else {
        Tag::Start {
            name,
            range: (lt, end),
            self_closing: b[i - 1] == b'/',
        }
    };
    Ok(Some((lt, end, tag)))
}

/// Reads the value of attribute `id` from a start tag, if present.
fn id_attr(tag: &str) -> Option<&str> {
    let mut rest = tag;
    while let Some(i) = rest.find("id=") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 3..];
        if before.is_some_and(char::is_whitespace) {
            let q = after.chars().next()?;
            if q == '"' || q == '\'' {
                let v = &after[1..];
                return v.find(q).map(|end| &v[..end]);
            }
        }
        rest = after;
    }
    None
}

impl Skeleton {
    /// Finds every `<text>` of `base` with plain content nested in `svg`/`g`/`a` elements
    /// only. `None` for markup this module does not understand.
    pub(crate) fn new(base: &str) -> Option<Skeleton> {
        struct Found<'a> {
            content: Range<usize>,
            open: Vec<OpenElement<'a>>,
        }
        let mut stack: Vec<OpenElement> = Vec::new();
        let mut globals: Vec<Range<usize>> = Vec::new();
        let mut global_open: Option<usize> = None;
        let mut found: Vec<Found> = Vec::new();
        let mut pos = 0;
        let mut last_end = 0;
        let mut last_start_text: Option<(usize, usize)> = None;
        while let Some((start, end, tag)) = next_tag(base, pos).ok()? {
            match tag {
                Tag::Start {
                    name,
                    range,
                    self_closing,
                } => {
                    if stack.len() == 1 && global_open.is_none() && GLOBALS.contains(&name) {
                        if self_closing {
                            globals.push(start..end);
                        } else {
                            global_open = Some(start);
                        }
                    }
                    last_start_text = None;
                    if !self_closing {
                        stack.push((name, range));
                        last_start_text = (name == "text").then_some(range);
                    }
                }
                Tag::End { name, end } => {
                    let simple_text =
                        name == "text" && stack.last().map(|e| Some(e.1)) == Some(last_start_text);
                    let ancestors = stack.get(..stack.len().saturating_sub(1)).unwrap_or(&[]);
                    if simple_text
                        && ancestors.first().map(|e| e.0) == Some("svg")
                        && ancestors.iter().all(|(n, _)| ANCESTORS.contains(n))
                    {
                        found.push(Found {
                            content: last_end..start,
                            open: stack.clone(),
                        });
                    }
                    if stack.pop().map(|e| e.0) != Some(name) {
                        return None;
                    }
                    if let Some(gs) = global_open {
                        if stack.len() == 1 {
                            globals.push(gs..end);
                            global_open = None;
                        }
                    }
                    last_start_text = None;
                }
                Tag::Other => last_start_text = None,
            }
            last_end = end;
            pos = end;
        }
        if !stack.is_empty() {
            return None;
        }
        let slots = found
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let (text_tag, ancestors) = f.open.split_last()?;
                let text_start = base.get(text_tag.1 .0..text_tag.1 .1)?;
                let (id, inject_at) = match id_attr(text_start) {
                    Some(id) => (id.to_owned(), None),
                    None => (
                        format!("{INJECTED_ID}{i}"),
                        Some(text_tag.1 .0 + "<text".len()),
                    ),
                };
                let mut head = String::new();
                for (i, (_, r)) in ancestors.iter().enumerate() {
                    head.push_str(base.get(r.0..r.1)?);
                    if i == 0 {
                        for g in &globals {
                            head.push_str(base.get(g.clone())?);
                        }
                    }
                }
                head.push_str(text_start);
                let mut tail = String::from("</text>");
                for (name, _) in ancestors.iter().rev() {
                    tail.push_str("</");
                    tail.push_str(name);
                    tail.push('>');
                }
                Some(TextSlot {
                    content: f.content,
                    inject_at,
                    id,
                    head,
                    tail,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Skeleton { slots })
    }

    pub(crate) fn slots(&self) -> &[TextSlot] {
        &self.slots
    }

    /// Each slot's content in `frame`, when `frame` is `base` with only slot contents changed.
    pub(crate) fn contents<'a>(&self, base: &str, frame: &'a str) -> Option<Vec<&'a str>> {
        let mut out = Vec::with_capacity(self.slots.len());
        let (mut b, mut f) = (0, 0);
        for slot in &self.slots {
            let gap = base.get(b..slot.content.start)?;
            let rest = frame.get(f..)?;
            if !rest.starts_with(gap) {
                return None;
            }
            let rest = rest.get(gap.len()..)?;
            let len = rest.find('<')?;
            out.push(rest.get(..len)?);
            f += gap.len() + len;
            b = slot.content.end;
        }
        (base.get(b..)? == frame.get(f..)?).then_some(out)
    }

    /// `base` with an id on each slot in `which` that has none.
    pub(crate) fn base_with_ids(&self, base: &str, which: &[usize]) -> String {
        let mut out = String::with_capacity(base.len() + 32 * which.len());
        let mut at = 0;
        for slot in which.iter().filter_map(|&i| self.slots.get(i)) {
            if let Some(pos) = slot
                .inject_at
                .filter(|&p| p >= at && base.is_char_boundary(p))
            {
                out.push_str(&base[at..pos]);
                out.push_str(" id=\"");
                out.push_str(&slot.id);
                out.push('"');
                at = pos;
            }
        }
        out.push_str(&base[at..]);
        out
    }
}

impl TextSlot {
    /// The element's id in the document returned by [`Skeleton::base_with_ids`].
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// A standalone SVG with only this text, holding `content`.
    pub(crate) fn standalone(&self, content: &str) -> String {
        let mut s = String::with_capacity(self.head.len() + content.len() + self.tail.len());
        s.push_str(&self.head);
        s.push_str(content);
        s.push_str(&self.tail);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"<svg width="10" height="10"><defs><linearGradient id="g"/></defs><rect/><g transform="translate(1 2)"><text x="5" fill="url(#g)">59</text><text id="lbl">S</text></g></svg>"#;

    #[test]
    fn finds_text_slots_and_splices_them() {
        let sk = Skeleton::new(A).expect("understood");
        assert_eq!(sk.slots().len(), 2);
        assert_eq!(sk.contents(A, A), Some(vec!["59", "S"]));
        let b = A.replace(">59<", ">7<").replace(">S<", ">Sekunden<");
        assert_eq!(sk.contents(A, &b), Some(vec!["7", "Sekunden"]));
        assert_eq!(sk.contents(A, &A.replace(r#"x="5""#, r#"x="6""#)), None);
        assert_eq!(
            sk.contents(A, &A.replace(">59<", "><tspan>5</tspan><")),
            None
        );
        assert_eq!(
            sk.slots()[0].standalone("42"),
            r#"<svg width="10" height="10"><defs><linearGradient id="g"/></defs><g transform="translate(1 2)"><text x="5" fill="url(#g)">42</text></g></svg>"#
        );
        assert_eq!(sk.slots()[0].id(), "opentime-text-0");
        assert_eq!(sk.slots()[1].id(), "lbl");
        let with_ids = sk.base_with_ids(A, &[0, 1]);
        assert!(with_ids.contains(r#"<text id="opentime-text-0" x="5""#));
        assert_eq!(with_ids.len(), A.len() + r#" id="opentime-text-0""#.len());
    }

    #[test]
    fn only_plain_texts_in_plain_groups_are_slots() {
        let p = A
            .replace("<g transform", "<pattern transform")
            .replace("</g>", "</pattern>");
        assert_eq!(Skeleton::new(&p).map(|s| s.slots().len()), Some(0));
        let mixed = r#"<svg><text>a<tspan>b</tspan></text><text>c</text></svg>"#;
        let sk = Skeleton::new(mixed).expect("understood");
        assert_eq!(sk.contents(mixed, mixed), Some(vec!["c"]));
        let dtd = format!("<!DOCTYPE svg [<!ENTITY x \"1\">]>{A}");
        assert!(Skeleton::new(&dtd).is_none());
        assert!(Skeleton::new("<svg><text>1").is_none());
        assert!(Skeleton::new("<svg></g>").is_none());
    }

    #[test]
    fn skips_comments_and_quoted_brackets() {
        let a = r#"<svg><!-- <text>x</text> --><g data-x="a>b"><text>1</text></g></svg>"#;
        let sk = Skeleton::new(a).expect("understood");
        assert_eq!(sk.contents(a, &a.replace(">1<", ">2<")), Some(vec!["2"]));
        assert_eq!(
            sk.slots()[0].standalone("3"),
            r#"<svg><g data-x="a>b"><text>3</text></g></svg>"#
        );
    }

    #[test]
    fn arbitrary_edits_never_panic() {
        let mut x = 7u32;
        let mut rnd = |n: usize| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 8) as usize % n.max(1)
        };
        let pieces = [
            "<", ">", "</text>", "<text>", "\"", "é", "<!--", "-->", "x", "",
        ];
        let sk = Skeleton::new(A).expect("understood");
        for _ in 0..3_000 {
            let mut b = A.to_string();
            for _ in 0..1 + rnd(3) {
                let mut at = rnd(b.len());
                while !b.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + rnd(4)).min(b.len());
                while !b.is_char_boundary(end) {
                    end -= 1;
                }
                b.replace_range(at..end.max(at), pieces[rnd(pieces.len())]);
            }
            let _ = sk.contents(A, &b);
            if let Some(other) = Skeleton::new(&b) {
                let _ = other.contents(&b, A);
                let _ = other.base_with_ids(&b, &[0, 1, 2, 7]);
            }
        }
    }
}
