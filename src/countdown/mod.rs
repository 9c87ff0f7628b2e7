//! Countdown timers: an animated GIF counting down to a deadline, one frame per second from
//! the moment the email is opened, in the subscriber's language, holding at zero.
//!
//! Everything about countdown blocks lives here: `settings` validates a block's settings
//! and resolves one open's deadline and language, `deadline` parses `until`/`tz`, `labels`
//! names the units, `frame_template` fills the template for one second, [`frames`] renders
//! the animation's frames (with the text shortcut of `text_splice` and `layer`) and
//! [`crate::gif`] encodes them; [`render_countdown`] ties them together, and `answer` is the
//! block's answer (GIF, expired still or expired image). Expired countdowns and the Outlook
//! that renders with Word (which shows only the first frame) get one still; a client that
//! shows its copy later, unchanged (Apple's prefetch), gets the still of `still`, which says
//! when the countdown ends in words (`ends`) instead of the time left. The golden images of the
//! first frame and of that still are checked in `tests/golden.rs`.
//!
//! Layering: this module uses `crate::render` (rasterizer, fallback images), `crate::gif` and
//! `crate::template_error`, never `crate::blocks` (which holds a [`CountdownSpec`] per block).

mod answer;
mod deadline;
mod ends;
mod frame_template;
pub mod frames;
mod labels;
mod layer;
pub(crate) mod settings;
mod still;
#[cfg(test)]
pub(crate) mod testkit;
mod text_splice;

use chrono::{DateTime, Utc};

pub(crate) use answer::{answer, CountdownBlock, CountdownOpen};
pub use deadline::{parse_deadline, DeadlineError, DstPolicy, Remaining, UnitVisibility};
pub use ends::EndsWords;
pub use frame_template::{FrameError, FrameTemplate};
pub use frames::{CountdownFrames, FramePlan, Strategy};
pub use labels::{LabelStyle, Lang, UnknownLanguage};
pub(crate) use settings::QUERY_KEYS;
pub use settings::{
    ClockStyle, CountdownRequest, CountdownSpec, EndsAt, FixedDeadline, OnPrefetch, OpenFacts,
    Resolved,
};

pub use crate::gif::Looping;

use crate::gif::{self, AnimationFrame, GifError};
use frame_template::FrameState;
use labels::Labels;

/// Frames when a block does not say.
pub(crate) const DEFAULT_FRAMES: usize = 60;
/// Most frames one GIF may have (two minutes at one per second).
pub(crate) const MAX_FRAMES: usize = 120;
/// One second per frame, in GIF centiseconds.
pub(crate) const DEFAULT_DELAY_CS: u16 = 100;

/// How a countdown block animates; `Default` is the product default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountdownSettings {
    /// Frames per GIF, clamped to `1..=MAX_FRAMES`.
    pub frames: usize,
    /// Display time per frame in centiseconds (at least 2: browsers slow down faster GIFs).
    pub delay_cs: u16,
    pub looping: Looping,
    pub lang: Lang,
    pub style: LabelStyle,
    pub visibility: UnitVisibility,
    /// Render only the first frame (Outlook for Windows shows nothing else).
    pub first_frame_only: bool,
    pub strategy: Strategy,
}

impl Default for CountdownSettings {
    fn default() -> Self {
        CountdownSettings {
            frames: DEFAULT_FRAMES,
            delay_cs: DEFAULT_DELAY_CS,
            looping: Looping::Forever,
            lang: Lang::En,
            style: LabelStyle::Caps,
            visibility: UnitVisibility::HideZeroDays,
            first_frame_only: false,
            strategy: Strategy::Incremental,
        }
    }
}

