//! The settings of a `kind = "countdown"` block, and where one open's deadline comes from.
//!
//! A countdown's deadline is taken, in this order, from the context field the block names
//! (`deadline_field`, which makes it personalized), from the request (`until`, with `tz` for a
//! local time), or from the block's fixed `deadline`. [`CountdownSpec::resolve`] turns those
//! inputs into one [`CountdownRequest`], and [`CountdownRequest::canonical_query`] writes it
//! back as the only query the render sees, so the render cache key holds exactly what decides
//! the picture. Drawing is the rest of [`crate::countdown`]'s job.

use super::deadline::{self, parse_deadline, DeadlineError, DstPolicy, UnitVisibility};
use super::labels::{LabelStyle, Lang};
use super::{CountdownError, CountdownSettings, Looping, DEFAULT_FRAMES, MAX_FRAMES};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Seconds a shared countdown may be cached by default: the GIF is rendered for the second it
/// was asked in, so a copy served later starts that many seconds behind.
pub(crate) const DEFAULT_COUNTDOWN_MAX_AGE: u32 = 5;
/// Longest a shared countdown may be cached: its first frame is that far off by then.
pub(crate) const MAX_COUNTDOWN_MAX_AGE: u32 = 60;

/// Query keys a countdown reads; any other key is dropped before the render.
pub(crate) const QUERY_UNTIL: &str = "until";
pub(crate) const QUERY_TZ: &str = "tz";
pub(crate) const QUERY_LANG: &str = "lang";
/// Set by the HTTP layer (Outlook for Windows shows only the first frame).
pub(crate) const QUERY_FIRST_FRAME: &str = "first_frame";
/// Every query parameter a countdown reads; the only ones that reach its render and key.
pub(crate) const QUERY_KEYS: [&str; 4] = [QUERY_UNTIL, QUERY_TZ, QUERY_LANG, QUERY_FIRST_FRAME];

/// The raw countdown settings of one block in `blocks.toml`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CountdownSettingsText<'a> {
    pub(crate) deadline_field: Option<&'a str>,
    pub(crate) deadline: Option<&'a str>,
    pub(crate) tz: Option<&'a str>,
    pub(crate) frames: Option<usize>,
    pub(crate) looping: Option<&'a str>,
    pub(crate) lang: Option<&'a str>,
    pub(crate) labels: Option<&'a str>,
    pub(crate) hide_units: Option<&'a str>,
    pub(crate) expired_template: Option<&'a str>,
    pub(crate) expired_image: Option<&'a str>,
}

/// A countdown block's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CountdownSpec {
    /// Dotted path into the context (`cart.reserved_until`): the per-subscriber deadline.
    pub deadline_field: Option<Vec<String>>,
    /// The block's fixed deadline, when it has one.
    pub deadline: Option<DateTime<Utc>>,
    /// Zone for local times (`until` without an offset) when the request gives no `tz`.
    pub tz: Option<String>,
    /// Frames, loop, default language, label style and hidden units.
    pub settings: CountdownSettings,
    /// Template drawn once the deadline has passed (default: the countdown template with
    /// `expired = true`).
    pub expired_template: Option<String>,
    /// Image file (PNG, GIF or SVG) shown once the deadline has passed, instead of a template.
    pub expired_image: Option<String>,
}

/// What one open of a countdown shows: resolved once per open from the block, the context
/// and the query (`open::input`), then carried in the render's input to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountdownRequest {
    pub deadline: DateTime<Utc>,
    pub lang: Lang,
    /// Render only the first frame (a still for clients that show nothing else).
    pub first_frame_only: bool,
}

