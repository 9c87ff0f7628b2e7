//! The reader's local time for blocks with `request = ["time"]`: the render instant (already
//! in its time bucket) in the reader's zone — the location's, found as `location` is, else
//! UTC — as the date, weekday and hour a rule or template compares (`local.hour >= 9`,
//! `local.weekday == "sun"`). It is part of the render input, so of the cache key.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// What templates see as `local`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalTime {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `mon` … `sun`.
    pub weekday: String,
    /// 1 (Monday) … 7 (Sunday).
    pub weekday_number: u32,
    pub hour: u32,
    pub minute: u32,
    /// The IANA zone used (`UTC` when the reader's is unknown).
    pub time_zone: String,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl LocalTime {
    /// `now` in `zone` (an IANA name); an unknown or missing zone is UTC.
    pub fn at(now: DateTime<Utc>, zone: Option<&str>) -> Self {
        let zone: chrono_tz::Tz = zone.and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC);
        let local = now.with_timezone(&zone);
        let weekday = local.weekday().num_days_from_monday();
        Self {
            date: local.format("%Y-%m-%d").to_string(),
            weekday: WEEKDAYS[weekday as usize].to_owned(),
            weekday_number: weekday + 1,
            hour: local.hour(),
            minute: local.minute(),
            time_zone: zone.name().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_follows_the_zone_and_its_summer_time() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let winter = LocalTime::at(at("2026-01-04T22:30:00Z"), Some("Europe/Berlin"));
        assert_eq!(
            (winter.date.as_str(), winter.weekday.as_str(), winter.hour),
            ("2026-01-04", "sun", 23)
        );
        let summer = LocalTime::at(at("2026-07-06T07:05:00Z"), Some("Europe/Berlin"));
        assert_eq!(
            (
                summer.weekday.as_str(),
                summer.weekday_number,
                summer.hour,
                summer.minute
            ),
            ("mon", 1, 9, 5)
        );
        let unknown = LocalTime::at(at("2026-07-06T07:05:00Z"), Some("Mars/Olympus"));
        assert_eq!((unknown.time_zone.as_str(), unknown.hour), ("UTC", 7));
    }
}
