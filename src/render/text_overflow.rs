//! Texts that run outside the image: found in a parsed tree (texts laid out as a render lays
//! them out), for `opentime check`'s warnings. What counts is a text's ink — what a reader would
//! miss — not its layout box (a tall script's descent below the last line is no loss); a pixel
//! of rounding is allowed.

use resvg::usvg;

/// A text reaching beyond the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct TextOverflow {
    /// The text's characters.
    pub text: String,
    /// How far it reaches past the left, top, right and bottom edges, in pixels (0 where it
    /// stays inside).
    pub past: [f32; 4],
}

/// Allowed overhang (rounding).
const SLACK: f32 = 1.0;

/// The texts of `tree` that reach outside its canvas.
pub(super) fn find(tree: &usvg::Tree) -> Vec<TextOverflow> {
    let size = tree.size();
    let mut found = Vec::new();
    visit(tree.root(), &mut |text: &usvg::Text| {
        let bounds = text.abs_stroke_bounding_box();
        let past = [
            -bounds.left(),
            -bounds.top(),
            bounds.right() - size.width(),
            bounds.bottom() - size.height(),
        ]
        .map(|d| if d > SLACK { d } else { 0.0 });
        if past.iter().any(|d| *d > 0.0) {
            found.push(TextOverflow {
                text: text.chunks().iter().map(|c| c.text()).collect(),
                past,
            });
        }
    });
    found
}

fn visit(group: &usvg::Group, found: &mut impl FnMut(&usvg::Text)) {
    for node in group.children() {
        match node {
            usvg::Node::Group(group) => visit(group, found),
            usvg::Node::Text(text) => found(text),
            usvg::Node::Path(_) | usvg::Node::Image(_) => {}
        }
    }
}
