//! Text that fits a width, measured with the renderer's own layout ([`super::text_layout`]): the
//! lines of a text wrapped at a width (Unicode line breaking; Chinese, Japanese and Korean break
//! between characters), the largest font size at which a text fits on one line, and a text's
//! width. The templates' text functions (`crate::blocks`) are these.
//!
//! A line "fits" when both its advance and its ink end within the width, measured on the line
//! alone, exactly as the renderer will lay it out (so an Arabic word at the end of a line is
//! shaped in its final form). Candidates are first estimated from one layout of the whole
//! paragraph (each glyph's advance counts at its cluster), then measured exactly, so a line
//! costs one or two layouts, whatever the text's length.

use super::plain_text::collapse_spaces;
use super::text_layout::{Layout, Style, Typesetter};
use unicode_bidi::BidiClass;
use unicode_segmentation::UnicodeSegmentation;

/// Characters of a text the functions lay out; the rest counts as cut.
pub(crate) const MAX_CHARACTERS: usize = 4_000;
/// A measured width may exceed the box by this much (rounding) and still fit.
const SLACK: f32 = 0.01;
/// Line ends measured exactly below the estimated one before giving up on a line: estimates
/// are close (they differ from the exact width by kerning and joining at the line's ends).
const MAX_EXACT_TRIES: usize = 8;
/// Sizes `fit_size` tries below its first estimate before giving up on the step grid.
const MAX_SIZE_STEPS: usize = 64;

/// The lines of a wrapped text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<String>,
    /// Text was left out (`max_lines` reached, or the text was longer than
    /// [`MAX_CHARACTERS`]); the last line ends in the ellipsis.
    pub(crate) cut: bool,
    /// A line is wider than the width all the same (a single character, or the ellipsis, that
    /// does not fit).
    pub(crate) overflow: bool,
}

/// The advance of `text` (white space collapsed, as the renderer reads it) in `style`.
pub(crate) fn width(typesetter: &Typesetter, text: &str, style: &Style<'_>) -> f32 {
    let content = collapse_spaces(text);
    typesetter
        .layout(&content, style)
        .map_or(0.0, |layout| layout.advance)
}

/// How far `line` reaches from its start: its advance or its ink, whichever ends later.
fn extent(typesetter: &Typesetter, line: &str, style: &Style<'_>) -> f32 {
    if line.is_empty() {
        return 0.0;
    }
    let Some(layout) = typesetter.layout(line, style) else {
        return 0.0;
    };
    let ink = typesetter.ink(&layout, style.size).map_or(0.0, |(_, r)| r);
    layout.advance.max(ink)
}

fn fits(typesetter: &Typesetter, line: &str, style: &Style<'_>, width: f32) -> bool {
    extent(typesetter, line, style) <= width + SLACK
}

/// The advance of a paragraph up to each byte offset (`at[b]`: the glyphs of the characters
/// before `b`), from one layout of the whole paragraph.
struct Advances {
    at: Vec<f32>,
}

impl Advances {
    fn of(layout: Option<&Layout>, len: usize) -> Self {
        let mut per_byte = vec![0.0f32; len + 1];
        for glyph in layout.iter().flat_map(|l| &l.runs).flat_map(|r| &r.glyphs) {
            if let Some(slot) = per_byte.get_mut(glyph.cluster) {
                *slot += glyph.advance;
            }
        }
        let mut at = Vec::with_capacity(len + 1);
        let mut sum = 0.0f32;
        at.push(0.0);
        for advance in &per_byte[..len] {
            sum += advance;
            at.push(sum);
        }
        Self { at }
    }

    /// The estimated advance of bytes `start..end`.
    fn between(&self, start: usize, end: usize) -> f32 {
        let at = |i: usize| self.at.get(i).copied().unwrap_or(0.0);
        at(end) - at(start)
    }
}

