//! The still that shows when a countdown ends: one frame drawn from the block's
//! `still_template`, or opentime's own (`ends_still.svg`), with the deadline in words
//! ([`EndsWords`]) and never the time left — the picture a client that keeps its copy (Apple
//! Mail Privacy Protection) can show days later and still be right. Encoded as a one-frame GIF,
//! like every other answer of a countdown block.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use super::ends::EndsWords;
use super::frame_template::{FrameError, FrameTemplate};
use super::labels::Lang;
use super::settings::EndsAt;
use super::{CountdownError, CountdownGif};
use crate::gif;

/// The name of opentime's own still template in [`builtin`].
const BUILTIN_NAME: &str = "opentime/ends_still.svg";
const BUILTIN_SOURCE: &str = include_str!("ends_still.svg");

/// opentime's own still template, compiled once; `None` only if it failed to compile (a unit
/// test keeps that from shipping).
pub(crate) fn builtin() -> Option<(&'static tera::Tera, &'static str)> {
    static TERA: OnceLock<Option<tera::Tera>> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".svg"]);
        tera.add_raw_template(BUILTIN_NAME, BUILTIN_SOURCE).ok()?;
        Some(tera)
    })
    .as_ref()
    .map(|tera| (tera, BUILTIN_NAME))
}

/// Draws the still of `deadline` as `ends` asks, in `lang`, from `template` (whose `extra`
/// values — `ctx`, `now`, `block` — the template sees too).
pub(crate) fn render(
    template: &FrameTemplate,
    deadline: DateTime<Utc>,
    ends: &EndsAt,
    lang: Lang,
) -> Result<CountdownGif, CountdownError> {
    let mut context = template.base_context();
    context.insert("ends", &EndsWords::new(deadline, ends, lang));
    context.insert("lang", lang.code());
    context.insert("expired", &false);
    let svg = template.fill(&context)?;
    let (_, pixmap) = template.rasterize(&svg)?;
    Ok(CountdownGif {
        bytes: gif::encode_still(pixmap.width(), pixmap.height(), pixmap.data())?,
        frames: 1,
        expired: false,
        reaches_zero: false,
        full_renders: 1,
    })
}

/// The error for a missing built-in template (never expected: it is compiled in and tested).
pub(crate) fn builtin_missing() -> CountdownError {
    CountdownError::Frames(FrameError::Template(format!(
        "{BUILTIN_NAME}: opentime's own still template did not compile"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::countdown::settings::ClockStyle;
    use crate::countdown::testkit::{self, utc};
    use crate::gif::decode::decode;
    use chrono_tz::Tz;

    fn ends(zone: Tz) -> EndsAt {
        EndsAt {
            zone,
            in_reader_zone: true,
            clock: ClockStyle::H24,
        }
    }

    /// Opaque pixels that are neither the background nor close to it: where text was drawn.
    fn inked(rgba: &[u8]) -> usize {
        rgba.chunks_exact(4)
            .filter(|p| p[3] == 255 && (p[0] > 120 || p[1] > 120))
            .count()
    }

    #[test]
    fn the_builtin_still_is_one_frame_with_the_date_drawn() {
        let (tera, name) = builtin().expect("the built-in template compiles");
        let svg = testkit::options();
        let template = FrameTemplate {
            tera,
            name,
            ..testkit::demo(tera, &svg)
        };
        let deadline = utc("2026-12-24T17:00:00Z");
        let still = render(&template, deadline, &ends(Tz::Europe__Berlin), Lang::En).unwrap();
        let gif = decode(&still.bytes).unwrap();
        assert_eq!((gif.width, gif.height, gif.canvases.len()), (600, 120, 1));
        assert!(!gif.has_loop_extension);
        let ink = inked(&gif.canvases[0]);
        assert!(ink > 1_500, "the date is drawn: {ink} light pixels");
        // Another zone is another picture.
        let tokyo = render(&template, deadline, &ends(Tz::Asia__Tokyo), Lang::En).unwrap();
        assert_ne!(decode(&tokyo.bytes).unwrap().canvases[0], gif.canvases[0]);
        // A long German date still fits a narrow block.
        let narrow = FrameTemplate {
            width: 300,
            height: 100,
            ..template
        };
        let german = render(&narrow, deadline, &ends(Tz::Europe__Berlin), Lang::De).unwrap();
        let german = decode(&german.bytes).unwrap();
        let width = german.width;
        let edge_ink = german.canvases[0]
            .chunks_exact(4)
            .enumerate()
            .filter(|(i, p)| (i % width < 4 || i % width >= width - 4) && p[0] > 120)
            .count();
        assert_eq!(edge_ink, 0, "nothing is cut at the sides");
    }
}
