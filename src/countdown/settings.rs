//! The settings of a `kind = "countdown"` block, and where one open's deadline comes from.
//!
//! A countdown's deadline is taken, in this order, from the context field the block names
//! (`deadline_field`, which makes it personalized), from the request (`until`, with `tz` for a
//! local time), or from the block's fixed `deadline`. A local time is read in `tz`, which may be
//! `"reader"`: the reader's own zone (`location.time_zone`) when known, else the block's zone
//! (`fallback_tz`, else UTC). [`CountdownSpec::resolve_for`] turns those inputs into one
//! [`CountdownRequest`] — with, for a fetch whose copy is shown later unchanged (Apple's
//! prefetch, or every machine with `on_prefetch`), the deadline as a date and time in the
//! reader's zone instead of the time left ([`EndsAt`]) — and
//! [`CountdownRequest::canonical_query`] writes it back as the only query the render sees, so
//! the render cache key holds exactly what decides the picture. Drawing is the rest of
//! [`crate::countdown`]'s job.

use super::deadline::{
    self, parse_deadline, parse_local, resolve_local, DeadlineError, DstPolicy, UnitVisibility,
};
use super::labels::{LabelStyle, Lang};
use super::{CountdownError, CountdownSettings, Looping, DEFAULT_FRAMES, MAX_FRAMES};
use crate::sources::countries::CountryCode;
use crate::sources::mail_clients::ClientKind;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
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
/// `still=1`: the deadline as a date and time, the picture Apple's prefetch gets (a preview).
pub(crate) const QUERY_STILL: &str = "still";
/// Every query parameter a countdown reads; the only ones that reach its render and key.
pub(crate) const QUERY_KEYS: [&str; 5] = [
    QUERY_UNTIL,
    QUERY_TZ,
    QUERY_LANG,
    QUERY_FIRST_FRAME,
    QUERY_STILL,
];
/// The `tz` value that means the reader's own zone.
pub(crate) const READER_TZ: &str = "reader";

/// The raw countdown settings of one block in `blocks.toml`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CountdownSettingsText<'a> {
    pub(crate) deadline_field: Option<&'a str>,
    pub(crate) deadline: Option<&'a str>,
    pub(crate) tz: Option<&'a str>,
    pub(crate) fallback_tz: Option<&'a str>,
    pub(crate) frames: Option<usize>,
    pub(crate) looping: Option<&'a str>,
    pub(crate) lang: Option<&'a str>,
    pub(crate) labels: Option<&'a str>,
    pub(crate) hide_units: Option<&'a str>,
    pub(crate) expired_template: Option<&'a str>,
    pub(crate) expired_image: Option<&'a str>,
    pub(crate) still_template: Option<&'a str>,
    pub(crate) on_prefetch: Option<&'a str>,
}

/// Which fetches get the deadline as a date and time (a still that cannot go stale) instead of
/// the running animation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnPrefetch {
    /// Fetches whose copy is shown later, unchanged: Apple's prefetch (the default).
    #[default]
    KeptCopies,
    /// Those and every other machine fetch (Gmail's prefetch, scanners, previewers).
    Machines,
    /// Nobody: every fetch gets the animation.
    Animate,
}

impl OnPrefetch {
    /// Whether a fetch by a client of `kind` (a machine's when `machine`) gets the still.
    pub fn wants_still(self, kind: ClientKind, machine: bool) -> bool {
        match self {
            OnPrefetch::KeptCopies => kind.keeps_the_first_fetch(),
            OnPrefetch::Machines => kind.keeps_the_first_fetch() || machine,
            OnPrefetch::Animate => false,
        }
    }
}

/// A block's fixed deadline: an instant, or a local time read in the reader's zone per open
/// (`tz = "reader"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedDeadline {
    At(DateTime<Utc>),
    Local(NaiveDateTime),
}