/// `text` wrapped at `width` in `style`: at most `max_lines` lines (0: no limit), the last of
/// them ending in `ellipsis` when text is left out. Line breaks in `text` are kept; other
/// white space collapses as the renderer collapses it.
pub(crate) fn lines(
    typesetter: &Typesetter,
    text: &str,
    style: &Style<'_>,
    width: f32,
    max_lines: usize,
    ellipsis: &str,
) -> Lines {
    let (text, mut cut) = match text.char_indices().nth(MAX_CHARACTERS) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    };
    let mut out = Lines {
        lines: Vec::new(),
        cut: false,
        overflow: false,
    };
    let mut paragraphs: Vec<String> = text
        .split([
            '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
        ])
        .map(collapse_spaces)
        .collect();
    while paragraphs.last().is_some_and(String::is_empty) {
        paragraphs.pop();
    }
    let limit = (max_lines > 0).then_some(max_lines);
    // Where each kept line starts: its paragraph and offset, to end it with an ellipsis.
    let mut starts: Vec<(usize, usize)> = Vec::new();
    'paragraphs: for (number, paragraph) in paragraphs.iter().enumerate() {
        // One line more than the limit leaves room for: enough to know text is cut.
        let most = limit.map_or(usize::MAX, |limit| {
            limit.saturating_sub(out.lines.len()) + 1
        });
        let ranges = match paragraph.is_empty() {
            true => vec![(0, 0)],
            false => wrap(typesetter, paragraph, style, width, most, &mut out.overflow),
        };
        for (start, end) in ranges {
            if limit.is_some_and(|limit| out.lines.len() >= limit) {
                cut = true;
                break 'paragraphs;
            }
            out.lines.push(paragraph[start..end].trim_end().to_owned());
            starts.push((number, start));
        }
    }
    if cut {
        let last = out.lines.len().checked_sub(1);
        if let Some((line, &(number, start))) =
            last.and_then(|i| Some((out.lines.get_mut(i)?, starts.get(i)?)))
        {
            let end = start + line.len();
            let (ended, overflow) = ellipsize(
                typesetter,
                &paragraphs[number],
                start,
                end,
                style,
                width,
                ellipsis,
            );
            *line = ended;
            out.overflow |= overflow;
        }
    }
    out.cut = cut;
    out
}

/// The first `most` lines of one paragraph (no line breaks, spaces collapsed) as byte ranges,
/// greedily: each line as long as fits, broken where Unicode line breaking allows, or between
/// grapheme clusters when a word alone is too wide (`overflow` set when a single cluster is).
fn wrap(
    typesetter: &Typesetter,
    paragraph: &str,
    style: &Style<'_>,
    width: f32,
    most: usize,
    overflow: &mut bool,
) -> Vec<(usize, usize)> {
    let layout = typesetter.layout(paragraph, style);
    let advances = Advances::of(layout.as_ref(), paragraph.len());
    let breaks: Vec<usize> = unicode_linebreak::linebreaks(paragraph)
        .map(|(at, _)| at)
        .collect();
    let trimmed_end = |start: usize, end: usize| start + paragraph[start..end].trim_end().len();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < paragraph.len() && lines.len() < most {
        let candidates = &breaks[breaks.partition_point(|b| *b <= start)..];
        // The breaks whose estimate fits (estimates grow along the line), then back from the
        // last of them until one fits exactly.
        let estimated = candidates
            .iter()
            .take_while(|b| advances.between(start, trimmed_end(start, **b)) <= width + SLACK)
            .count();
        let exact = candidates[..estimated]
            .iter()
            .rev()
            .take(MAX_EXACT_TRIES)
            .copied()
            .find(|b| {
                fits(
                    typesetter,
                    &paragraph[start..trimmed_end(start, *b)],
                    style,
                    width,
                )
            });
        let end = match exact {
            Some(end) => end,
            None => {
                // The next word alone is too wide: as many grapheme clusters as fit.
                let word_end = candidates.first().copied().unwrap_or(paragraph.len());
                let end = longest_fitting(
                    typesetter, paragraph, start, word_end, style, width, &advances, "",
                );
                match end {
                    Some(end) => end,
                    None => {
                        *overflow = true;
                        next_grapheme(paragraph, start)
                    }
                }
            }
        };
        lines.push((start, end));
        start = end;
        while paragraph[start..].starts_with(' ') {
            start += 1;
        }
    }
    lines
}

/// The end of the first grapheme cluster from `start`.
fn next_grapheme(text: &str, start: usize) -> usize {
    text[start..]
        .graphemes(true)
        .next()
        .map_or(text.len(), |g| start + g.len())
}

/// The largest grapheme boundary `end` in `start..=limit` (past `start`) such that
/// `text[start..end]` (trailing spaces dropped) followed by `suffix` fits; `None` when not even
/// one cluster does.
#[allow(clippy::too_many_arguments)]
fn longest_fitting(
    typesetter: &Typesetter,
    text: &str,
    start: usize,
    limit: usize,
    style: &Style<'_>,
    width: f32,
    advances: &Advances,
    suffix: &str,
) -> Option<usize> {
    let suffix_width = if suffix.is_empty() {
        0.0
    } else {
        extent(typesetter, suffix, style)
    };
    // The cluster boundaries whose estimate fits (estimates grow along the line), then back
    // from the last of them until one fits exactly.
    let boundaries: Vec<usize> = text[start..limit]
        .grapheme_indices(true)
        .map(|(i, g)| start + i + g.len())
        .take_while(|end| advances.between(start, *end) + suffix_width <= width + SLACK)
        .collect();
    boundaries
        .iter()
        .rev()
        .take(MAX_EXACT_TRIES)
        .copied()
        .find(|end| {
            let line = format!("{}{suffix}", text[start..*end].trim_end());
            fits(typesetter, &line, style, width)
        })
}

