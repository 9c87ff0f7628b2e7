//! When a countdown ends, in words: "Ends Wed 24 Dec, 18:00", "Endet am Mi., 24. Dez. um
//! 18:00 Uhr", in the languages countdown labels ship in, in one time zone.
//!
//! This is what a still shows to a client that keeps the copy it fetched and shows it later,
//! unchanged (Apple Mail Privacy Protection): an absolute date and time stays right however
//! late the mail is read, where a time left would be wrong by then. Templates see the result
//! as `ends` ([`EndsWords`]); the parts are there for designs that place them apart.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::labels::Lang;
use super::settings::{ClockStyle, EndsAt};

/// The deadline as the still's template sees it (`ends.text`, `ends.date`, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndsWords {
    /// "Ends", "Endet am", "Se termine le", "Termina el".
    pub label: &'static str,
    /// The date and time after the label: "Wed 24 Dec, 18:00".
    pub when: String,
    /// Label and time together: "Ends Wed 24 Dec, 18:00".
    pub text: String,
    /// "Wed 24 Dec".
    pub date: String,
    /// "18:00", "6:00 PM", "18:00 Uhr".
    pub time: String,
    pub weekday: &'static str,
    pub weekday_long: &'static str,
    pub day: u32,
    pub month: &'static str,
    pub month_long: &'static str,
    pub year: i32,
    pub hour: u32,
    pub minute: u32,
    /// The IANA zone the time is written in.
    pub zone: &'static str,
    /// Its abbreviation at the deadline ("CET", "EST", "+03").
    pub zone_abbr: String,
    /// Whether it is the reader's own zone; when it is not, `when` and `text` name it.
    pub in_reader_zone: bool,
    /// RFC 3339 with the zone's offset.
    pub iso: String,
}

