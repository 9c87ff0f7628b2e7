//! Pixel work for one family of frames: the base frame's picture, the same picture with its
//! changing texts removed (the background they are drawn on), tiles (one text's new content
//! drawn over its background, at its real position) and the patches that paste them.
//!
//! Drawing a text last over the background gives the very pixels a full render gives, as
//! long as nothing painted after it overlaps it, no group around it is composited as a layer
//! (opacity, mask, filter, clip) and the changing texts stay clear of each other. All three
//! are checked here; when a check fails the caller renders the frame in full.

use resvg::tiny_skia::{self, IntRect, Pixmap, PixmapMut, Transform};
use resvg::usvg::{self, Node, Tree};

use crate::gif::Patch;

/// Extra pixels around a painted bounding box. Anti-aliasing only covers pixels the exact
/// geometry touches (rounded out), so one pixel is slack against float rounding.
const AA_MARGIN: f32 = 1.0;

/// A base frame's background and the rules for redrawing its changing texts on it.
pub(crate) struct TextLayer {
    /// The base frame without the changing texts (premultiplied RGBA, full canvas).
    background: Pixmap,
    /// The current picture. Texts are rasterized into it at their real position, so their
    /// pixels match a full render bit for bit (a shifted transform rounds glyph edges
    /// differently).
    work: Pixmap,
    /// Where tiles are drawn; equals `background` between uses.
    scratch: Pixmap,
    texts: Vec<TextState>,
    /// Root transform (template units → pixels).
    ts: Transform,
}

/// One changing text.
struct TextState {
    /// Pixel rectangle it covers now.
    rect: IntRect,
    /// Pixel bounds of everything painted after it (except the other changing texts).
    above: Vec<tiny_skia::Rect>,
}

/// Where a node paints ink, in pixels (strokes and filter regions included). Texts count
/// their glyph outlines, not their font-metrics box, so neighbouring digits stay apart.
fn painted_bounds(node: &Node, ts: Transform) -> Option<tiny_skia::Rect> {
    ink(node)?.transform(ts)
}

/// Painted bounds of the children of a group, in canvas units.
fn group_ink(group: &usvg::Group) -> Option<tiny_skia::Rect> {
    if !group.filters().is_empty() {
        return Some(group.abs_layer_bounding_box().to_rect());
    }
    group.children().iter().filter_map(ink).reduce(|a, b| {
        tiny_skia::Rect::from_ltrb(
            a.left().min(b.left()),
            a.top().min(b.top()),
            a.right().max(b.right()),
            a.bottom().max(b.bottom()),
        )
        .unwrap_or(a)
    })
}

fn ink(node: &Node) -> Option<tiny_skia::Rect> {
    let r = match node {
        Node::Group(g) => return group_ink(g),
        Node::Text(t) => return group_ink(t.flattened()),
        Node::Path(p) => p.abs_stroke_bounding_box(),
        Node::Image(i) => i.abs_bounding_box(),
    };
    (r.width() > 0.0 || r.height() > 0.0).then_some(r)
}

/// `r` grown by the AA margin, rounded out to pixels and clipped to the canvas.
fn pixel_rect(r: tiny_skia::Rect, width: u32, height: u32) -> Option<IntRect> {
    let x0 = (r.left() - AA_MARGIN).floor().max(0.0);
    let y0 = (r.top() - AA_MARGIN).floor().max(0.0);
    let x1 = (r.right() + AA_MARGIN).ceil().min(width as f32);
    let y1 = (r.bottom() + AA_MARGIN).ceil().min(height as f32);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    IntRect::from_ltrb(x0 as i32, y0 as i32, x1 as i32, y1 as i32)
}

fn union(a: IntRect, b: IntRect) -> Option<IntRect> {
    IntRect::from_ltrb(
        a.left().min(b.left()),
        a.top().min(b.top()),
        a.right().max(b.right()),
        a.bottom().max(b.bottom()),
    )
}

/// The path of child indices from `group` to the node with `id`.
fn path_to(group: &usvg::Group, id: &str) -> Option<Vec<usize>> {
    for (i, child) in group.children().iter().enumerate() {
        if child.id() == id {
            return Some(vec![i]);
        }
        if let Node::Group(g) = child {
            if let Some(mut rest) = path_to(g, id) {
                rest.insert(0, i);
                return Some(rest);
            }
        }
    }
    None
}

/// Copies `rect` of `src` into a new pixmap.
fn crop(src: &Pixmap, rect: IntRect) -> Option<Pixmap> {
    let mut out = Pixmap::new(rect.width(), rect.height())?;
    let (sw, row) = (src.width() as usize * 4, rect.width() as usize * 4);
    let (x, y) = (
        usize::try_from(rect.x()).ok()? * 4,
        usize::try_from(rect.y()).ok()?,
    );
    let data = src.data();
    for (i, dst) in out.data_mut().chunks_exact_mut(row).enumerate() {
        let at = (y + i) * sw + x;
        dst.copy_from_slice(data.get(at..at + row)?);
    }
    Some(out)
}