/// The line `text[start..end]` ended with `ellipsis`: as much of it as fits before the ellipsis
/// (at least the ellipsis; `true` when even that does not fit).
fn ellipsize(
    typesetter: &Typesetter,
    text: &str,
    start: usize,
    end: usize,
    style: &Style<'_>,
    width: f32,
    ellipsis: &str,
) -> (String, bool) {
    let kept = text[start..end].trim_end();
    let whole = format!("{kept}{}", ending(kept, ellipsis));
    if fits(typesetter, &whole, style, width) {
        return (whole, false);
    }
    let advances = Advances::of(typesetter.layout(text, style).as_ref(), text.len());
    let suffix = ending(kept, ellipsis);
    match longest_fitting(
        typesetter, text, start, end, style, width, &advances, &suffix,
    ) {
        Some(cut) => {
            let kept = text[start..cut].trim_end();
            (format!("{kept}{}", ending(kept, ellipsis)), false)
        }
        None => (
            ellipsis.to_owned(),
            !fits(typesetter, ellipsis, style, width),
        ),
    }
}

/// `ellipsis` as it should follow `kept`: after right-to-left text, followed by a right-to-left
/// mark, so that it sits where that text ends (at its left) and not after it on the right (a
/// neutral between right-to-left text and the end of a left-to-right line goes left to right).
fn ending(kept: &str, ellipsis: &str) -> String {
    let last_strong = kept
        .chars()
        .rev()
        .find_map(|c| match unicode_bidi::bidi_class(c) {
            BidiClass::L => Some(false),
            BidiClass::R | BidiClass::AL => Some(true),
            _ => None,
        });
    match last_strong {
        Some(true) => format!("{ellipsis}\u{200F}"),
        _ => ellipsis.to_owned(),
    }
}

/// The largest font size from `max` down to `min`, in steps of `step`, at which `text` fits
/// `width` on one line, and whether it fits at all (`min` is returned when it never does).
pub(crate) fn fit_size(
    typesetter: &Typesetter,
    text: &str,
    style: &Style<'_>,
    width: f32,
    (min, max, step): (f32, f32, f32),
) -> (f32, bool) {
    let content = collapse_spaces(text);
    let at = |size: f32| Style { size, ..*style };
    let widest = extent(typesetter, &content, &at(max));
    if widest <= width + SLACK {
        return (max, true);
    }
    // Widths grow linearly with the size (no hinting): start at the estimate, on the grid.
    let ideal = max * width / widest;
    let mut steps = ((max - ideal) / step).ceil().max(1.0);
    for _ in 0..MAX_SIZE_STEPS {
        let size = max - steps * step;
        if size < min {
            break;
        }
        if fits(typesetter, &content, &at(size), width) {
            return (size, true);
        }
        steps += 1.0;
    }
    (min, fits(typesetter, &content, &at(min), width))
}

#[cfg(test)]
mod tests {
    use super::super::svg::Rasterizer;
    use super::super::testkit::{ink_bounds, noto_rasterizer, text_svg};
    use super::*;
    use std::sync::Arc;
    use svgtypes::FontFamily;

    const INTER: [FontFamily; 1] = [FontFamily::SansSerif];

