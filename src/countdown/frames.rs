//! The frames of a countdown: a Tera SVG template rendered once per second of the animation,
//! counting down from the request's moment and holding at zero.
//!
//! Rendering every frame in full (Tera → usvg → resvg) costs about a millisecond a frame,
//! mostly text shaping. Between two seconds, though, only a few `<text>` contents change. So
//! after one full render (the "base"), the frames whose SVG differs from the base only in text
//! contents (`text_splice`) are drawn by parsing a standalone SVG
//! holding just a changed text and rasterizing it, at its real position, over the base with
//! its changing texts removed (`layer`). Each distinct (text, content) is drawn
//! once per base and pasted afterwards (with one text per digit, `9` is drawn once, not six
//! times a minute). Whatever the shortcut cannot prove pixel-exact (layout changes, a text
//! under a layer or under later paint) renders in full and becomes the next base.

use std::collections::hash_map::{Entry, HashMap};

use resvg::tiny_skia::Pixmap;
use resvg::usvg::Tree;

use super::deadline::{Remaining, UnitVisibility};
use super::frame_template::{frame_context, FrameError, FrameState, FrameTemplate};
use super::labels::{LabelStyle, Labels, Lang};
use super::layer::{self, TextLayer, Tile};
use super::text_splice::{Skeleton, TextSlot};
use crate::gif::Patch;
use crate::render::svg;

/// Per-channel difference allowed between the shortcut and a full render of a base frame.
const SHORTCUT_TOLERANCE: u8 = 2;

/// What the frames show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlan {
    /// Time left at the first frame.
    pub start: Remaining,
    /// Frames, one second apart.
    pub count: usize,
    pub lang: Lang,
    pub style: LabelStyle,
    pub visibility: UnitVisibility,
}

/// How frames are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Full render only when needed, text patches otherwise (same pixels, much faster).
    #[default]
    Incremental,
    /// Every frame rendered in full: the reference the incremental path is tested against.
    FullEachFrame,
}

/// Rendered frames: the first a full picture, each later one a patch over its predecessor.
#[derive(Debug)]
pub struct CountdownFrames {
    /// Size in device pixels.
    pub width: u32,
    pub height: u32,
    pub patches: Vec<Patch>,
    /// Frames after the last patch that repeat it (the countdown reached zero).
    pub held: usize,
    /// How many frames were rendered in full.
    pub full_renders: usize,
}

impl CountdownFrames {
    /// Whether the countdown reaches zero within the frames.
    pub fn reaches_zero(&self) -> bool {
        self.held > 0
    }
}

/// The frame state and labels for frame `k` of `plan`. Units are chosen once, from the first
/// frame, so the layout does not jump within one animation.
fn state_at(plan: &FramePlan, k: usize) -> (FrameState, Labels) {
    let left = plan.start.after(k as u64);
    let state = FrameState {
        left,
        shown: plan.start.shown(plan.visibility),
        expired: false,
    };
    (state, Labels::new(plan.lang, plan.style, &left))
}