impl CountdownSpec {
    /// Validates a block's settings; the error is a sentence for `opentime check`.
    pub(crate) fn parse(text: &CountdownSettingsText<'_>) -> Result<Self, String> {
        let deadline_field = text
            .deadline_field
            .map(|path| {
                let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
                if parts.iter().any(|p| p.is_empty()) {
                    Err(format!(
                        "deadline_field = {path:?}: use a dotted path like \"cart.reserved_until\""
                    ))
                } else {
                    Ok(parts)
                }
            })
            .transpose()?;
        if let Some(tz) = text.tz {
            deadline::parse_tz(tz).map_err(|_| format!("tz = {tz:?}: not an IANA time zone"))?;
        }
        let deadline = text
            .deadline
            .map(|d| {
                parse_deadline(d, text.tz, DstPolicy::default())
                    .map_err(|e| format!("deadline = {d:?}: {e}"))
            })
            .transpose()?;
        let frames = text.frames.unwrap_or(DEFAULT_FRAMES);
        if !(1..=MAX_FRAMES).contains(&frames) {
            return Err(format!("frames must be 1..={MAX_FRAMES}"));
        }
        let looping = match text.looping.unwrap_or("forever") {
            "forever" => Looping::Forever,
            "once" => Looping::Once,
            other => return Err(format!("loop = {other:?}: use forever or once")),
        };
        let lang = match text.lang {
            Some(code) => code
                .parse::<Lang>()
                .map_err(|_| format!("lang = {code:?}: use en, de, fr or es"))?,
            None => Lang::En,
        };
        let style = match text.labels.unwrap_or("caps") {
            "caps" => LabelStyle::Caps,
            "words" => LabelStyle::Words,
            other => return Err(format!("labels = {other:?}: use caps or words")),
        };
        let visibility = match text.hide_units.unwrap_or("zero_days") {
            "none" => UnitVisibility::All,
            "zero_days" => UnitVisibility::HideZeroDays,
            "leading_zeros" => UnitVisibility::HideLeadingZeros,
            other => {
                return Err(format!(
                    "hide_units = {other:?}: use none, zero_days or leading_zeros"
                ))
            }
        };
        if text.expired_template.is_some() && text.expired_image.is_some() {
            return Err("give expired_template or expired_image, not both".into());
        }
        Ok(Self {
            deadline_field,
            deadline,
            tz: text.tz.map(str::to_owned),
            settings: CountdownSettings {
                frames,
                looping,
                lang,
                style,
                visibility,
                ..CountdownSettings::default()
            },
            expired_template: text.expired_template.map(str::to_owned),
            expired_image: text.expired_image.map(str::to_owned),
        })
    }

    /// The context field the block reads (the first part of `deadline_field`).
    pub(crate) fn context_field(&self) -> Option<&str> {
        self.deadline_field
            .as_ref()
            .and_then(|p| p.first())
            .map(String::as_str)
    }

    /// This open's deadline and language: the context field, else `until` (+ `tz`), else the
    /// block's deadline. Invalid values are errors (the block's fallback), never a guess.
    pub(crate) fn resolve(
        &self,
        ctx: &serde_json::Map<String, Value>,
        query: &BTreeMap<String, String>,
    ) -> Result<CountdownRequest, CountdownError> {
        let tz = query
            .get(QUERY_TZ)
            .map(String::as_str)
            .or(self.tz.as_deref());
        if let Some(name) = query.get(QUERY_TZ) {
            deadline::parse_tz(name)?;
        }
        let from_context = match self.deadline_field.as_deref() {
            Some(path) => field(ctx, path)
                .map(|value| deadline_value(value, tz))
                .transpose()?,
            None => None,
        };
        let from_query = || {
            query
                .get(QUERY_UNTIL)
                .map(|until| parse_deadline(until, tz, DstPolicy::default()))
                .transpose()
        };
        let deadline = match from_context {
            Some(deadline) => deadline,
            None => from_query()?
                .or(self.deadline)
                .ok_or(CountdownError::NoDeadline)?,
        };
        let lang = match query.get(QUERY_LANG) {
            Some(code) => code.parse::<Lang>()?,
            None => self.settings.lang,
        };
        let first_frame_only = query
            .get(QUERY_FIRST_FRAME)
            .is_some_and(|v| v == "1" || v == "true");
        Ok(CountdownRequest {
            deadline,
            lang,
            first_frame_only,
        })
    }

