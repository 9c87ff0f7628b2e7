//! Unit labels ("DAYS", "Stunden", …) in the languages countdowns ship in.
//!
//! Two styles: the conventional uppercase short labels, which never change with the count,
//! and words, which follow each language's singular/plural rule ("1 Day", "2 Days";
//! French treats 0 as singular).

use std::str::FromStr;

use super::deadline::Remaining;

/// A language with countdown labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    De,
    Fr,
    Es,
}

/// A `lang` value that names no supported language. `Display` suits a response header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad-lang: supported are en, de, fr, es")]
pub struct UnknownLanguage;

impl Lang {
    /// The two-letter code (`en`, `de`, `fr`, `es`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }
}

impl FromStr for Lang {
    type Err = UnknownLanguage;

    /// Accepts a bare code or a language tag (`de`, `DE`, `de-AT`, `es_MX`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let primary = s.trim().split(['-', '_']).next().unwrap_or_default();
        match primary.to_ascii_lowercase().as_str() {
            "en" => Ok(Lang::En),
            "de" => Ok(Lang::De),
            "fr" => Ok(Lang::Fr),
            "es" => Ok(Lang::Es),
            _ => Err(UnknownLanguage),
        }
    }
}

/// How labels are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelStyle {
    /// `DAYS HOURS MINUTES SECONDS`, the same for every count.
    #[default]
    Caps,
    /// `Day`/`Days`, … following the language's plural rule.
    Words,
}

/// The four labels a frame shows, as the template sees them (`labels.days`, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Labels {
    pub days: &'static str,
    pub hours: &'static str,
    pub minutes: &'static str,
    pub seconds: &'static str,
}

/// One unit's label forms: caps, singular word, plural word.
type Forms = (&'static str, &'static str, &'static str);

/// `[days, hours, minutes, seconds]` for a language.
fn forms(lang: Lang) -> [Forms; 4] {
    match lang {
        Lang::En => [
            ("DAYS", "Day", "Days"),
            ("HOURS", "Hour", "Hours"),
            ("MINUTES", "Minute", "Minutes"),
            ("SECONDS", "Second", "Seconds"),
        ],
        Lang::De => [
            ("TAGE", "Tag", "Tage"),
            ("STUNDEN", "Stunde", "Stunden"),
            ("MINUTEN", "Minute", "Minuten"),
            ("SEKUNDEN", "Sekunde", "Sekunden"),
        ],
        Lang::Fr => [
            ("JOURS", "Jour", "Jours"),
            ("HEURES", "Heure", "Heures"),
            ("MINUTES", "Minute", "Minutes"),
            ("SECONDES", "Seconde", "Secondes"),
        ],
        Lang::Es => [
            ("DÍAS", "Día", "Días"),
            ("HORAS", "Hora", "Horas"),
            ("MINUTOS", "Minuto", "Minutos"),
            ("SEGUNDOS", "Segundo", "Segundos"),
        ],
    }
}

/// Whether `n` takes the singular in `lang` (French: 0 and 1; the others: 1 only).
fn is_singular(lang: Lang, n: u64) -> bool {
    match lang {
        Lang::Fr => n <= 1,
        Lang::En | Lang::De | Lang::Es => n == 1,
    }
}

impl Labels {
    /// The labels for a frame showing `left`.
    pub(crate) fn new(lang: Lang, style: LabelStyle, left: &Remaining) -> Self {
        let [d, h, m, s] = forms(lang);
        let pick = |f: Forms, n: u64| match style {
            LabelStyle::Caps => f.0,
            LabelStyle::Words if is_singular(lang, n) => f.1,
            LabelStyle::Words => f.2,
        };
        Labels {
            days: pick(d, left.days),
            hours: pick(h, u64::from(left.hours)),
            minutes: pick(m, u64::from(left.minutes)),
            seconds: pick(s, u64::from(left.seconds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_tags() {
        assert_eq!("en".parse(), Ok(Lang::En));
        assert_eq!("DE".parse(), Ok(Lang::De));
        assert_eq!("fr-CA".parse(), Ok(Lang::Fr));
        assert_eq!("es_MX".parse(), Ok(Lang::Es));
        assert_eq!("it".parse::<Lang>(), Err(UnknownLanguage));
        assert_eq!("".parse::<Lang>(), Err(UnknownLanguage));
        assert!(UnknownLanguage.to_string().starts_with("bad-lang: "));
    }

    #[test]
    fn caps_labels_per_language() {
        let left = Remaining::from_secs(1);
        let l = |lang| Labels::new(lang, LabelStyle::Caps, &left);
        assert_eq!(l(Lang::En).days, "DAYS");
        assert_eq!(l(Lang::De).hours, "STUNDEN");
        assert_eq!(l(Lang::Fr).seconds, "SECONDES");
        assert_eq!(l(Lang::Es).days, "DÍAS");
        assert_eq!(l(Lang::Es).minutes, "MINUTOS");
    }

    #[test]
    fn words_follow_plural_rules() {
        // 1 day, 0 hours, 1 minute, 2 seconds.
        let left = Remaining::from_secs(86_400 + 60 + 2);
        let en = Labels::new(Lang::En, LabelStyle::Words, &left);
        assert_eq!(
            [en.days, en.hours, en.minutes, en.seconds],
            ["Day", "Hours", "Minute", "Seconds"]
        );
        let fr = Labels::new(Lang::Fr, LabelStyle::Words, &left);
        assert_eq!(
            [fr.days, fr.hours, fr.minutes, fr.seconds],
            ["Jour", "Heure", "Minute", "Secondes"]
        );
        let de = Labels::new(Lang::De, LabelStyle::Words, &left);
        assert_eq!(
            [de.days, de.hours, de.seconds],
            ["Tag", "Stunden", "Sekunden"]
        );
        let es = Labels::new(Lang::Es, LabelStyle::Words, &left);
        assert_eq!(
            [es.days, es.hours, es.seconds],
            ["Día", "Horas", "Segundos"]
        );
    }
}
