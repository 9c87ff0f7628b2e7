//! Characters that no font has, in an SVG's texts. They are drawn as the missing-glyph box of
//! the text's font (never left out silently); the caller counts them in a metric and tells the
//! operator which ones they were, once per campaign (`crate::blocks`).
//!
//! Every render of an image block is checked, so the check is made cheap: the SVG's characters
//! beyond ASCII are looked up in a table of what is known about the Basic Multilingual Plane
//! (filled as characters are first seen), and only an SVG with a missing one (or with character
//! references) is parsed, to count only what sits in a `<text>`.

use super::font_fallback::{self, FontChoice};
use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const COVERED: u8 = 1;
const MISSING: u8 = 2;

/// What is known of each character of the Basic Multilingual Plane.
pub(crate) struct Coverage {
    plane: Box<[AtomicU8]>,
}

impl Coverage {
    pub(crate) fn new() -> Self {
        Self {
            plane: (0..0x1_0000).map(|_| AtomicU8::new(UNKNOWN)).collect(),
        }
    }

    /// Whether some font has `c` (ASCII is the default font's).
    fn has(&self, choice: &FontChoice, c: char) -> bool {
        if c.is_ascii() || font_fallback::is_invisible(c) || c.is_whitespace() {
            return true;
        }
        let Some(slot) = self.plane.get(c as usize) else {
            return choice.has_any(c);
        };
        match slot.load(Ordering::Relaxed) {
            COVERED => true,
            MISSING => false,
            _ => {
                let has = choice.has_any(c);
                slot.store(if has { COVERED } else { MISSING }, Ordering::Relaxed);
                has
            }
        }
    }

    /// The characters of `svg`'s texts that no font has, each with how often it occurs, in
    /// order of first occurrence.
    pub(crate) fn missing_in(&self, choice: &FontChoice, svg: &str) -> Vec<(char, usize)> {
        let references = svg.contains("&#");
        if svg.is_ascii() && !references {
            return Vec::new();
        }
        if !references && svg.chars().all(|c| self.has(choice, c)) {
            return Vec::new();
        }
        let Ok(document) = roxmltree::Document::parse(svg) else {
            return Vec::new();
        };
        let mut missing: Vec<(char, usize)> = Vec::new();
        let in_text = |node: roxmltree::Node<'_, '_>| {
            node.ancestors()
                .any(|a| a.is_element() && a.has_tag_name("text"))
        };
        for node in document
            .descendants()
            .filter(|n| n.is_text() && in_text(*n))
        {
            for c in node.text().unwrap_or_default().chars() {
                if self.has(choice, c) {
                    continue;
                }
                match missing.iter_mut().find(|(m, _)| *m == c) {
                    Some((_, count)) => *count += 1,
                    None => missing.push((c, 1)),
                }
            }
        }
        missing
    }
}
