//! When a countdown ends and how much time is left.
//!
//! Parses the `until` (+ optional `tz`) values a block or a request carries into one UTC
//! instant, and splits the time left at a given moment into days, hours, minutes and seconds.
//! Local times are resolved in an IANA zone with explicit rules for the hours daylight saving
//! time skips or repeats, so a deadline is never silently an hour off.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Longest `until` / `tz` value we look at; anything longer is not a date-time or a zone name.
const MAX_INPUT_LEN: usize = 64;

/// Local date-time layouts accepted together with a `tz`.
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
];

/// Why an `until`/`tz` pair was refused. `Display` is a short, fixed, ASCII reason meant for a
/// response header (it never echoes the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    #[error("bad-until: empty")]
    Empty,
    #[error("bad-until: not an RFC 3339 or local date-time")]
    Malformed,
    #[error("bad-until: local time needs tz")]
    MissingTimeZone,
    #[error("bad-tz: unknown IANA time zone")]
    UnknownTimeZone,
    #[error("bad-until: local time skipped by a DST change")]
    SkippedLocalTime,
    #[error("bad-until: local time repeated by a DST change")]
    RepeatedLocalTime,
}

impl DeadlineError {
    /// A stable label for metrics (`bad-until` or `bad-tz`).
    pub fn kind(&self) -> &'static str {
        match self {
            DeadlineError::UnknownTimeZone => "bad-tz",
            _ => "bad-until",
        }
    }
}

/// How a local time that daylight saving time makes skipped (spring forward) or repeated
/// (fall back) is resolved.
///
/// The default, [`DstPolicy::Compatible`], is the rule of RFC 5545 and JavaScript's
/// `Temporal` ("compatible" disambiguation): a skipped time moves forward by the length of the
/// gap (02:30 on a spring-forward night in Berlin is 03:30 CEST), and a repeated time means its
/// first occurrence (01:30 on a fall-back night in New York is 01:30 EDT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DstPolicy {
    /// Skipped → pushed forward by the gap; repeated → the earlier instant.
    #[default]
    Compatible,
    /// Skipped → the instant just before the gap's offset change; repeated → the earlier one.
    Earlier,
    /// Skipped → pushed forward (as `Compatible`); repeated → the later instant.
    Later,
    /// Refuse both with a typed error.
    Reject,
}

/// Parses a deadline.
///
/// `until` is either RFC 3339 with an offset (`2026-12-01T00:00:00-05:00`, `…Z`), in which case
/// the offset decides and `tz` is not consulted, or a local date-time (`2026-12-01T00:00:00`,
/// `2026-12-01T00:00`, `2026-12-01 00:00`) that is read in the IANA zone `tz`.
pub fn parse_deadline(
    until: &str,
    tz: Option<&str>,
    policy: DstPolicy,
) -> Result<DateTime<Utc>, DeadlineError> {
    let until = until.trim();
    if until.is_empty() {
        return Err(DeadlineError::Empty);
    }
    if until.len() > MAX_INPUT_LEN {
        return Err(DeadlineError::Malformed);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(until) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = parse_local(until).ok_or(DeadlineError::Malformed)?;
    let tz = parse_tz(tz.ok_or(DeadlineError::MissingTimeZone)?)?;
    resolve_local(&local, tz, policy)
}

/// Parses an IANA zone name (`Europe/Berlin`); `UTC` is accepted too.
pub(super) fn parse_tz(name: &str) -> Result<Tz, DeadlineError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_INPUT_LEN {
        return Err(DeadlineError::UnknownTimeZone);
    }
    name.parse::<Tz>()
        .map_err(|_| DeadlineError::UnknownTimeZone)
}