/// Day and month names of one language.
struct Words {
    label: &'static str,
    weekdays: [&'static str; 7],
    weekdays_long: [&'static str; 7],
    months: [&'static str; 12],
    months_long: [&'static str; 12],
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            label: "Ends",
            weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            weekdays_long: [
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
                "Sunday",
            ],
            months: [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ],
            months_long: [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ],
        },
        Lang::De => Words {
            label: "Endet am",
            weekdays: ["Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."],
            weekdays_long: [
                "Montag",
                "Dienstag",
                "Mittwoch",
                "Donnerstag",
                "Freitag",
                "Samstag",
                "Sonntag",
            ],
            months: [
                "Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.",
                "Nov.", "Dez.",
            ],
            months_long: [
                "Januar",
                "Februar",
                "März",
                "April",
                "Mai",
                "Juni",
                "Juli",
                "August",
                "September",
                "Oktober",
                "November",
                "Dezember",
            ],
        },
        Lang::Fr => Words {
            label: "Se termine le",
            weekdays: ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."],
            weekdays_long: [
                "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
            ],
            months: [
                "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
                "nov.", "déc.",
            ],
            months_long: [
                "janvier",
                "février",
                "mars",
                "avril",
                "mai",
                "juin",
                "juillet",
                "août",
                "septembre",
                "octobre",
                "novembre",
                "décembre",
            ],
        },
        Lang::Es => Words {
            label: "Termina el",
            weekdays: ["lun.", "mar.", "mié.", "jue.", "vie.", "sáb.", "dom."],
            weekdays_long: [
                "lunes",
                "martes",
                "miércoles",
                "jueves",
                "viernes",
                "sábado",
                "domingo",
            ],
            months: [
                "ene.", "feb.", "mar.", "abr.", "may.", "jun.", "jul.", "ago.", "sept.", "oct.",
                "nov.", "dic.",
            ],
            months_long: [
                "enero",
                "febrero",
                "marzo",
                "abril",
                "mayo",
                "junio",
                "julio",
                "agosto",
                "septiembre",
                "octubre",
                "noviembre",
                "diciembre",
            ],
        },
    }
}

impl EndsWords {
    /// `deadline` written as `at` asks, in `lang`.
    pub fn new(deadline: DateTime<Utc>, at: &EndsAt, lang: Lang) -> Self {
        let local = deadline.with_timezone(&at.zone);
        let words = words(lang);
        let weekday = local.weekday().num_days_from_monday() as usize;
        let month = local.month0() as usize;
        let (day, hour, minute) = (local.day(), local.hour(), local.minute());
        let wd = words.weekdays.get(weekday).copied().unwrap_or_default();
        let mo = words.months.get(month).copied().unwrap_or_default();
        let (date, time, when) = match (lang, at.clock) {
            (Lang::En, ClockStyle::H12) => {
                let (h12, meridiem) = match hour {
                    0 => (12, "AM"),
                    1..=11 => (hour, "AM"),
                    12 => (12, "PM"),
                    _ => (hour - 12, "PM"),
                };
                let date = format!("{wd}, {mo} {day}");
                let time = format!("{h12}:{minute:02} {meridiem}");
                let when = format!("{date}, {time}");
                (date, time, when)
            }
            (Lang::En, ClockStyle::H24) => {
                let date = format!("{wd} {day} {mo}");
                let time = format!("{hour:02}:{minute:02}");
                let when = format!("{date}, {time}");
                (date, time, when)
            }
            (Lang::De, _) => {
                let date = format!("{wd}, {day}. {mo}");
                let time = format!("{hour:02}:{minute:02} Uhr");
                let when = format!("{date} um {time}");
                (date, time, when)
            }
            (Lang::Fr, _) => {
                let date = format!("{wd} {day} {mo}");
                let time = format!("{hour:02}:{minute:02}");
                let when = format!("{date} à {time}");
                (date, time, when)
            }
            (Lang::Es, _) => {
                let date = format!("{wd} {day} {mo}");
                let time = format!("{hour:02}:{minute:02}");
                let when = format!("{date} a las {time}");
                (date, time, when)
            }
        };
        let zone_abbr = local.format("%Z").to_string();
        let when = if at.in_reader_zone {
            when
        } else {
            format!("{when} {zone_abbr}")
        };
        Self {
            label: words.label,
            text: format!("{} {when}", words.label),
            when,
            date,
            time,
            weekday: wd,
            weekday_long: words
                .weekdays_long
                .get(weekday)
                .copied()
                .unwrap_or_default(),
            day,
            month: mo,
            month_long: words.months_long.get(month).copied().unwrap_or_default(),
            year: local.year(),
            hour,
            minute,
            zone: at.zone.name(),
            zone_abbr,
            in_reader_zone: at.in_reader_zone,
            iso: local.to_rfc3339(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::countdown::testkit::utc;
    use chrono_tz::Tz;

    fn ends(zone: Tz, in_reader_zone: bool, clock: ClockStyle) -> EndsAt {
        EndsAt {
            zone,
            in_reader_zone,
            clock,
        }
    }

    #[test]
    fn the_deadline_in_words_in_each_language() {
        // 17:00 UTC on Thursday 24 December 2026 is 18:00 in Berlin.
        let deadline = utc("2026-12-24T17:00:00Z");
        let berlin = ends(Tz::Europe__Berlin, true, ClockStyle::H24);
        let text = |lang| EndsWords::new(deadline, &berlin, lang).text;
        assert_eq!(text(Lang::En), "Ends Thu 24 Dec, 18:00");
        assert_eq!(text(Lang::De), "Endet am Do., 24. Dez. um 18:00 Uhr");
        assert_eq!(text(Lang::Fr), "Se termine le jeu. 24 déc. à 18:00");
        assert_eq!(text(Lang::Es), "Termina el jue. 24 dic. a las 18:00");
        let words = EndsWords::new(deadline, &berlin, Lang::En);
        assert_eq!(
            (words.day, words.month_long, words.year),
            (24, "December", 2026)
        );
        assert_eq!(words.iso, "2026-12-24T18:00:00+01:00");
        assert_eq!(words.zone_abbr, "CET");
    }

    #[test]
    fn the_readers_zone_and_clock() {
        let deadline = utc("2026-12-24T17:00:00Z");
        let new_york = ends(Tz::America__New_York, true, ClockStyle::H12);
        assert_eq!(
            EndsWords::new(deadline, &new_york, Lang::En).text,
            "Ends Thu, Dec 24, 12:00 PM"
        );
        let midnight = utc("2026-12-25T05:00:00Z");
        assert_eq!(
            EndsWords::new(midnight, &new_york, Lang::En).time,
            "12:00 AM"
        );
        // Not the reader's zone (unknown reader): the zone is named.
        let block_zone = ends(Tz::Europe__Berlin, false, ClockStyle::H24);
        assert_eq!(
            EndsWords::new(deadline, &block_zone, Lang::En).text,
            "Ends Thu 24 Dec, 18:00 CET"
        );
        // Summer time.
        let summer = utc("2027-07-01T16:30:00Z");
        let words = EndsWords::new(summer, &block_zone, Lang::De);
        assert_eq!(words.when, "Do., 1. Juli um 18:30 Uhr CEST");
    }
}
