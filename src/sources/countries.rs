//! Countries by their ISO 3166-1 alpha-2 code: the English name, and the IANA time zone of a
//! country or of one of its regions (ISO 3166-2), so a location that knows only a country and
//! a region (Apple's egress list, a context written by a channel) still has a time zone.
//!
//! The tables are data files shipped in `assets/` (`countries.tsv`, `region-time-zones.tsv`,
//! from the IANA tz database), embedded at build time and read once.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const COUNTRIES: &str = include_str!("../../assets/countries.tsv");
const REGION_TIME_ZONES: &str = include_str!("../../assets/region-time-zones.tsv");

/// An ISO 3166-1 alpha-2 code of a known country, upper case (`FR`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// A known code, in any case (`fr`, `FR`); `None` for anything else.
    pub fn parse(code: &str) -> Option<Self> {
        let bytes = code.trim().as_bytes();
        let [a, b] = bytes else { return None };
        let code = Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]);
        tables().countries.contains_key(&code).then_some(code)
    }

    /// A code or an English name (`FR`, `France`, `united kingdom`).
    pub fn from_code_or_name(value: &str) -> Option<Self> {
        Self::parse(value).or_else(|| {
            let wanted = value.trim().to_lowercase();
            tables().by_name.get(&wanted).copied()
        })
    }

    pub fn as_str(&self) -> &str {
        // Built only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The country's usual English name.
    pub fn name(self) -> &'static str {
        tables()
            .countries
            .get(&self)
            .map_or("", |country| country.name)
    }

    /// The zone of `region` (an ISO 3166-2 code, `US-CA`; or the part after the dash, `CA`)
    /// when the tables know it, else the zone nearly all of the country keeps, if one does.
    pub fn time_zone(self, region: Option<&str>) -> Option<&'static str> {
        let tables = tables();
        let by_region = region.and_then(|region| {
            let region = region.trim().to_ascii_uppercase();
            let full = if region.contains('-') {
                region
            } else {
                format!("{}-{region}", self.as_str())
            };
            tables.regions.get(full.as_str()).copied()
        });
        by_region.or_else(|| tables.countries.get(&self).and_then(|c| c.zone))
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CountryCode::from_code_or_name(&text)
            .ok_or_else(|| serde::de::Error::custom("not an ISO 3166-1 country"))
    }
}

struct Country {
    name: &'static str,
    zone: Option<&'static str>,
}

struct Tables {
    countries: HashMap<CountryCode, Country>,
    by_name: HashMap<String, CountryCode>,
    regions: HashMap<&'static str, &'static str>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut countries = HashMap::new();
        let mut by_name = HashMap::new();
        for columns in rows(COUNTRIES) {
            let ([a, b], Some(name)) = (columns[0].as_bytes(), columns.get(1)) else {
                continue;
            };
            let code = CountryCode([*a, *b]);
            let zone = columns.get(2).copied().filter(|zone| !zone.is_empty());
            by_name.insert(name.to_lowercase(), code);
            countries.insert(code, Country { name, zone });
        }
        // Names other sources use for the same countries.
        for (name, code) in [
            ("united states of america", *b"US"),
            ("great britain", *b"GB"),
            ("britain", *b"GB"),
            ("russian federation", *b"RU"),
            ("czechia", *b"CZ"),
            ("türkiye", *b"TR"),
            ("republic of korea", *b"KR"),
            ("the netherlands", *b"NL"),
        ] {
            by_name.insert(name.to_owned(), CountryCode(code));
        }
        let regions = rows(REGION_TIME_ZONES)
            .filter_map(|columns| Some((columns[0], *columns.get(1)?)))
            .collect();
        Tables {
            countries,
            by_name,
            regions,
        }
    })
}

/// The tab-separated rows of a shipped table, comments and blank lines skipped.
fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').map(str::trim).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        let fr = CountryCode::parse("fr").unwrap();
        assert_eq!(fr.as_str(), "FR");
        assert_eq!(fr.name(), "France");
        assert_eq!(CountryCode::from_code_or_name("France"), Some(fr));
        let gb = CountryCode::from_code_or_name("United Kingdom").unwrap();
        assert_eq!(gb.as_str(), "GB");
        assert_eq!(CountryCode::from_code_or_name("great britain"), Some(gb));
        assert_eq!(CountryCode::parse("XX"), None);
        assert_eq!(CountryCode::parse("FRA"), None);
        assert_eq!(CountryCode::parse("é"), None);
        assert_eq!(CountryCode::from_code_or_name("Atlantis"), None);
        assert_eq!(serde_json::to_value(fr).unwrap(), "FR");
    }

    #[test]
    fn zones_by_country_and_region() {
        let code = |c: &str| CountryCode::parse(c).unwrap();
        assert_eq!(code("DE").time_zone(None), Some("Europe/Berlin"));
        assert_eq!(code("DE").time_zone(Some("DE-HE")), Some("Europe/Berlin"));
        assert_eq!(code("FR").time_zone(None), Some("Europe/Paris"));
        assert_eq!(code("US").time_zone(None), None, "several zones");
        assert_eq!(
            code("US").time_zone(Some("US-CA")),
            Some("America/Los_Angeles")
        );
        assert_eq!(code("US").time_zone(Some("ny")), Some("America/New_York"));
        assert_eq!(code("ES").time_zone(Some("ES-CN")), Some("Atlantic/Canary"));
        assert_eq!(code("ES").time_zone(Some("ES-MD")), Some("Europe/Madrid"));
        assert_eq!(code("AU").time_zone(Some("AU-WA")), Some("Australia/Perth"));
    }

    /// Every zone in the shipped tables is one chrono-tz knows, every region belongs to a
    /// known country, and every country has a name.
    #[test]
    fn the_shipped_tables_are_sound() {
        let tables = tables();
        assert!(tables.countries.len() >= 249, "{}", tables.countries.len());
        for (code, country) in &tables.countries {
            assert!(!country.name.is_empty(), "{code}");
            if let Some(zone) = country.zone {
                assert!(zone.parse::<chrono_tz::Tz>().is_ok(), "{code}: {zone}");
            }
        }
        for (region, zone) in &tables.regions {
            assert!(zone.parse::<chrono_tz::Tz>().is_ok(), "{region}: {zone}");
            let country = region.split('-').next().unwrap();
            assert!(CountryCode::parse(country).is_some(), "{region}");
        }
    }
}