pub(super) fn parse_local(s: &str) -> Option<NaiveDateTime> {
    LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// Maps a local date-time in `tz` to UTC, applying `policy` to DST gaps and folds.
pub(super) fn resolve_local(
    local: &NaiveDateTime,
    tz: Tz,
    policy: DstPolicy,
) -> Result<DateTime<Utc>, DeadlineError> {
    match tz.from_local_datetime(local) {
        LocalResult::Single(at) => Ok(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => match policy {
            DstPolicy::Compatible | DstPolicy::Earlier => Ok(first.with_timezone(&Utc)),
            DstPolicy::Later => Ok(second.with_timezone(&Utc)),
            DstPolicy::Reject => Err(DeadlineError::RepeatedLocalTime),
        },
        LocalResult::None => {
            // A gap: read the wall-clock time with the offset in force before (pushes it
            // forward past the gap) or after it (lands just before the gap).
            let offset = match policy {
                DstPolicy::Compatible | DstPolicy::Later => offset_near(local, tz, -1)?,
                DstPolicy::Earlier => offset_near(local, tz, 1)?,
                DstPolicy::Reject => return Err(DeadlineError::SkippedLocalTime),
            };
            offset
                .from_local_datetime(local)
                .single()
                .map(|at| at.with_timezone(&Utc))
                .ok_or(DeadlineError::Malformed)
        }
    }
}

/// The UTC offset of `tz` a day before (`dir` < 0) or after a local time. Gaps last hours at
/// most, and zones never change offset twice within a day, so this is the offset on that side.
fn offset_near(local: &NaiveDateTime, tz: Tz, dir: i64) -> Result<FixedOffset, DeadlineError> {
    let probe = local
        .checked_add_signed(chrono::Duration::days(dir))
        .ok_or(DeadlineError::Malformed)?;
    let at = tz
        .from_local_datetime(&probe)
        .earliest()
        .ok_or(DeadlineError::Malformed)?;
    Ok(at.offset().fix())
}

/// Which units a countdown shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnitVisibility {
    /// Days, hours, minutes and seconds, always.
    All,
    /// Hide days when less than a day is left.
    #[default]
    HideZeroDays,
    /// Hide days when less than a day is left and hours when less than an hour is left.
    HideLeadingZeros,
}

/// The units a frame shows; minutes and seconds are always shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShownUnits {
    pub days: bool,
    pub hours: bool,
    pub minutes: bool,
    pub seconds: bool,
}

/// Time left until a deadline, in whole seconds (rounded down), never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Remaining {
    /// Total whole seconds left.
    pub total: u64,
    pub days: u64,
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
}

impl Remaining {
    /// Time left from `at` until `deadline`, clamped at zero.
    pub fn between(deadline: DateTime<Utc>, at: DateTime<Utc>) -> Self {
        let secs = deadline.signed_duration_since(at).num_seconds();
        Self::from_secs(u64::try_from(secs).unwrap_or(0))
    }

    /// Splits a number of seconds into units.
    pub fn from_secs(total: u64) -> Self {
        Remaining {
            total,
            days: total / 86_400,
            // The remainders are < 24 and < 60, so the casts cannot truncate.
            hours: ((total / 3_600) % 24) as u8,
            minutes: ((total / 60) % 60) as u8,
            seconds: (total % 60) as u8,
        }
    }

    /// The time left `secs` seconds later, clamped at zero.
    pub fn after(self, secs: u64) -> Self {
        Self::from_secs(self.total.saturating_sub(secs))
    }

    pub fn is_zero(&self) -> bool {
        self.total == 0
    }