/// Renders the frames of `plan`. Frames after the countdown reaches zero are not rendered;
/// they are counted in [`CountdownFrames::held`].
pub fn render_frames(
    t: &FrameTemplate,
    plan: &FramePlan,
    strategy: Strategy,
) -> Result<CountdownFrames, FrameError> {
    let (width, height) = t.pixel_size()?;
    let count = plan.count.max(1);
    // Frames up to and including the zero frame.
    let distinct = usize::try_from(plan.start.total)
        .map_or(count, |t| t.saturating_add(1))
        .min(count);
    let base_ctx = t.base_context();
    let source = |k: usize| -> Result<String, FrameError> {
        let (state, labels) = state_at(plan, k);
        t.fill(&frame_context(base_ctx.clone(), &state, &labels))
    };
    let mut patches = Vec::with_capacity(distinct);
    let mut full_renders = 0;
    let full_patch = |pm: Pixmap| Patch {
        x: 0,
        y: 0,
        width,
        height,
        rgba: pm.take(),
    };

    if strategy == Strategy::FullEachFrame {
        for k in 0..distinct {
            let (_, pm) = t.rasterize(&source(k)?)?;
            patches.push(full_patch(pm));
        }
        return Ok(CountdownFrames {
            width,
            height,
            patches,
            held: count - distinct,
            full_renders: distinct,
        });
    }

    // Every frame's SVG first: it tells which texts change over a run of frames.
    let svgs = (0..distinct).map(source).collect::<Result<Vec<_>, _>>()?;
    let mut k = 0;
    while k < distinct {
        let base = &svgs[k];
        let skeleton = Skeleton::new(base);
        let family = skeleton
            .as_ref()
            .and_then(|sk| Family::after(sk, base, svgs.get(k + 1..).unwrap_or(&[])));
        let doc = match (&skeleton, &family) {
            (Some(sk), Some(f)) if !f.changing.is_empty() => sk.base_with_ids(base, &f.changing),
            _ => base.clone(),
        };
        let (tree, pm) = t.rasterize(&doc)?;
        full_renders += 1;
        let mut layer = match (&skeleton, &family) {
            (Some(sk), Some(f)) => text_layer(t, sk, &tree, &pm, &f.changing, &f.base),
            _ => None,
        };
        let same = layer::unchanged(&pm);
        patches.push(full_patch(pm));
        k += 1;
        let (Some(sk), Some(family)) = (&skeleton, family) else {
            continue;
        };
        let mut tiles = Tiles::new();
        let mut prev = family.base;
        for contents in family.frames {
            let changes: Vec<(usize, &str)> = family
                .changing
                .iter()
                .enumerate()
                .filter(|(_, &slot)| contents[slot] != prev[slot])
                .map(|(i, &slot)| (i, contents[slot]))
                .collect();
            let patch = if changes.is_empty() {
                layer
                    .as_ref()
                    .map_or_else(|| same.clone(), TextLayer::unchanged)
            } else {
                layer
                    .as_mut()
                    .and_then(|l| redraw(t, sk, l, &mut tiles, &family.changing, &changes))
            };
            let Some(patch) = patch else { break };
            patches.push(patch);
            prev = contents;
            k += 1;
        }
    }
    Ok(CountdownFrames {
        width,
        height,
        patches,
        held: count - distinct,
        full_renders,
    })
}

/// The frames after a base that differ from it only in text contents.
struct Family<'a> {
    /// The base's slot contents.
    base: Vec<&'a str>,
    /// Each following frame's slot contents, up to the first frame with other changes.
    frames: Vec<Vec<&'a str>>,
    /// Slots whose content changes somewhere in `frames`, ascending.
    changing: Vec<usize>,
}

impl<'a> Family<'a> {
    fn after(sk: &Skeleton, base: &'a str, next: &'a [String]) -> Option<Family<'a>> {
        let first = sk.contents(base, base)?;
        let mut frames = Vec::new();
        let mut changing: Vec<usize> = Vec::new();
        for svg in next {
            let Some(c) = sk.contents(base, svg) else {
                break;
            };
            for (i, (a, b)) in c.iter().zip(&first).enumerate() {
                if a != b && !changing.contains(&i) {
                    changing.push(i);
                }
            }
            frames.push(c);
        }
        changing.sort_unstable();
        Some(Family {
            base: first,
            frames,
            changing,
        })
    }
}

/// Sets up redrawing the `changing` slots of a base frame, checking the shortcut reproduces
/// the base frame itself.
fn text_layer(
    t: &FrameTemplate,
    sk: &Skeleton,
    tree: &Tree,
    full: &Pixmap,
    changing: &[usize],
    contents: &[&str],
) -> Option<TextLayer> {
    if changing.is_empty() {
        return None;
    }
    let slots: Vec<&TextSlot> = changing
        .iter()
        .map(|&i| sk.slots().get(i))
        .collect::<Option<_>>()?;
    let ids: Vec<&str> = slots.iter().map(|s| s.id()).collect();
    let ts = svg::fit(tree, full.width(), full.height());
    let mut layer = TextLayer::new(tree, full, ts, &ids)?;
    let alone = slots
        .iter()
        .zip(changing)
        .map(|(s, &i)| t.parse(&s.standalone(contents.get(i)?)).ok())
        .collect::<Option<Vec<_>>>()?;
    layer
        .reproduces(&alone, full, SHORTCUT_TOLERANCE)
        .then_some(layer)
}