/// A countdown block's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CountdownSpec {
    /// Dotted path into the context (`cart.reserved_until`): the per-subscriber deadline.
    pub deadline_field: Option<Vec<String>>,
    /// The block's fixed deadline, when it has one.
    pub deadline: Option<FixedDeadline>,
    /// Zone for local times (`until` without an offset) when the request gives no `tz`; may be
    /// `"reader"`.
    pub tz: Option<String>,
    /// Zone for local times when `tz` is `"reader"` and the reader's zone is unknown (UTC when
    /// unset).
    pub fallback_tz: Option<String>,
    /// Frames, loop, default language, label style and hidden units.
    pub settings: CountdownSettings,
    /// Template drawn once the deadline has passed (default: the countdown template with
    /// `expired = true`).
    pub expired_template: Option<String>,
    /// Image file (PNG, GIF or SVG) shown once the deadline has passed, instead of a template.
    pub expired_image: Option<String>,
    /// Template of the still that shows when the countdown ends (default: opentime's own).
    pub still_template: Option<String>,
    /// Which fetches get that still.
    pub on_prefetch: OnPrefetch,
}

/// How the still writes the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockStyle {
    /// `18:00`.
    #[default]
    H24,
    /// `6:00 PM`, with the month before the day (English for readers in the US and a few
    /// other countries).
    H12,
}

/// The still that shows when the countdown ends: the deadline as a local date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndsAt {
    /// The zone the date and time are written in.
    #[serde(with = "zone_name")]
    pub zone: Tz,
    /// Whether that zone is the reader's own (otherwise the picture names it).
    pub in_reader_zone: bool,
    pub clock: ClockStyle,
}

/// A zone as its IANA name.
mod zone_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse()
            .map_err(|_| serde::de::Error::custom("not an IANA time zone"))
    }
}

/// What one open of a countdown shows: resolved once per open from the block, the context,
/// the query and the reader (`open::input`), then carried in the render's input to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountdownRequest {
    pub deadline: DateTime<Utc>,
    pub lang: Lang,
    /// Render only the first frame (a still for clients that show nothing else).
    pub first_frame_only: bool,
    /// Show when it ends instead of the time left (a still that cannot go stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<EndsAt>,
}

/// What is known of the reader of one open (from their location), and what is asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenFacts {
    /// The reader's time zone.
    pub reader_zone: Option<Tz>,
    /// The reader's country (how the still writes the hour in English).
    pub reader_country: Option<CountryCode>,
    /// The fetch gets the still (Apple's prefetch, or a machine with `on_prefetch`).
    pub still: bool,
}

/// A resolved request, and whether it consulted the reader's facts (then whatever decides
/// those facts — the client's address — decides the picture too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub request: CountdownRequest,
    pub consulted_reader: bool,
}