/// A rendered countdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountdownGif {
    pub bytes: Vec<u8>,
    /// Frames in the GIF.
    pub frames: usize,
    /// At or past the deadline: a single still of the expired state.
    pub expired: bool,
    /// The countdown reaches zero inside the animation (then it plays once and stays at zero).
    pub reaches_zero: bool,
    /// Frames rendered in full (the rest were text patches).
    pub full_renders: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CountdownError {
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
    #[error(transparent)]
    Lang(#[from] UnknownLanguage),
    #[error(transparent)]
    Frames(#[from] FrameError),
    #[error(transparent)]
    Gif(#[from] GifError),
    /// No deadline in the context, the request or the block.
    #[error("no-deadline: the block has no deadline and the request gives no `until`")]
    NoDeadline,
    /// Asked to draw a countdown whose deadline was not resolved first (its render input did
    /// not come from `open::input`): a bug, answered with the fallback.
    #[error("countdown-undecided: the render input carries no resolved countdown")]
    Undecided,
    /// The block's `expired_image` could not be read or prepared.
    #[error(transparent)]
    ExpiredImage(Box<crate::render::RenderError>),
}

impl CountdownError {
    /// A short, fixed reason for the fallback's response header and the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            CountdownError::Deadline(e) => e.kind(),
            CountdownError::Lang(_) => "bad-lang",
            CountdownError::Frames(FrameError::Template(_)) => "template-error",
            CountdownError::Frames(FrameError::Svg(_)) => "svg-error",
            CountdownError::Frames(FrameError::BadSize(..)) => "bad-size",
            CountdownError::Gif(_) => "gif-error",
            CountdownError::NoDeadline => "no-deadline",
            CountdownError::Undecided => "countdown-undecided",
            CountdownError::ExpiredImage(error) => error.reason(),
        }
    }
}

/// Renders the countdown to `deadline` as seen at `at`.
///
/// `expired_template` names the template for the expired still (in the same Tera); without
/// one, the countdown template itself is rendered with `expired = true` and zeros.
pub fn render_countdown(
    template: &FrameTemplate,
    expired_template: Option<&str>,
    deadline: DateTime<Utc>,
    at: DateTime<Utc>,
    settings: &CountdownSettings,
) -> Result<CountdownGif, CountdownError> {
    let start = Remaining::between(deadline, at);
    if at >= deadline {
        let state = FrameState {
            left: start,
            shown: start.shown(UnitVisibility::All),
            expired: true,
        };
        let labels = Labels::new(settings.lang, settings.style, &start);
        let t = FrameTemplate {
            name: expired_template.unwrap_or(template.name),
            ..*template
        };
        let pm = t.render_still(&state, &labels)?;
        return Ok(CountdownGif {
            bytes: gif::encode_still(pm.width(), pm.height(), pm.data())?,
            frames: 1,
            expired: true,
            reaches_zero: false,
            full_renders: 1,
        });
    }
    let plan = FramePlan {
        start,
        count: if settings.first_frame_only {
            1
        } else {
            settings.frames.clamp(1, MAX_FRAMES)
        },
        lang: settings.lang,
        style: settings.style,
        visibility: settings.visibility,
    };
    let rendered = frames::render_frames(template, &plan, settings.strategy)?;
    let delay = settings.delay_cs.max(2);
    let last = rendered.patches.len().saturating_sub(1);
    let held_delay = u16::try_from(rendered.held + 1)
        .unwrap_or(u16::MAX)
        .saturating_mul(delay);
    let animation: Vec<AnimationFrame> = rendered
        .patches
        .into_iter()
        .enumerate()
        .map(|(i, patch)| AnimationFrame {
            patch,
            delay_cs: if i == last { held_delay } else { delay },
        })
        .collect();
    let reaches_zero = rendered.held > 0;
    let looping = if reaches_zero || plan.count == 1 {
        Looping::Once
    } else {
        settings.looping
    };
    let encoded = gif::encode_animation(rendered.width, rendered.height, &animation, looping)?;
    Ok(CountdownGif {
        bytes: encoded.bytes,
        frames: encoded.frames,
        expired: false,
        reaches_zero,
        full_renders: rendered.full_renders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::countdown::testkit::{self, max_diff, utc};
    use crate::gif::decode::decode;

    /// A full render of the demo showing `left` (units chosen from `first`).
    fn reference(t: &FrameTemplate, left: u64, first: u64, lang: Lang) -> Vec<u8> {
        let left = Remaining::from_secs(left);
        let state = FrameState {
            left,
            shown: Remaining::from_secs(first).shown(UnitVisibility::HideZeroDays),
            expired: false,
        };
        let labels = Labels::new(lang, LabelStyle::Caps, &left);
        t.render_still(&state, &labels).expect("renders").take()
    }

    const AT: &str = "2026-11-25T14:32:15Z";
    /// 2 days 13:27:45 after AT: minutes roll over at frame 46.
    const LEFT: u64 = 2 * 86_400 + 13 * 3_600 + 27 * 60 + 45;

    #[test]
    fn sixty_frames_with_delays_loop_and_the_right_digits() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        let at = utc(AT);
        let deadline = at + chrono::Duration::seconds(LEFT as i64);
        let gif = render_countdown(&t, None, deadline, at, &CountdownSettings::default())
            .expect("renders");
        assert!(!gif.expired && !gif.reaches_zero);
        assert_eq!(gif.full_renders, 1);
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!((d.width, d.height), (600, 120));
        assert_eq!(d.canvases.len(), 60);
        assert_eq!(gif.frames, 60);
        assert!(d.delays.iter().all(|&c| c == 100), "{:?}", d.delays);
        assert!(d.loops_forever && d.has_loop_extension);
        assert_eq!(d.local_palettes, 0);
        // 30,507 bytes before the palette order and each frame's form with fewer colour changes.
        assert!(gif.bytes.len() < 25_000, "{} bytes", gif.bytes.len());
        // Frame k shows LEFT - k: pixel for pixel a full render of that moment (the palette is
        // exact for this template), and clearly not the neighbouring second.
        for k in [0usize, 1, 9, 10, 45, 46, 47, 59] {
            let want = reference(&t, LEFT - k as u64, LEFT, Lang::En);
            assert!(max_diff(&d.canvases[k], &want) <= 2, "frame {k}");
            let other = reference(&t, LEFT - k as u64 - 1, LEFT, Lang::En);
            assert!(
                max_diff(&d.canvases[k], &other) > 100,
                "frame {k} is distinguishable"
            );
        }
    }

    #[test]
    fn play_once_has_no_loop_extension() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        let at = utc(AT);
        let settings = CountdownSettings {
            looping: Looping::Once,
            frames: 10,
            delay_cs: 50,
            ..CountdownSettings::default()
        };
        let gif = render_countdown(&t, None, at + chrono::Duration::hours(5), at, &settings)
            .expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert!(!d.has_loop_extension && !d.loops_forever);
        assert_eq!(d.delays, vec![50; 10]);
    }

    #[test]
    fn reaching_zero_stops_at_zero_and_plays_once() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        let at = utc(AT);
        let gif = render_countdown(
            &t,
            None,
            at + chrono::Duration::milliseconds(3_400),
            at,
            &CountdownSettings::default(),
        )
        .expect("renders");
        assert!(gif.reaches_zero);
        let d = decode(&gif.bytes).expect("decodes");
        // 3, 2, 1, 0 — then the zero frame holds for the rest of the minute.
        assert_eq!(d.canvases.len(), 4);
        assert_eq!(d.delays, vec![100, 100, 100, 5_700]);
        assert!(
            !d.has_loop_extension,
            "a finished countdown must not start again"
        );
        let zero = reference(&t, 0, 3, Lang::En);
        assert!(max_diff(&d.canvases[3], &zero) <= 2);
    }

    #[test]
    fn expired_is_a_single_still() {
        let (mut tera, svg) = (testkit::tera(), testkit::options());
        let at = utc(AT);
        let expired_state = |t: &FrameTemplate| {
            let left = Remaining::from_secs(0);
            let state = FrameState {
                left,
                shown: left.shown(UnitVisibility::All),
                expired: true,
            };
            let labels = Labels::new(Lang::En, LabelStyle::Caps, &left);
            t.render_still(&state, &labels).expect("renders").take()
        };
        for deadline in [at, at - chrono::Duration::days(3)] {
            let t = testkit::demo(&tera, &svg);
            let gif = render_countdown(&t, None, deadline, at, &CountdownSettings::default())
                .expect("renders");
            assert!(gif.expired);
            let d = decode(&gif.bytes).expect("decodes");
            assert_eq!(d.canvases.len(), 1);
            assert!(!d.has_loop_extension);
            assert!(max_diff(&d.canvases[0], &expired_state(&t)) <= 2);
        }
        // A dedicated expired template is used when named.
        tera.add_raw_template(
            "ended.svg",
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="120"><rect width="600" height="120" fill="#ff0000"/></svg>"##,
        )
        .expect("compiles");
        let t = testkit::demo(&tera, &svg);
        let gif = render_countdown(&t, Some("ended.svg"), at, at, &CountdownSettings::default())
            .expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!(&d.canvases[0][..4], &[255, 0, 0, 255]);
    }

    #[test]
    fn first_frame_only_for_outlook() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        let at = utc(AT);
        let settings = CountdownSettings {
            first_frame_only: true,
            ..CountdownSettings::default()
        };
        let deadline = at + chrono::Duration::seconds(LEFT as i64);
        let gif = render_countdown(&t, None, deadline, at, &settings).expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!(d.canvases.len(), 1);
        assert!(max_diff(&d.canvases[0], &reference(&t, LEFT, LEFT, Lang::En)) <= 2);
    }

    #[test]
    fn dst_crossing_deadlines_count_real_seconds() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = testkit::demo(&tera, &svg);
        // New York, across the 2026-11-01 fall-back: Saturday 12:00 EDT → Sunday 03:00 EST
        // is 16 hours, although the wall clock moves 15.
        let deadline = parse_deadline(
            "2026-11-01T03:00",
            Some("America/New_York"),
            DstPolicy::default(),
        )
        .expect("parses");
        let at = utc("2026-10-31T16:00:00Z");
        let gif = render_countdown(&t, None, deadline, at, &CountdownSettings::default())
            .expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert!(
            max_diff(
                &d.canvases[0],
                &reference(&t, 16 * 3_600, 16 * 3_600, Lang::En)
            ) <= 2
        );
        // Berlin, across the 2027-03-28 spring-forward: Saturday 12:00 CET → Sunday 12:00 CEST
        // is 23 hours; in German.
        let deadline = parse_deadline(
            "2027-03-28 12:00",
            Some("Europe/Berlin"),
            DstPolicy::default(),
        )
        .expect("parses");
        let at = utc("2027-03-27T11:00:00Z");
        let settings = CountdownSettings {
            lang: Lang::De,
            frames: 2,
            ..CountdownSettings::default()
        };
        let gif = render_countdown(&t, None, deadline, at, &settings).expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        let want = reference(&t, 23 * 3_600, 23 * 3_600, Lang::De);
        assert!(max_diff(&d.canvases[0], &want) <= 2);
    }

    #[test]
    fn bad_until_tz_and_lang_are_typed_errors() {
        let e: CountdownError = parse_deadline("soon", None, DstPolicy::default())
            .expect_err("bad")
            .into();
        assert!(matches!(
            e,
            CountdownError::Deadline(DeadlineError::Malformed)
        ));
        assert_eq!(
            e.to_string(),
            "bad-until: not an RFC 3339 or local date-time"
        );
        let e = parse_deadline(
            "2026-12-01T00:00",
            Some("Atlantis/Capital"),
            DstPolicy::default(),
        )
        .expect_err("bad");
        assert_eq!(e, DeadlineError::UnknownTimeZone);
        let e: CountdownError = "xx".parse::<Lang>().expect_err("bad").into();
        assert!(e.to_string().starts_with("bad-lang: "));
        assert_eq!(e.reason(), "bad-lang");
        let e: CountdownError = DeadlineError::UnknownTimeZone.into();
        assert_eq!(e.reason(), "bad-tz");
    }

    #[test]
    fn retina_scale_and_frame_cap() {
        let (tera, svg) = (testkit::tera(), testkit::options());
        let t = FrameTemplate {
            scale: 2.0,
            ..testkit::demo(&tera, &svg)
        };
        let at = utc(AT);
        let settings = CountdownSettings {
            frames: 3,
            ..CountdownSettings::default()
        };
        let deadline = at + chrono::Duration::seconds(LEFT as i64);
        let gif = render_countdown(&t, None, deadline, at, &settings).expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!((d.width, d.height, d.canvases.len()), (1200, 240, 3));
        let t1 = testkit::demo(&tera, &svg);
        let many = CountdownSettings {
            frames: 10_000,
            strategy: Strategy::Incremental,
            ..CountdownSettings::default()
        };
        let gif = render_countdown(&t1, None, deadline, at, &many).expect("renders");
        assert_eq!(gif.frames, MAX_FRAMES);
    }

    /// A transparent template: pixels that go from ink to clear between seconds need the
    /// previous frame disposed to the background; every decoded frame must match.
    #[test]
    fn transparent_background_frames_decode_right() {
        let (mut tera, svg) = (testkit::tera(), testkit::options());
        tera.add_raw_template(
            "clear.svg",
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="60" font-family="Inter" font-weight="700">{% for u in units %}<text x="{{ 40 + loop.index0 * 40 }}" y="44" text-anchor="middle" font-size="36" fill="#ffffff">{{ u.value }}</text>{% endfor %}</svg>"##,
        )
        .expect("compiles");
        let t = FrameTemplate {
            name: "clear.svg",
            width: 160,
            height: 60,
            ..testkit::demo(&tera, &svg)
        };
        let at = utc(AT);
        let settings = CountdownSettings {
            frames: 12,
            ..CountdownSettings::default()
        };
        let left = 3_600 + 65;
        let deadline = at + chrono::Duration::seconds(left as i64);
        let gif = render_countdown(&t, None, deadline, at, &settings).expect("renders");
        let d = decode(&gif.bytes).expect("decodes");
        assert_eq!(d.canvases.len(), 12);
        for (k, got) in d.canvases.iter().enumerate() {
            let want: Vec<u8> = reference(&t, left - k as u64, left, Lang::En)
                .chunks_exact(4)
                .flat_map(|p| {
                    if p[3] < 128 {
                        [0, 0, 0, 0]
                    } else {
                        [255, 255, 255, 255]
                    }
                })
                .collect();
            assert_eq!(max_diff(got, &want), 0, "frame {k}");
        }
    }
}