    /// The animation settings for one request.
    pub(crate) fn settings_for(&self, request: &CountdownRequest) -> CountdownSettings {
        CountdownSettings {
            lang: request.lang,
            first_frame_only: request.first_frame_only,
            ..self.settings
        }
    }
}

impl CountdownRequest {
    /// The request written as the only query the render sees (and the cache key holds):
    /// `until` in UTC to the second, `lang`, and `first_frame` when set.
    pub(crate) fn canonical_query(&self) -> BTreeMap<String, String> {
        let mut query = BTreeMap::new();
        query.insert(
            QUERY_UNTIL.to_owned(),
            self.deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
        query.insert(QUERY_LANG.to_owned(), self.lang.code().to_owned());
        if self.first_frame_only {
            query.insert(QUERY_FIRST_FRAME.to_owned(), "1".to_owned());
        }
        query
    }
}

/// The value at a dotted path, if present and not null.
fn field<'a>(ctx: &'a serde_json::Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = ctx.get(first)?;
    for part in rest {
        value = value.get(part.as_str())?;
    }
    (!value.is_null()).then_some(value)
}

/// A context deadline: an RFC 3339 / local date-time string, or Unix seconds.
fn deadline_value(value: &Value, tz: Option<&str>) -> Result<DateTime<Utc>, DeadlineError> {
    match value {
        Value::String(text) => parse_deadline(text, tz, DstPolicy::default()),
        Value::Number(n) => n
            .as_i64()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .ok_or(DeadlineError::Malformed),
        _ => Err(DeadlineError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(text: CountdownSettingsText<'_>) -> CountdownSpec {
        CountdownSpec::parse(&text).expect("valid settings")
    }

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn deadline_sources_in_order() {
        let s = spec(CountdownSettingsText {
            deadline_field: Some("cart.reserved_until"),
            deadline: Some("2026-12-24T18:00:00Z"),
            ..Default::default()
        });
        assert_eq!(s.context_field(), Some("cart"));
        let ctx = json!({"cart": {"reserved_until": "2026-12-01T10:00:00+01:00"}});
        let ctx = ctx.as_object().expect("object");
        let q = query(&[("until", "2026-12-05T00:00:00Z")]);
        let from_ctx = s.resolve(ctx, &q).expect("resolves");
        assert_eq!(from_ctx.deadline.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        let from_query = s.resolve(&Default::default(), &q).expect("resolves");
        assert_eq!(
            from_query.deadline.to_rfc3339(),
            "2026-12-05T00:00:00+00:00"
        );
        let fixed = s
            .resolve(&Default::default(), &BTreeMap::new())
            .expect("resolves");
        assert_eq!(fixed.deadline.to_rfc3339(), "2026-12-24T18:00:00+00:00");
        let unix = json!({"cart": {"reserved_until": 1_800_000_000}});
        let unix = s
            .resolve(unix.as_object().expect("object"), &BTreeMap::new())
            .expect("resolves");
        assert_eq!(unix.deadline.timestamp(), 1_800_000_000);
    }

    #[test]
    fn bad_values_are_typed_and_never_guessed() {
        let s = spec(CountdownSettingsText::default());
        let reason = |pairs: &[(&str, &str)]| {
            s.resolve(&Default::default(), &query(pairs))
                .expect_err("refused")
                .reason()
        };
        assert_eq!(reason(&[("until", "tomorrow")]), "bad-until");
        assert_eq!(reason(&[("until", "2026-12-01T00:00")]), "bad-until");
        assert_eq!(
            reason(&[("until", "2026-12-01T00:00"), ("tz", "Mars/Base")]),
            "bad-tz"
        );
        assert_eq!(
            reason(&[("until", "2026-12-01T00:00Z"), ("tz", "Mars/Base")]),
            "bad-tz"
        );
        assert_eq!(
            reason(&[("until", "2026-12-01T00:00:00Z"), ("lang", "xx")]),
            "bad-lang"
        );
        assert_eq!(reason(&[]), "no-deadline");
        let ctx = json!({"cart": {"reserved_until": true}});
        let s = spec(CountdownSettingsText {
            deadline_field: Some("cart.reserved_until"),
            ..Default::default()
        });
        let error = s
            .resolve(ctx.as_object().expect("object"), &BTreeMap::new())
            .expect_err("refused");
        assert_eq!(error.reason(), "bad-until");
    }

    #[test]
    fn local_times_use_the_request_zone_then_the_block_zone() {
        let s = spec(CountdownSettingsText {
            tz: Some("Europe/Berlin"),
            ..Default::default()
        });
        let berlin = s
            .resolve(
                &Default::default(),
                &query(&[("until", "2026-12-01T00:00")]),
            )
            .expect("resolves");
        assert_eq!(berlin.deadline.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        let ny = s
            .resolve(
                &Default::default(),
                &query(&[("until", "2026-12-01T00:00"), ("tz", "America/New_York")]),
            )
            .expect("resolves");
        assert_eq!(ny.deadline.to_rfc3339(), "2026-12-01T05:00:00+00:00");
    }

    #[test]
    fn canonical_query_resolves_to_the_same_request() {
        let s = spec(CountdownSettingsText {
            lang: Some("de"),
            ..Default::default()
        });
        let q = query(&[
            ("until", "2026-12-01T00:00"),
            ("tz", "America/New_York"),
            ("utm_source", "x"),
            ("first_frame", "1"),
        ]);
        let request = s.resolve(&Default::default(), &q).expect("resolves");
        assert_eq!(request.lang, Lang::De);
        assert!(request.first_frame_only);
        let canonical = request.canonical_query();
        assert_eq!(canonical["until"], "2026-12-01T05:00:00Z");
        assert_eq!(canonical.len(), 3);
        assert_eq!(
            s.resolve(&Default::default(), &canonical)
                .expect("resolves"),
            request
        );
    }

    #[test]
    fn settings_are_checked() {
        for (text, expected) in [
            (
                CountdownSettingsText {
                    frames: Some(0),
                    ..Default::default()
                },
                "frames must be",
            ),
            (
                CountdownSettingsText {
                    frames: Some(MAX_FRAMES + 1),
                    ..Default::default()
                },
                "frames must be",
            ),
            (
                CountdownSettingsText {
                    looping: Some("twice"),
                    ..Default::default()
                },
                "forever or once",
            ),
            (
                CountdownSettingsText {
                    lang: Some("it"),
                    ..Default::default()
                },
                "en, de, fr or es",
            ),
            (
                CountdownSettingsText {
                    tz: Some("Berlin"),
                    ..Default::default()
                },
                "IANA",
            ),
            (
                CountdownSettingsText {
                    deadline: Some("soon"),
                    ..Default::default()
                },
                "deadline = \"soon\"",
            ),
            (
                CountdownSettingsText {
                    hide_units: Some("days"),
                    ..Default::default()
                },
                "zero_days",
            ),
            (
                CountdownSettingsText {
                    labels: Some("long"),
                    ..Default::default()
                },
                "caps or words",
            ),
            (
                CountdownSettingsText {
                    deadline_field: Some("cart..x"),
                    ..Default::default()
                },
                "dotted path",
            ),
            (
                CountdownSettingsText {
                    expired_template: Some("a.svg"),
                    expired_image: Some("a.png"),
                    ..Default::default()
                },
                "not both",
            ),
        ] {
            let error = CountdownSpec::parse(&text).expect_err("refused");
            assert!(error.contains(expected), "{error}");
        }
    }
}