/// Countries whose English readers expect a 12-hour clock with the month first.
const TWELVE_HOUR_COUNTRIES: [&str; 6] = ["US", "CA", "AU", "NZ", "PH", "IN"];

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
        let reader_tz = text.tz == Some(READER_TZ);
        if let Some(tz) = text.tz.filter(|_| !reader_tz) {
            deadline::parse_tz(tz)
                .map_err(|_| format!("tz = {tz:?}: not an IANA time zone (or \"reader\")"))?;
        }
        if let Some(tz) = text.fallback_tz {
            deadline::parse_tz(tz)
                .map_err(|_| format!("fallback_tz = {tz:?}: not an IANA time zone"))?;
            if !reader_tz {
                return Err("fallback_tz needs tz = \"reader\"".into());
            }
        }
        let deadline = text
            .deadline
            .map(|d| {
                let local = parse_local(d.trim());
                match local {
                    Some(local) if reader_tz => Ok(FixedDeadline::Local(local)),
                    _ => parse_deadline(d, text.tz, DstPolicy::default())
                        .map(FixedDeadline::At)
                        .map_err(|e| format!("deadline = {d:?}: {e}")),
                }
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
        let (on_prefetch, prefetch_template) = match text.on_prefetch {
            None => (OnPrefetch::KeptCopies, None),
            Some("still") => (OnPrefetch::Machines, None),
            Some("animate") => (OnPrefetch::Animate, None),
            Some(file) if file.ends_with(".svg") => (OnPrefetch::Machines, Some(file)),
            Some(other) => {
                return Err(format!(
                    "on_prefetch = {other:?}: use \"still\", \"animate\" or a template file (.svg)"
                ))
            }
        };
        if prefetch_template.is_some() && text.still_template.is_some() {
            return Err(
                "give the still's template in on_prefetch or still_template, not both".into(),
            );
        }
        Ok(Self {
            deadline_field,
            deadline,
            tz: text.tz.map(str::to_owned),
            fallback_tz: text.fallback_tz.map(str::to_owned),
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
            still_template: text.still_template.or(prefetch_template).map(str::to_owned),
            on_prefetch,
        })
    }

    /// The context field the block reads (the first part of `deadline_field`).
    pub(crate) fn context_field(&self) -> Option<&str> {
        self.deadline_field
            .as_ref()
            .and_then(|p| p.first())
            .map(String::as_str)
    }

    /// [`CountdownSpec::resolve_for`] an open that knows nothing of its reader and gets the
    /// animation.
    #[cfg(test)]
    pub(crate) fn resolve(
        &self,
        ctx: &serde_json::Map<String, Value>,
        query: &BTreeMap<String, String>,
    ) -> Result<CountdownRequest, CountdownError> {
        Ok(self.resolve_for(ctx, query, OpenFacts::default())?.request)
    }

    /// This open's deadline, language and picture: the context field, else `until` (+ `tz`),
    /// else the block's deadline; local times in the zone `tz` names (the reader's for
    /// `"reader"`, else the block's). With `facts.still` (or `still=1`), the deadline as a
    /// date and time in the reader's zone, else in the block's. Invalid values are errors
    /// (the block's fallback), never a guess.
    pub(crate) fn resolve_for(
        &self,
        ctx: &serde_json::Map<String, Value>,
        query: &BTreeMap<String, String>,
        facts: OpenFacts,
    ) -> Result<Resolved, CountdownError> {
        let query_tz = query.get(QUERY_TZ).map(String::as_str);
        if let Some(name) = query_tz.filter(|tz| *tz != READER_TZ) {
            deadline::parse_tz(name)?;
        }
        let zones = self.zones(query_tz);
        let reader_zone = zones.reader_first.then_some(facts.reader_zone).flatten();
        let local_zone: Option<Tz> = reader_zone.or(zones.fallback);
        let local_name = local_zone.map(|zone| zone.name());
        // Whether a local time was read in the zone that came from the reader.
        let mut read_in_reader_zone = false;
        let mut note_local = |text: &str| {
            if zones.reader_first && parse_local(text.trim()).is_some() {
                read_in_reader_zone = true;
            }
        };
        let from_context = match self.deadline_field.as_deref() {
            Some(path) => field(ctx, path)
                .map(|value| {
                    if let Value::String(text) = value {
                        note_local(text);
                    }
                    deadline_value(value, local_name)
                })
                .transpose()?,
            None => None,
        };
        let deadline = match from_context {
            Some(deadline) => deadline,
            None => match query.get(QUERY_UNTIL) {
                Some(until) => {
                    note_local(until);
                    parse_deadline(until, local_name, DstPolicy::default())?
                }
                None => match self.deadline.ok_or(CountdownError::NoDeadline)? {
                    FixedDeadline::At(at) => at,
                    FixedDeadline::Local(local) => {
                        read_in_reader_zone |= zones.reader_first;
                        let zone = self.reader_fallback_zone(facts.reader_zone);
                        resolve_local(&local, zone, DstPolicy::default())?
                    }
                },
            },
        };
        let lang = match query.get(QUERY_LANG) {
            Some(code) => code.parse::<Lang>()?,
            None => self.settings.lang,
        };
        let first_frame_only = query
            .get(QUERY_FIRST_FRAME)
            .is_some_and(|v| v == "1" || v == "true");
        let still = facts.still
            || query
                .get(QUERY_STILL)
                .is_some_and(|v| v == "1" || v == "true");
        let ends = still.then(|| EndsAt {
            zone: facts
                .reader_zone
                .or(local_zone)
                .or(zones.fallback)
                .unwrap_or(Tz::UTC),
            in_reader_zone: facts.reader_zone.is_some(),
            clock: match facts.reader_country {
                Some(country)
                    if lang == Lang::En && TWELVE_HOUR_COUNTRIES.contains(&country.as_str()) =>
                {
                    ClockStyle::H12
                }
                _ => ClockStyle::H24,
            },
        });
        Ok(Resolved {
            request: CountdownRequest {
                deadline,
                lang,
                first_frame_only: first_frame_only && ends.is_none(),
                ends,
            },
            consulted_reader: read_in_reader_zone || still,
        })
    }

    /// Whether a request with `query` can use the reader's facts (so they are worth looking
    /// up): `tz = "reader"` in the block or the query, or `still=1`. A fetch that gets the
    /// still uses them too.
    pub(crate) fn may_consult_reader(&self, query: &BTreeMap<String, String>) -> bool {
        self.tz.as_deref() == Some(READER_TZ)
            || query.get(QUERY_TZ).is_some_and(|tz| tz == READER_TZ)
            || query
                .get(QUERY_STILL)
                .is_some_and(|v| v == "1" || v == "true")
    }

    /// Where local times are read for a request with `tz = query_tz`: the reader's zone first
    /// (`"reader"`), then a zone.
    fn zones(&self, query_tz: Option<&str>) -> Zones {
        let zone = |name: Option<&str>| name.and_then(|name| deadline::parse_tz(name).ok());
        let block_zone = self.tz.as_deref().filter(|tz| *tz != READER_TZ);
        match query_tz {
            Some(READER_TZ) => Zones {
                reader_first: true,
                fallback: zone(block_zone)
                    .or_else(|| zone(self.fallback_tz.as_deref()))
                    .or(Some(Tz::UTC)),
            },
            Some(name) => Zones {
                reader_first: false,
                fallback: zone(Some(name)),
            },
            None if self.tz.as_deref() == Some(READER_TZ) => Zones {
                reader_first: true,
                fallback: zone(self.fallback_tz.as_deref()).or(Some(Tz::UTC)),
            },
            None => Zones {
                reader_first: false,
                fallback: zone(block_zone),
            },
        }
    }

    /// The zone a block's local fixed deadline is read in: the reader's, else `fallback_tz`,
    /// else UTC.
    fn reader_fallback_zone(&self, reader: Option<Tz>) -> Tz {
        reader
            .or_else(|| {
                self.fallback_tz
                    .as_deref()
                    .and_then(|name| deadline::parse_tz(name).ok())
            })
            .unwrap_or(Tz::UTC)
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

/// Where one request reads local times.
struct Zones {
    /// `tz` is `"reader"`: the reader's zone when known.
    reader_first: bool,
    /// The zone otherwise (or for everything, when not `reader_first`).
    fallback: Option<Tz>,
}

impl CountdownRequest {
    /// The request written as the only query the render sees (and the cache key holds):
    /// `until` in UTC to the second, `lang`, and `first_frame` or `still` when set.
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
        if self.ends.is_some() {
            query.insert(QUERY_STILL.to_owned(), "1".to_owned());
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

    fn zone(name: &str) -> Option<Tz> {
        name.parse().ok()
    }

    #[test]
    fn the_readers_zone_reads_local_times_when_asked() {
        let block_zone = spec(CountdownSettingsText {
            tz: Some("Europe/Berlin"),
            ..Default::default()
        });
        let new_york = OpenFacts {
            reader_zone: zone("America/New_York"),
            ..OpenFacts::default()
        };
        let local = query(&[("until", "2026-12-24T18:00"), ("tz", "reader")]);
        let resolved = block_zone
            .resolve_for(&Default::default(), &local, new_york)
            .expect("resolves");
        assert_eq!(
            resolved.request.deadline.to_rfc3339(),
            "2026-12-24T23:00:00+00:00"
        );
        assert!(resolved.consulted_reader);
        // Unknown reader: the block's zone.
        let resolved = block_zone
            .resolve_for(&Default::default(), &local, OpenFacts::default())
            .expect("resolves");
        assert_eq!(
            resolved.request.deadline.to_rfc3339(),
            "2026-12-24T17:00:00+00:00"
        );
        // An absolute `until` does not care about the reader.
        let absolute = query(&[("until", "2026-12-24T18:00:00+01:00"), ("tz", "reader")]);
        let resolved = block_zone
            .resolve_for(&Default::default(), &absolute, new_york)
            .expect("resolves");
        assert!(!resolved.consulted_reader);
        // Without `tz=reader` the reader's zone changes nothing.
        let plain = query(&[("until", "2026-12-24T18:00")]);
        let resolved = block_zone
            .resolve_for(&Default::default(), &plain, new_york)
            .expect("resolves");
        assert_eq!(
            resolved.request.deadline.to_rfc3339(),
            "2026-12-24T17:00:00+00:00"
        );
        assert!(!resolved.consulted_reader);
    }

    #[test]
    fn a_block_in_the_readers_zone_falls_back_to_its_fallback_zone() {
        let new_year = spec(CountdownSettingsText {
            deadline: Some("2027-01-01T00:00"),
            tz: Some("reader"),
            fallback_tz: Some("Europe/Paris"),
            ..Default::default()
        });
        assert!(matches!(new_year.deadline, Some(FixedDeadline::Local(_))));
        let tokyo = OpenFacts {
            reader_zone: zone("Asia/Tokyo"),
            ..OpenFacts::default()
        };
        let at = |facts| {
            new_year
                .resolve_for(&Default::default(), &BTreeMap::new(), facts)
                .expect("resolves")
                .request
                .deadline
                .to_rfc3339()
        };
        assert_eq!(at(tokyo), "2026-12-31T15:00:00+00:00");
        assert_eq!(at(OpenFacts::default()), "2026-12-31T23:00:00+00:00");
        let utc_fallback = spec(CountdownSettingsText {
            deadline: Some("2027-01-01T00:00"),
            tz: Some("reader"),
            ..Default::default()
        });
        let request = utc_fallback
            .resolve(&Default::default(), &BTreeMap::new())
            .expect("resolves");
        assert_eq!(request.deadline.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }

    #[test]
    fn the_still_is_written_in_the_readers_zone_else_the_blocks() {
        let s = spec(CountdownSettingsText {
            deadline: Some("2026-12-24T18:00:00+01:00"),
            tz: Some("Europe/Berlin"),
            ..Default::default()
        });
        let still = |facts: OpenFacts| {
            s.resolve_for(
                &Default::default(),
                &BTreeMap::new(),
                OpenFacts {
                    still: true,
                    ..facts
                },
            )
            .expect("resolves")
        };
        let unknown = still(OpenFacts::default());
        let ends = unknown.request.ends.expect("a still");
        assert_eq!(
            (ends.zone, ends.in_reader_zone),
            (Tz::Europe__Berlin, false)
        );
        assert!(unknown.consulted_reader);
        assert!(!unknown.request.first_frame_only);
        let us = still(OpenFacts {
            reader_zone: zone("America/Chicago"),
            reader_country: CountryCode::parse("US"),
            still: true,
        });
        let ends = us.request.ends.expect("a still");
        assert_eq!(
            (ends.zone, ends.in_reader_zone, ends.clock),
            (Tz::America__Chicago, true, ClockStyle::H12)
        );
        assert_eq!(us.request.canonical_query()["still"], "1");
        // `still=1` in the query asks for it too; `first_frame` never goes with it.
        let asked = s
            .resolve_for(
                &Default::default(),
                &query(&[("still", "1"), ("first_frame", "1")]),
                OpenFacts::default(),
            )
            .expect("resolves");
        assert!(asked.request.ends.is_some() && !asked.request.first_frame_only);
        let animated = s
            .resolve(&Default::default(), &BTreeMap::new())
            .expect("resolves");
        assert_eq!(animated.ends, None);
    }

    #[test]
    fn on_prefetch_chooses_who_gets_the_still() {
        let parse = |value: &str| {
            CountdownSpec::parse(&CountdownSettingsText {
                on_prefetch: Some(value),
                ..Default::default()
            })
        };
        let default = spec(CountdownSettingsText::default()).on_prefetch;
        assert!(default.wants_still(ClientKind::AppleMpp, true));
        assert!(!default.wants_still(ClientKind::Machine, true));
        assert!(!default.wants_still(ClientKind::GmailProxy, true));
        let machines = parse("still").unwrap();
        assert!(machines
            .on_prefetch
            .wants_still(ClientKind::GmailProxy, true));
        assert!(!machines.on_prefetch.wants_still(ClientKind::Browser, false));
        let template = parse("ends.svg").unwrap();
        assert_eq!(template.still_template.as_deref(), Some("ends.svg"));
        assert_eq!(template.on_prefetch, OnPrefetch::Machines);
        let none = parse("animate").unwrap();
        assert!(!none.on_prefetch.wants_still(ClientKind::AppleMpp, true));
        assert!(parse("sometimes").unwrap_err().contains("on_prefetch"));
        let both = CountdownSpec::parse(&CountdownSettingsText {
            on_prefetch: Some("a.svg"),
            still_template: Some("b.svg"),
            ..Default::default()
        });
        assert!(both.unwrap_err().contains("not both"));
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
                    fallback_tz: Some("Europe/Paris"),
                    ..Default::default()
                },
                "needs tz = \"reader\"",
            ),
            (
                CountdownSettingsText {
                    tz: Some("reader"),
                    fallback_tz: Some("Paris"),
                    ..Default::default()
                },
                "fallback_tz",
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