/// Pastes `patch` into `dst` at (`x`, `y`).
fn paste(dst: &mut Pixmap, patch: &Pixmap, x: i32, y: i32) -> Option<()> {
    let (dw, row) = (dst.width() as usize * 4, patch.width() as usize * 4);
    let (x, y) = (usize::try_from(x).ok()? * 4, usize::try_from(y).ok()?);
    let data = dst.data_mut();
    for (i, src) in patch.data().chunks_exact(row).enumerate() {
        let at = (y + i) * dw + x;
        data.get_mut(at..at + row)?.copy_from_slice(src);
    }
    Some(())
}

impl TextLayer {
    /// Prepares redrawing the texts with ids `ids` of the base frame `tree` (already
    /// rendered into `full` at `ts`). `None` when the shortcut would not give the full
    /// render's pixels.
    pub(crate) fn new(
        tree: &Tree,
        full: &Pixmap,
        ts: Transform,
        ids: &[&str],
    ) -> Option<TextLayer> {
        let (w, h) = (full.width(), full.height());
        let paths = ids
            .iter()
            .map(|id| path_to(tree.root(), id))
            .collect::<Option<Vec<_>>>()?;
        let mut texts = Vec::with_capacity(paths.len());
        for path in &paths {
            // Groups on the way down must not be layers; what is painted after the text
            // (later siblings at every level) must stay clear of it.
            let mut above = Vec::new();
            let mut group = tree.root();
            let mut target = None;
            let mut prefix = Vec::new();
            for (depth, &i) in path.iter().enumerate() {
                prefix.push(i);
                for (j, later) in group.children().iter().enumerate().skip(i + 1) {
                    let mut p = prefix.clone();
                    *p.last_mut()? = j;
                    if !paths.contains(&p) {
                        above.extend(painted_bounds(later, ts));
                    }
                }
                let node = group.children().get(i)?;
                if depth + 1 == path.len() {
                    target = Some(node);
                } else {
                    match node {
                        Node::Group(g) if !g.should_isolate() => group = g,
                        _ => return None,
                    }
                }
            }
            let rect = pixel_rect(painted_bounds(target?, ts)?, w, h)?;
            texts.push(TextState { rect, above });
        }
        let rects: Vec<IntRect> = texts.iter().map(|t| t.rect).collect();
        if overlapping(&rects) {
            return None;
        }

        // The background under the texts: everything else, drawn at its real position (only
        // what reaches their rectangles), then cut to those rectangles.
        let mut scratch = Pixmap::new(w, h)?;
        let region = Region {
            rects: rects.iter().map(|r| r.to_rect()).collect(),
            root_ts: ts,
        };
        let mut prefix = Vec::new();
        render_all_but(
            tree.root(),
            &paths,
            &mut prefix,
            ts,
            &region,
            &mut scratch.as_mut(),
        )?;
        let mut background = full.clone();
        for r in &rects {
            paste(&mut background, &crop(&scratch, *r)?, r.x(), r.y())?;
        }
        scratch.data_mut().copy_from_slice(background.data());
        Some(TextLayer {
            work: full.clone(),
            scratch,
            background,
            texts,
            ts,
        })
    }

    /// Draws text `i` from its standalone document `text` over that text's background.
    /// `None` when it would reach under something painted after it.
    pub(crate) fn tile(&mut self, i: usize, text: &Tree) -> Option<Tile> {
        let (w, h) = (self.background.width(), self.background.height());
        let painted = group_ink(text.root())?.transform(self.ts)?;
        let rect = pixel_rect(painted, w, h)?;
        let grown = rect.to_rect();
        if self
            .texts
            .get(i)?
            .above
            .iter()
            .any(|a| a.intersect(&grown).is_some())
        {
            return None;
        }
        // `scratch` equals `background` between calls.
        resvg::render(text, self.ts, &mut self.scratch.as_mut());
        let pixels = crop(&self.scratch, rect)?;
        paste(
            &mut self.scratch,
            &crop(&self.background, rect)?,
            rect.x(),
            rect.y(),
        )?;
        Some(Tile { rect, pixels })
    }

    /// The patch that turns the current picture into the one where the texts in `changes`
    /// (index into the ids given to [`TextLayer::new`], tile of the new content) are redrawn.
    /// `None` when the changed texts would overlap each other; the picture is then unchanged.
    pub(crate) fn patch(&mut self, changes: &[(usize, &Tile)]) -> Option<Patch> {
        // Every text's area after the change (changed ones: old ∪ new) must be disjoint.
        let mut areas: Vec<IntRect> = self.texts.iter().map(|t| t.rect).collect();
        let mut region: Option<IntRect> = None;
        for &(i, tile) in changes {
            let dirty = union(tile.rect, self.texts.get(i)?.rect)?;
            areas[i] = dirty;
            region = Some(region.map_or(Some(dirty), |r| union(r, dirty))?);
        }
        if overlapping(&areas) {
            return None;
        }
        for &(i, _) in changes {
            let old = self.texts[i].rect;
            paste(
                &mut self.work,
                &crop(&self.background, old)?,
                old.x(),
                old.y(),
            )?;
        }
        for &(i, tile) in changes {
            paste(&mut self.work, &tile.pixels, tile.rect.x(), tile.rect.y())?;
            self.texts[i].rect = tile.rect;
        }
        let region = region?;
        let pm = crop(&self.work, region)?;
        Some(Patch {
            x: region.x() as u32,
            y: region.y() as u32,
            width: region.width(),
            height: region.height(),
            rgba: pm.take(),
        })
    }