    fn style(size: f32, weight: u16) -> Style<'static> {
        Style {
            families: &INTER,
            weight,
            size,
        }
    }

    /// Where `line`, drawn from x = 20 as the renderer draws it, has ink: left and right edges.
    fn drawn(rasterizer: &Rasterizer, line: &str, size: f32, weight: u16) -> (f32, f32) {
        let svg = text_svg(line, (1200, 200), (20.0, 120.0), size, weight, "start");
        let pixmap = rasterizer
            .rasterize_inner(&svg, 1200, 200, 1, Arc::default(), true)
            .unwrap();
        let (left, _, right, _) = ink_bounds(&pixmap).unwrap_or((20, 0, 20, 0));
        (left as f32 - 20.0, right as f32 - 20.0)
    }

    const PARAGRAPHS: [&str; 6] = [
        "Studio headphones (noise-cancelling, wireless, over-ear) with a travel case",
        "Мария-Александра Константиновна Воскресенская-Оболенская",
        "مرحبا بكم في متجرنا الجديد، عرض خاص لعملائنا الأوفياء",
        "東京都新宿区西新宿二丁目八番一号、新宿三井ビルディング",
        "Donaudampfschifffahrtsgesellschaftskapitän",
        "Welcome back, محمد 2024! Your 3 items are waiting 🎉",
    ];

    #[test]
    fn lines_drawn_at_their_width_stay_within_it() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        for paragraph in PARAGRAPHS {
            for (width, size, weight) in
                [(140.0, 15.0, 700), (230.0, 22.0, 400), (333.0, 18.0, 700)]
            {
                let wrapped = lines(typesetter, paragraph, &style(size, weight), width, 0, "…");
                assert!(!wrapped.cut && !wrapped.overflow, "{paragraph} at {width}");
                assert!(wrapped.lines.len() > 1, "{paragraph} at {width}: one line");
                // Nothing is lost: the lines hold the text, in order (spaces at breaks go).
                let joined: String = wrapped.lines.concat().split_whitespace().collect();
                let original: String = paragraph.split_whitespace().collect();
                assert_eq!(joined, original, "at {width}");
                for line in &wrapped.lines {
                    let (left, right) = drawn(&rasterizer, line, size, weight);
                    assert!(
                        left >= -1.0 && right <= width + 1.0,
                        "{line:?} at {width} px: ink from {left} to {right}"
                    );
                }
                // Greedy: each line but the last is full (its next word would not fit).
                for pair in wrapped.lines.windows(2) {
                    let next_word = pair[1].split(' ').next().unwrap_or_default();
                    let longer = format!("{} {next_word}", pair[0]);
                    let cjk = pair[0].chars().last().is_some_and(|c| c > '\u{2E80}');
                    let longer = if cjk {
                        format!("{}{}", pair[0], pair[1].chars().next().unwrap())
                    } else {
                        longer
                    };
                    assert!(
                        !fits(typesetter, &longer, &style(size, weight), width)
                            || paragraph.contains('-'),
                        "{:?} could hold more at {width}",
                        pair[0]
                    );
                }
            }
        }
    }

    #[test]
    fn arabic_wraps_between_words_and_cjk_between_characters() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        let arabic = PARAGRAPHS[2];
        let wrapped = lines(typesetter, arabic, &style(20.0, 400), 200.0, 0, "…");
        assert!(wrapped.lines.len() >= 3, "{:?}", wrapped.lines);
        let words: Vec<&str> = arabic.split(' ').collect();
        for line in &wrapped.lines {
            // Whole words only (each shaped in its final form at the line's end).
            assert!(
                line.split(' ').all(|word| words.contains(&word)),
                "{line:?} breaks a word"
            );
            let layout = typesetter.layout(line, &style(20.0, 400)).unwrap();
            assert!(layout.runs.iter().any(|run| run.rtl));
        }
        let cjk = PARAGRAPHS[3];
        let wrapped = lines(typesetter, cjk, &style(20.0, 400), 130.0, 0, "…");
        assert!(wrapped.lines.len() >= 4, "{:?}", wrapped.lines);
        assert_eq!(wrapped.lines.concat(), cjk);
        // No spaces: the breaks fall between characters, lines of 6 or so 20 px characters.
        assert!(wrapped.lines.iter().all(|l| !l.contains(' ')));
        assert!(wrapped.lines[0].chars().count() >= 5, "{:?}", wrapped.lines);
    }

    #[test]
    fn max_lines_ends_the_last_line_in_an_ellipsis_that_fits() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        for paragraph in PARAGRAPHS {
            let all = lines(typesetter, paragraph, &style(16.0, 700), 180.0, 0, "…");
            let keep = all.lines.len() - 1;
            assert!(keep >= 1, "{paragraph}");
            let cut = lines(typesetter, paragraph, &style(16.0, 700), 180.0, keep, "…");
            assert!(cut.cut && !cut.overflow, "{paragraph}: {cut:?}");
            assert_eq!(cut.lines.len(), keep);
            assert_eq!(cut.lines[..keep - 1], all.lines[..keep - 1]);
            let last = &cut.lines[keep - 1];
            // (After right-to-left text, a right-to-left mark follows the ellipsis.)
            let shown = last.trim_end_matches('\u{200F}');
            assert!(
                shown.ends_with('…') && shown.len() > '…'.len_utf8(),
                "{last:?}"
            );
            let (_, right) = drawn(&rasterizer, last, 16.0, 700);
            assert!(right <= 181.0, "{last:?}: ink to {right}");
            let exact = lines(
                typesetter,
                paragraph,
                &style(16.0, 700),
                180.0,
                all.lines.len(),
                "…",
            );
            assert!(!exact.cut);
            assert_eq!(exact.lines, all.lines);
        }
        // After Arabic, the ellipsis sits where the Arabic ends: on its left.
        let arabic = lines(typesetter, PARAGRAPHS[2], &style(16.0, 700), 180.0, 1, "…");
        let layout = typesetter
            .layout(&arabic.lines[0], &style(16.0, 700))
            .unwrap();
        let leftmost = layout.runs.iter().find(|run| !run.blank).unwrap();
        assert!(
            leftmost.text.contains('…'),
            "{:?}: {:?}",
            arabic.lines,
            layout
                .runs
                .iter()
                .map(|r| (r.text.clone(), r.x, r.blank))
                .collect::<Vec<_>>()
        );
        let short = lines(typesetter, "Zoë", &style(16.0, 700), 180.0, 1, "…");
        assert_eq!((short.lines, short.cut), (vec!["Zoë".to_owned()], false));
        // Line breaks in the text are kept; an ellipsis that cannot fit is an overflow.
        let two = lines(
            typesetter,
            "Unter den Linden 26\n10117 Berlin",
            &style(14.0, 400),
            300.0,
            0,
            "…",
        );
        assert_eq!(two.lines, ["Unter den Linden 26", "10117 Berlin"]);
        let tiny = lines(typesetter, "Maximiliane", &style(30.0, 400), 5.0, 1, "…");
        assert!(tiny.cut && tiny.overflow);
    }

    #[test]
    fn fit_size_is_the_largest_size_that_fits() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        for text in [
            "Spring is here, Maximiliane-Charlotte!",
            "Spring is here, Мария-Александра!",
            "Spring is here, محمد عبد الله!",
            "Spring is here, 佐藤 さくら!",
            "Spring is here, Zoë 🎉!",
        ] {
            let widest = extent(typesetter, text, &style(34.0, 700));
            for (width, step) in [(widest * 0.55, 1.0), (widest * 0.8, 0.5)] {
                let (size, fits_at_all) = fit_size(
                    typesetter,
                    text,
                    &style(34.0, 700),
                    width,
                    (8.0, 34.0, step),
                );
                assert!(fits_at_all && size < 34.0, "{text}: {size}");
                assert!(
                    fits(typesetter, text, &style(size, 700), width),
                    "{text} at {size}"
                );
                assert!(
                    !fits(typesetter, text, &style(size + step, 700), width),
                    "{text}: {} fits too",
                    size + step
                );
                let (left, right) = drawn(&rasterizer, text, size, 700);
                assert!(
                    left >= -1.0 && right <= width + 1.0,
                    "{text} at {size}: {right}"
                );
            }
        }
        let short = fit_size(
            typesetter,
            "Hi Bob",
            &style(34.0, 700),
            300.0,
            (8.0, 34.0, 1.0),
        );
        assert_eq!(short, (34.0, true));
        let long = fit_size(
            typesetter,
            PARAGRAPHS[0],
            &style(34.0, 700),
            100.0,
            (14.0, 34.0, 1.0),
        );
        assert_eq!(long, (14.0, false));
    }

    #[test]
    fn text_width_is_the_advance_the_renderer_anchors() {
        let rasterizer = noto_rasterizer();
        let typesetter = rasterizer.typesetter();
        for text in ["Hi Zoë, €1,249.00", "Мария", "محمد 2024", "张伟 🎉"] {
            let width = width(typesetter, text, &style(24.0, 700));
            assert!(width > 20.0, "{text}");
            // Anchored at its end, x + width puts the text where x at its start does.
            let start = text_svg(text, (600, 80), (40.0, 50.0), 24.0, 700, "start");
            let end = text_svg(text, (600, 80), (40.0 + width, 50.0), 24.0, 700, "end");
            let at = |svg: &str| {
                rasterizer
                    .rasterize_inner(svg, 600, 80, 1, Arc::default(), false)
                    .unwrap()
            };
            let off = super::super::testkit::max_diff(&at(&start), &at(&end));
            assert!(off <= 64, "{text}: {off} levels apart");
        }
        // White space collapses as the renderer collapses it.
        assert_eq!(
            width(typesetter, "  a \n b ", &style(24.0, 400)),
            width(typesetter, "a b", &style(24.0, 400))
        );
    }
}