    /// The units to show for this amount of time under `visibility`.
    pub fn shown(&self, visibility: UnitVisibility) -> ShownUnits {
        let (days, hours) = match visibility {
            UnitVisibility::All => (true, true),
            UnitVisibility::HideZeroDays => (self.days > 0, true),
            UnitVisibility::HideLeadingZeros => (self.days > 0, self.days > 0 || self.hours > 0),
        };
        ShownUnits {
            days,
            hours,
            minutes: true,
            seconds: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::countdown::testkit::utc;

    fn parse(until: &str, tz: Option<&str>) -> Result<DateTime<Utc>, DeadlineError> {
        parse_deadline(until, tz, DstPolicy::Compatible)
    }

    #[test]
    fn rfc3339_with_offset_and_z() {
        assert_eq!(
            parse("2026-12-01T00:00:00-05:00", None),
            Ok(utc("2026-12-01T05:00:00Z"))
        );
        assert_eq!(
            parse("2026-12-01T05:00:00Z", Some("Europe/Berlin")),
            Ok(utc("2026-12-01T05:00:00Z")),
            "an explicit offset wins over tz"
        );
    }

    #[test]
    fn local_forms_with_tz() {
        let want = Ok(utc("2026-12-01T05:00:00Z"));
        for s in [
            "2026-12-01T00:00:00",
            "2026-12-01T00:00",
            "2026-12-01 00:00",
            "2026-12-01 00:00:00",
        ] {
            assert_eq!(parse(s, Some("America/New_York")), want, "{s}");
        }
    }

    #[test]
    fn new_york_across_fall_back() {
        // 2026-11-01: EDT (-4) ends at 02:00 local, clocks go back to 01:00 EST (-5).
        let before = parse("2026-11-01T00:30", Some("America/New_York"));
        assert_eq!(before, Ok(utc("2026-11-01T04:30:00Z")));
        let after = parse("2026-11-01T03:00", Some("America/New_York"));
        assert_eq!(after, Ok(utc("2026-11-01T08:00:00Z")));
        // 01:30 happens twice; compatible = the first (EDT).
        assert_eq!(
            parse("2026-11-01T01:30", Some("America/New_York")),
            Ok(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            parse_deadline(
                "2026-11-01T01:30",
                Some("America/New_York"),
                DstPolicy::Later
            ),
            Ok(utc("2026-11-01T06:30:00Z"))
        );
        assert_eq!(
            parse_deadline(
                "2026-11-01T01:30",
                Some("America/New_York"),
                DstPolicy::Reject
            ),
            Err(DeadlineError::RepeatedLocalTime)
        );
        // Remaining from Saturday noon EDT to Sunday 03:00 EST is 16 h, not the 15 h the wall
        // clock suggests.
        let at = utc("2026-10-31T16:00:00Z");
        let left = Remaining::between(after.expect("parsed"), at);
        assert_eq!((left.days, left.hours, left.minutes), (0, 16, 0));
        assert_eq!(left.total, 16 * 3600);
    }

    #[test]
    fn berlin_across_spring_forward() {
        // 2027-03-28: CET (+1) → CEST (+2) at 02:00 local; 02:00–02:59 does not exist.
        assert_eq!(
            parse("2027-03-28T01:30", Some("Europe/Berlin")),
            Ok(utc("2027-03-28T00:30:00Z"))
        );
        assert_eq!(
            parse("2027-03-28T03:30", Some("Europe/Berlin")),
            Ok(utc("2027-03-28T01:30:00Z"))
        );
        // In the gap: compatible pushes forward by the gap (02:30 → 03:30 CEST).
        assert_eq!(
            parse("2027-03-28T02:30", Some("Europe/Berlin")),
            Ok(utc("2027-03-28T01:30:00Z"))
        );
        assert_eq!(
            parse_deadline(
                "2027-03-28T02:30",
                Some("Europe/Berlin"),
                DstPolicy::Earlier
            ),
            Ok(utc("2027-03-28T00:30:00Z"))
        );
        assert_eq!(
            parse_deadline("2027-03-28T02:30", Some("Europe/Berlin"), DstPolicy::Reject),
            Err(DeadlineError::SkippedLocalTime)
        );
        // From Saturday 12:00 CET to Sunday 12:00 CEST is 23 hours.
        let deadline = parse("2027-03-28 12:00", Some("Europe/Berlin")).expect("parsed");
        let at = parse("2027-03-27 12:00", Some("Europe/Berlin")).expect("parsed");
        let left = Remaining::between(deadline, at);
        assert_eq!((left.days, left.hours), (0, 23));
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!(parse("", None), Err(DeadlineError::Empty));
        assert_eq!(parse("tomorrow", None), Err(DeadlineError::Malformed));
        assert_eq!(
            parse("2026-13-01T00:00", Some("UTC")),
            Err(DeadlineError::Malformed)
        );
        assert_eq!(
            parse("2026-12-01T00:00", None),
            Err(DeadlineError::MissingTimeZone)
        );
        assert_eq!(
            parse("2026-12-01T00:00", Some("Mars/Olympus")),
            Err(DeadlineError::UnknownTimeZone)
        );
        assert_eq!(
            parse(&"9".repeat(10_000), None),
            Err(DeadlineError::Malformed)
        );
        let e = parse("2026-12-01T00:00", Some("Nope/Nope")).expect_err("bad tz");
        assert_eq!(e.to_string(), "bad-tz: unknown IANA time zone");
        assert_eq!(e.kind(), "bad-tz");
        for e in [
            DeadlineError::Empty,
            DeadlineError::Malformed,
            DeadlineError::MissingTimeZone,
            DeadlineError::SkippedLocalTime,
            DeadlineError::RepeatedLocalTime,
        ] {
            let s = e.to_string();
            assert!(
                s.starts_with("bad-until: ") && s.is_ascii() && s.len() < 60,
                "{s}"
            );
        }
    }

    #[test]
    fn remaining_splits_and_clamps() {
        let d = utc("2026-12-01T00:00:00Z");
        let r = Remaining::between(d, utc("2026-11-28T10:58:55.600Z"));
        assert_eq!((r.days, r.hours, r.minutes, r.seconds), (2, 13, 1, 4));
        assert_eq!(r.total, 2 * 86_400 + 13 * 3_600 + 60 + 4);
        let past = Remaining::between(d, utc("2026-12-02T00:00:00Z"));
        assert!(past.is_zero());
        assert_eq!(r.after(u64::MAX), Remaining::from_secs(0));
    }

    #[test]
    fn unit_visibility() {
        let day = Remaining::from_secs(86_400 + 5);
        let hour = Remaining::from_secs(3_600 + 5);
        let minute = Remaining::from_secs(65);
        assert!(day.shown(UnitVisibility::HideZeroDays).days);
        assert!(!hour.shown(UnitVisibility::HideZeroDays).days);
        assert!(hour.shown(UnitVisibility::HideZeroDays).hours);
        assert!(minute.shown(UnitVisibility::All).days);
        let lead = minute.shown(UnitVisibility::HideLeadingZeros);
        assert!(!lead.days && !lead.hours && lead.minutes && lead.seconds);
    }
}