    /// A patch that changes nothing (for a frame equal to the previous one).
    pub(crate) fn unchanged(&self) -> Option<Patch> {
        unchanged(&self.work)
    }

    /// Whether redrawing each text from its standalone document (`texts[i]` for id `i`, with
    /// the base content) over the background reproduces `full` within `tolerance` per
    /// channel: a guard against anything the splice missed (CSS, references, odd nesting).
    pub(crate) fn reproduces(&mut self, texts: &[Tree], full: &Pixmap, tolerance: u8) -> bool {
        let base_rects: Vec<IntRect> = self.texts.iter().map(|t| t.rect).collect();
        let tiles: Option<Vec<Tile>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.tile(i, t))
            .collect();
        let ok = tiles.is_some_and(|tiles| {
            let changes: Vec<(usize, &Tile)> = tiles.iter().enumerate().collect();
            // Only the texts' old and new rectangles can differ from `full`.
            self.patch(&changes).is_some()
                && tiles.iter().zip(&base_rects).all(|(tile, old)| {
                    let region = union(tile.rect, *old);
                    let got = region.and_then(|r| crop(&self.work, r));
                    let want = region.and_then(|r| crop(full, r));
                    got.zip(want).is_some_and(|(g, w)| {
                        g.data()
                            .iter()
                            .zip(w.data())
                            .all(|(a, b)| a.abs_diff(*b) <= tolerance)
                    })
                })
        });
        // Continue from the exact base picture either way.
        for (state, rect) in self.texts.iter_mut().zip(base_rects) {
            state.rect = rect;
        }
        self.work.data_mut().copy_from_slice(full.data());
        ok
    }
}

/// A changing text drawn over its background: pasted, it redraws that text.
#[derive(Debug, Clone)]
pub(crate) struct Tile {
    rect: IntRect,
    pixels: Pixmap,
}

/// A one-pixel patch repeating the top-left pixel of `picture`.
pub(crate) fn unchanged(picture: &Pixmap) -> Option<Patch> {
    Some(Patch {
        x: 0,
        y: 0,
        width: 1,
        height: 1,
        rgba: picture.data().get(..4)?.to_vec(),
    })
}

/// Whether any two rectangles share a pixel.
fn overlapping(rects: &[IntRect]) -> bool {
    rects.iter().enumerate().any(|(i, a)| {
        rects[i + 1..].iter().any(|b| {
            a.left() < b.right()
                && b.left() < a.right()
                && a.top() < b.bottom()
                && b.top() < a.bottom()
        })
    })
}

/// Pixel rectangles and the root transform that maps node bounds to pixels.
struct Region {
    rects: Vec<tiny_skia::Rect>,
    root_ts: Transform,
}

/// Renders every node under `group` that reaches `region`, except those at `skip` (paths of
/// child indices from the root; `prefix` is the path of `group`), as `resvg::render` would.
fn render_all_but(
    group: &usvg::Group,
    skip: &[Vec<usize>],
    prefix: &mut Vec<usize>,
    ts: Transform,
    region: &Region,
    pm: &mut PixmapMut,
) -> Option<()> {
    for (i, node) in group.children().iter().enumerate() {
        prefix.push(i);
        let skipped = skip.iter().any(|p| p == prefix);
        let holds_skipped = skip
            .iter()
            .any(|p| p.len() > prefix.len() && p.starts_with(prefix));
        let result = if skipped {
            Some(())
        } else if holds_skipped {
            match node {
                Node::Group(g) => {
                    render_all_but(g, skip, prefix, ts.pre_concat(g.transform()), region, pm)
                }
                _ => None,
            }
        } else {
            render_if_reaching(node, ts, region, pm)
        };
        prefix.pop();
        result?;
    }
    Some(())
}

/// Renders `node` (drawn at parent transform `ts`) if it reaches one of the region's rects.
fn render_if_reaching(
    node: &Node,
    ts: Transform,
    region: &Region,
    pm: &mut PixmapMut,
) -> Option<()> {
    let Some(painted) = painted_bounds(node, region.root_ts) else {
        return Some(());
    };
    if !region.rects.iter().any(|r| painted.intersect(r).is_some()) {
        return Some(());
    }
    // `resvg::render_node` shifts by the node's bounding box; undo that shift.
    let b = node.abs_layer_bounding_box()?; // a stroked line cannot be rendered on its own
    resvg::render_node(node, ts.pre_translate(b.x(), b.y()), pm)
}