/// Tiles already drawn in this family of frames, by (index into `changing`, content).
type Tiles<'a> = HashMap<(usize, &'a str), Tile>;

/// The patch redrawing `changes` (index into `changing`, new content), drawing each distinct
/// content once per family.
fn redraw<'a>(
    t: &FrameTemplate,
    sk: &Skeleton,
    layer: &mut TextLayer,
    tiles: &mut Tiles<'a>,
    changing: &[usize],
    changes: &[(usize, &'a str)],
) -> Option<Patch> {
    for &(i, content) in changes {
        if let Entry::Vacant(e) = tiles.entry((i, content)) {
            let slot = sk.slots().get(*changing.get(i)?)?;
            let tree = t.parse(&slot.standalone(content)).ok()?;
            e.insert(layer.tile(i, &tree)?);
        }
    }
    let refs = changes
        .iter()
        .map(|&(i, content)| Some((i, tiles.get(&(i, content))?)))
        .collect::<Option<Vec<_>>>()?;
    layer.patch(&refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::countdown::testkit::{self, max_diff};
    use serde_json::{Map, Value};

    fn plan(start: u64, count: usize) -> FramePlan {
        FramePlan {
            start: Remaining::from_secs(start),
            count,
            lang: Lang::En,
            style: LabelStyle::Caps,
            visibility: UnitVisibility::HideZeroDays,
        }
    }

    /// Applies patches in order and returns the picture after each.
    pub(crate) fn compose(f: &CountdownFrames) -> Vec<Vec<u8>> {
        let w = f.width as usize;
        let mut canvas = vec![0u8; w * f.height as usize * 4];
        let mut out = Vec::new();
        for p in &f.patches {
            let row = p.width as usize * 4;
            for (i, src) in p.rgba.chunks_exact(row).enumerate() {
                let at = ((p.y as usize + i) * w + p.x as usize) * 4;
                canvas[at..at + row].copy_from_slice(src);
            }
            out.push(canvas.clone());
        }
        out
    }

    #[test]
    fn incremental_frames_equal_full_renders() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        // 1 day 02:03:30 — the minutes roll over at frame 31, so this also covers a re-base.
        let p = plan(86_400 + 2 * 3_600 + 3 * 60 + 30, 60);
        let fast = render_frames(&t, &p, Strategy::Incremental).expect("renders");
        let full = render_frames(&t, &p, Strategy::FullEachFrame).expect("renders");
        assert_eq!(fast.patches.len(), 60);
        // One full render: the minutes' rollover is a second text redrawn, not a re-base.
        assert_eq!(fast.full_renders, 1);
        assert!(
            fast.patches[1..].iter().any(|p| p.width < 150),
            "patches are small"
        );
        let (a, b) = (compose(&fast), compose(&full));
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            // Bit-identical: patches are rasterized at their real position.
            assert_eq!(max_diff(x, y), 0, "frame {k} differs");
        }
        // And the frames really change: frame 1 is not frame 0.
        assert!(max_diff(&a[0], &a[1]) > 100);
    }

    #[test]
    fn frames_hold_at_zero() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        let f = render_frames(&t, &plan(5, 60), Strategy::Incremental).expect("renders");
        assert_eq!((f.patches.len(), f.held), (6, 54));
        assert!(f.reaches_zero());
        let last = compose(&f).pop().expect("frames");
        let zero = FrameState {
            left: Remaining::from_secs(0),
            shown: Remaining::from_secs(5).shown(UnitVisibility::HideZeroDays),
            expired: false,
        };
        let labels = Labels::new(Lang::En, LabelStyle::Caps, &zero.left);
        let want = t.render_still(&zero, &labels).expect("renders");
        assert!(max_diff(&last, want.data()) <= SHORTCUT_TOLERANCE);
    }

    #[test]
    fn words_labels_and_extra_context_still_match() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let mut extra = Map::new();
        extra.insert("accent".into(), Value::from("#38bdf8"));
        let t = FrameTemplate {
            extra: &extra,
            ..testkit::demo(&tera, &svg)
        };
        // Seconds label flips between "Seconds" and "Second" at :01 (two texts change).
        let p = FramePlan {
            style: LabelStyle::Words,
            lang: Lang::Fr,
            ..plan(3_600 + 5, 8)
        };
        let fast = render_frames(&t, &p, Strategy::Incremental).expect("renders");
        let full = render_frames(&t, &p, Strategy::FullEachFrame).expect("renders");
        for (x, y) in compose(&fast).iter().zip(&compose(&full)) {
            assert_eq!(max_diff(x, y), 0);
        }
        let svg0 = t
            .svg_source(&state_at(&p, 0).0, &state_at(&p, 0).1)
            .expect("renders");
        assert!(svg0.contains("#38bdf8") && svg0.contains("Secondes"));
    }

    #[test]
    fn template_errors_and_bad_sizes_are_typed() {
        let (mut tera, svg) = (testkit::tera(), testkit::options());
        tera.add_raw_template("broken.svg", "<svg>{{ nope }}</svg>")
            .expect("compiles");
        tera.add_raw_template("notsvg.svg", "hello")
            .expect("compiles");
        let t = |name| FrameTemplate {
            name,
            ..testkit::demo(&tera, &svg)
        };
        assert!(matches!(
            render_frames(&t("broken.svg"), &plan(10, 3), Strategy::Incremental),
            Err(FrameError::Template(m)) if m.contains("nope")
        ));
        assert!(matches!(
            render_frames(&t("notsvg.svg"), &plan(10, 3), Strategy::Incremental),
            Err(FrameError::Svg(_))
        ));
        let huge = FrameTemplate {
            scale: 100.0,
            ..t(testkit::DEMO)
        };
        assert!(matches!(
            render_frames(&huge, &plan(10, 3), Strategy::Incremental),
            Err(FrameError::BadSize(..))
        ));
    }

    /// Templates the text shortcut cannot prove right still give full-render pixels.
    #[test]
    fn shortcut_refusals_fall_back_to_full_renders() {
        let (mut tera, svg) = (testkit::tera(), testkit::options());
        let head = r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60" font-family="Inter"><rect width="200" height="60" fill="#102030"/>"##;
        let text = r##"<text x="100" y="44" text-anchor="middle" font-size="40" fill="#ffffff">{{ seconds }}</text>"##;
        let cases = [
            // Composited as a layer: opacity on the group around the text.
            (
                "opacity.svg",
                format!(r##"{head}<g opacity="0.7">{text}</g></svg>"##),
                true,
            ),
            // Something painted over the text.
            (
                "overlay.svg",
                format!(
                    r##"{head}{text}<rect x="60" y="20" width="80" height="8" fill="#ff0000" fill-opacity="0.5"/></svg>"##
                ),
                true,
            ),
            // Allowed: a plain group with a transform, and a gradient from <defs>.
            (
                "plain.svg",
                format!(
                    r##"{head}<defs><linearGradient id="g"><stop offset="0" stop-color="#ff0"/><stop offset="1" stop-color="#f0f"/></linearGradient></defs><g transform="translate(3 2)"><text x="100" y="44" text-anchor="middle" font-size="40" fill="url(#g)">{{{{ seconds }}}}</text></g></svg>"##
                ),
                false,
            ),
        ];
        for (name, src, refused) in cases {
            tera.add_raw_template(name, &src).expect("compiles");
            let t = FrameTemplate {
                name,
                width: 200,
                height: 60,
                ..testkit::demo(&tera, &svg)
            };
            let p = plan(3_600 + 30, 6);
            let fast = render_frames(&t, &p, Strategy::Incremental).expect("renders");
            let full = render_frames(&t, &p, Strategy::FullEachFrame).expect("renders");
            for (x, y) in compose(&fast).iter().zip(&compose(&full)) {
                assert_eq!(max_diff(x, y), 0, "{name}");
            }
            if refused {
                assert_eq!(fast.full_renders, 6, "{name}");
            } else {
                assert_eq!(fast.full_renders, 1, "{name}");
            }
        }
    }
}
