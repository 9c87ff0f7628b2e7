//! Where the reader is, for location-aware blocks and countdowns in the reader's time zone.
//!
//! Order of trust: the subscriber's own `location` field in the context (written by a
//! channel that knows), then the request's address through a MaxMind City database, then —
//! for Apple's relays — the place Apple's egress list gives for the relay address, then
//! unknown. The address is never looked up when an image proxy or a machine fetched the image
//! (Gmail, Apple, Yahoo, a scanner): it locates the proxy, not the reader. Every location says
//! its country as an ISO 3166-1 code (with the English name beside it) and, when it can be
//! known, the IANA time zone. This module also decides which address is the client's when
//! opentime sits behind a CDN (`X-Forwarded-For`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::apple_egress::{AppleEgress, EgressPlace};
use crate::sources::countries::CountryCode;
use crate::sources::mail_clients::{address_locates_reader, Client, ClientKind};

/// Where a [`Location`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocationSource {
    /// The subscriber context's `location` field.
    #[serde(rename = "context")]
    Context,
    /// The client address, looked up in the MaxMind database.
    #[serde(rename = "ip")]
    Ip,
    /// Apple's egress list: the place of the people behind the relay address.
    #[serde(rename = "apple-relay")]
    AppleRelay,
    /// Nothing known.
    #[serde(rename = "unknown")]
    Unknown,
}

impl LocationSource {
    /// `context`, `ip`, `apple-relay` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationSource::Context => "context",
            LocationSource::Ip => "ip",
            LocationSource::AppleRelay => "apple-relay",
            LocationSource::Unknown => "unknown",
        }
    }
}

/// The reader's location as templates see it (`location.city`, `location.time_zone`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub city: Option<String>,
    /// The first-level subdivision (state, region, province): its English name when known,
    /// else its ISO 3166-2 code.
    pub region: Option<String>,
    /// The subdivision's ISO 3166-2 code (`US-CA`, `DE-BE`), when known.
    #[serde(default)]
    pub region_code: Option<String>,
    /// ISO 3166-1 alpha-2 (`FR`), whatever the source wrote.
    #[serde(default, deserialize_with = "lenient_country")]
    pub country: Option<CountryCode>,
    /// The country's English name (`France`).
    #[serde(default)]
    pub country_name: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The IANA time zone (`Europe/Paris`): the source's own, else the zone of the region or
    /// the country when one zone covers it.
    #[serde(default)]
    pub time_zone: Option<String>,
    pub source: LocationSource,
}

/// A stored country that is no longer understood reads as unknown rather than failing.
fn lenient_country<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<CountryCode>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.as_deref().and_then(CountryCode::from_code_or_name))
}

impl Location {
    /// Nothing known.
    pub fn unknown() -> Self {
        Self {
            city: None,
            region: None,
            region_code: None,
            country: None,
            country_name: None,
            lat: None,
            lon: None,
            time_zone: None,
            source: LocationSource::Unknown,
        }
    }

    /// Both coordinates, when known.
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }

    /// The time zone, parsed.
    pub fn zone(&self) -> Option<chrono_tz::Tz> {
        self.time_zone.as_deref().and_then(parse_zone)
    }

    fn is_empty(&self) -> bool {
        self.city.is_none()
            && self.region.is_none()
            && self.country.is_none()
            && self.time_zone.is_none()
            && self.coordinates().is_none()
    }

    /// Fills `country_name` from `country`, and `time_zone` (when the source gave none) from
    /// the region or the country.
    fn completed(mut self) -> Self {
        if let Some(country) = self.country {
            self.country_name = Some(country.name().to_owned());
            if self.time_zone.is_none() {
                self.time_zone = country
                    .time_zone(self.region_code.as_deref())
                    .map(str::to_owned);
            }
        }
        self
    }

    /// Reads the context's `location` field: an object with any of `city`, `region`,
    /// `region_code`, `country` (an ISO code or an English name), `time_zone` (an IANA zone;
    /// others are dropped) and `lat`, `lon` (numbers in range; both or neither). Returns
    /// `None` when the value holds nothing usable.
    pub fn from_context(value: &serde_json::Value) -> Option<Self> {
        let object = value.as_object()?;
        let text = |key: &str| {
            object
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 200)
                .map(str::to_owned)
        };
        let number = |key: &str| object.get(key).and_then(serde_json::Value::as_f64);
        let (lat, lon) = match (number("lat"), number("lon")) {
            (Some(lat), Some(lon)) if valid_coordinates(lat, lon) => (Some(lat), Some(lon)),
            _ => (None, None),
        };
        let country = text("country").and_then(|c| CountryCode::from_code_or_name(&c));
        let region = text("region");
        // A region given as a code (`US-CA`, or `CA` with the country) is also its code.
        let region_code = text("region_code")
            .or_else(|| region.clone())
            .and_then(|code| region_code_of(country, &code));
        let location = Self {
            city: text("city"),
            region,
            region_code,
            country,
            country_name: None,
            lat,
            lon,
            time_zone: text("time_zone").filter(|zone| parse_zone(zone).is_some()),
            source: LocationSource::Context,
        };
        (!location.is_empty()).then(|| location.completed())
    }

    /// The place Apple's egress list gives for a relay address.
    fn from_egress(place: &EgressPlace) -> Option<Self> {
        let region_code = place
            .region
            .as_deref()
            .and_then(|code| region_code_of(place.country, code));
        let location = Self {
            city: place.city.as_deref().map(str::to_owned),
            region: region_code.clone(),
            region_code,
            country: place.country,
            country_name: None,
            lat: None,
            lon: None,
            time_zone: None,
            source: LocationSource::AppleRelay,
        };
        (!location.is_empty()).then(|| location.completed())
    }
}

/// An ISO 3166-2 code (`US-CA`) from `US-CA`, or from `CA` with the country `US`; `None` for
/// anything that does not look like one (a region's name).
fn region_code_of(country: Option<CountryCode>, value: &str) -> Option<String> {
    let value = value.trim().to_ascii_uppercase();
    let code_like = |part: &str| {
        (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    match value.split_once('-') {
        Some((prefix, part)) if code_like(part) => {
            let prefix = CountryCode::parse(prefix)?;
            country
                .is_none_or(|country| country == prefix)
                .then(|| format!("{prefix}-{part}"))
        }
        Some(_) => None,
        None if code_like(&value) => country.map(|country| format!("{country}-{value}")),
        None => None,
    }
}

/// An IANA zone name chrono-tz knows (`UTC` included).
fn parse_zone(name: &str) -> Option<chrono_tz::Tz> {
    let name = name.trim();
    (!name.is_empty() && name.len() <= 64)
        .then(|| name.parse::<chrono_tz::Tz>().ok())
        .flatten()
}

fn valid_coordinates(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

/// Why the MaxMind database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open MaxMind database {path}: {source}")]
    Open {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("MaxMind database is not valid: {0}")]
    Invalid(#[source] maxminddb::MaxMindDbError),
}

/// A MaxMind (GeoIP2/GeoLite2) City database held in memory.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    /// Opens an `.mmdb` file (read into memory once, at start-up).
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|source| GeoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { reader })
    }

    /// Uses an `.mmdb` image already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes).map_err(GeoError::Invalid)?;
        Ok(Self { reader })
    }

    /// Looks an address up. `None` when the database has nothing for it, or the record
    /// cannot be read (a damaged database never fails a render).
    pub fn lookup(&self, ip: IpAddr) -> Option<Location> {
        let ip = ip.to_canonical();
        let result = match self.reader.lookup(ip) {
            Ok(result) => result,
            Err(error) => {
                tracing::debug!(%error, "geo lookup failed");
                return None;
            }
        };
        let city: maxminddb::geoip2::City<'_> = match result.decode() {
            Ok(Some(city)) => city,
            Ok(None) => return None,
            Err(error) => {
                tracing::debug!(%error, "geo record unreadable");
                return None;
            }
        };
        let (lat, lon) = match (city.location.latitude, city.location.longitude) {
            (Some(lat), Some(lon)) if valid_coordinates(lat, lon) => (Some(lat), Some(lon)),
            _ => (None, None),
        };
        let country = city
            .country
            .iso_code
            .and_then(CountryCode::parse)
            .or_else(|| {
                city.country
                    .names
                    .english
                    .and_then(CountryCode::from_code_or_name)
            });
        let subdivision = city.subdivisions.first();
        let region_code = subdivision
            .and_then(|s| s.iso_code)
            .and_then(|code| region_code_of(country, code));
        let location = Location {
            city: city.city.names.english.map(str::to_owned),
            region: subdivision
                .and_then(|s| s.names.english)
                .map(str::to_owned)
                .or_else(|| region_code.clone()),
            region_code,
            country,
            country_name: None,
            lat,
            lon,
            time_zone: city
                .location
                .time_zone
                .filter(|zone| parse_zone(zone).is_some())
                .map(str::to_owned),
            source: LocationSource::Ip,
        };
        (!location.is_empty()).then(|| location.completed())
    }
}

/// What locates the reader besides the context: the MaxMind database and Apple's egress list.
#[derive(Clone, Copy, Default)]
pub struct Locators<'a> {
    pub geo: Option<&'a GeoDb>,
    pub egress: Option<&'a AppleEgress>,
}

impl Locators<'_> {
    /// Whether the address of a fetch by a client of `kind` (a machine's when `machine`) could
    /// locate anyone: a database for the address of a person's client, the egress list for
    /// Apple's relays.
    pub fn can_locate(&self, kind: ClientKind, machine: bool) -> bool {
        (address_locates_reader(kind, machine) && (self.geo.is_some() || self.egress.is_some()))
            || (kind == ClientKind::AppleMpp && self.egress.is_some())
    }
}

/// Resolves the reader's location: the context's `location` field first; else the client's
/// address through the MaxMind database unless an image proxy or a machine fetched; else the
/// place of an Apple relay address in the egress list; else unknown.
pub fn resolve(
    context_location: Option<&serde_json::Value>,
    client: &Client,
    ip: Option<IpAddr>,
    locators: Locators<'_>,
) -> Location {
    if let Some(location) = context_location.and_then(Location::from_context) {
        return location;
    }
    let Some(ip) = ip else {
        return Location::unknown();
    };
    let person = client.address_locates_reader();
    let by_database = person
        .then(|| locators.geo.and_then(|db| db.lookup(ip)))
        .flatten();
    // Apple's relays (and Safari behind Private Relay, when the database has nothing):
    // the place Apple gives for the people behind the relay address.
    let by_egress = || {
        (person || client.kind == ClientKind::AppleMpp)
            .then(|| locators.egress.and_then(|egress| egress.place(ip)))
            .flatten()
            .and_then(Location::from_egress)
    };
    by_database
        .or_else(by_egress)
        .unwrap_or_else(Location::unknown)
}

/// The client's address. With `trusted_hops == 0` it is the TCP peer and
/// `X-Forwarded-For` is ignored (anyone can send one). With `N` trusted proxies in
/// front (a CDN, a load balancer), it is the Nth address from the right of the
/// `X-Forwarded-For` list — the one the outermost trusted proxy saw; when the list is
/// shorter, its leftmost entry. `forwarded_for` takes every `X-Forwarded-For` header
/// value in order. `None` when the chosen entry is not an address.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_hops: usize,
) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return Some(peer.to_canonical());
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries.is_empty() {
        // A trusted proxy always adds the header; without one, the peer is the client.
        return Some(peer.to_canonical());
    }
    // Fewer entries than trusted hops: the request did not pass every trusted proxy, so no
    // entry is known to be written by one — the left-most may be the client's own words.
    let index = entries.len().checked_sub(trusted_hops)?;
    parse_forwarded_address(entries.get(index)?).map(|ip| ip.to_canonical())
}

/// Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` and `[2001:db8::1]:443`.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(kind: ClientKind) -> Client {
        Client::of_kind(kind, "test")
    }

    fn egress() -> AppleEgress {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("egress.csv");
        std::fs::write(&path, "172.224.224.0/27,US,US-CA,Los Angeles,\n").unwrap();
        AppleEgress::load(&path).unwrap()
    }

    #[test]
    fn context_location_is_used_first() {
        let ctx = json!({"city": "Lyon", "country": "FR", "lat": 45.76, "lon": 4.84});
        let browser = client(ClientKind::Browser);
        let loc = resolve(
            Some(&ctx),
            &browser,
            Some(ip("1.2.3.4")),
            Locators::default(),
        );
        assert_eq!(loc.source, LocationSource::Context);
        assert_eq!(loc.city.as_deref(), Some("Lyon"));
        assert_eq!(loc.coordinates(), Some((45.76, 4.84)));
        assert_eq!(loc.country.map(|c| c.to_string()).as_deref(), Some("FR"));
        assert_eq!(loc.country_name.as_deref(), Some("France"));
        assert_eq!(
            loc.time_zone.as_deref(),
            Some("Europe/Paris"),
            "from the country"
        );
        // Even for a proxy: the context is the subscriber's own data.
        let gmail = client(ClientKind::GmailProxy);
        let loc = resolve(Some(&ctx), &gmail, None, Locators::default());
        assert_eq!(loc.source, LocationSource::Context);
    }

    #[test]
    fn context_countries_become_codes_and_zones_are_checked() {
        let loc = Location::from_context(&json!({"country": "United Kingdom"})).unwrap();
        assert_eq!(loc.country.map(|c| c.to_string()).as_deref(), Some("GB"));
        assert_eq!(loc.country_name.as_deref(), Some("United Kingdom"));
        assert_eq!(loc.time_zone.as_deref(), Some("Europe/London"));
        let given = json!({"country": "US", "region": "CA", "time_zone": "America/Denver"});
        let loc = Location::from_context(&given).unwrap();
        assert_eq!(
            loc.time_zone.as_deref(),
            Some("America/Denver"),
            "the context's own"
        );
        assert_eq!(loc.region_code.as_deref(), Some("US-CA"));
        let derived = Location::from_context(&json!({"country": "us", "region": "CA"})).unwrap();
        assert_eq!(derived.time_zone.as_deref(), Some("America/Los_Angeles"));
        let bad_zone =
            Location::from_context(&json!({"country": "US", "time_zone": "Mars/Olympus"}));
        assert_eq!(
            bad_zone.unwrap().time_zone,
            None,
            "several zones, none given"
        );
        let named = Location::from_context(&json!({"region": "Île-de-France"})).unwrap();
        assert_eq!((named.region_code, named.country), (None, None));
        let zone_only = Location::from_context(&json!({"time_zone": "Asia/Tokyo"})).unwrap();
        assert_eq!(zone_only.zone(), Some(chrono_tz::Tz::Asia__Tokyo));
    }

    #[test]
    fn unusable_context_location_is_ignored() {
        for bad in [
            json!("Lyon"),
            json!({}),
            json!({"city": "  "}),
            json!({"lat": 999.0, "lon": 4.0}),
            json!({"lat": "45", "lon": "4"}),
            json!({"country": "Atlantis", "time_zone": "Nowhere/Else"}),
            json!(null),
        ] {
            assert_eq!(Location::from_context(&bad), None, "{bad}");
        }
        // Coordinates out of range are dropped, the city is kept.
        let loc =
            Location::from_context(&json!({"city": "Lyon", "lat": 91.0, "lon": 4.0})).unwrap();
        assert_eq!(loc.coordinates(), None);
        assert_eq!(loc.city.as_deref(), Some("Lyon"));
    }

    #[test]
    fn proxies_machines_and_missing_databases_give_unknown() {
        for kind in [
            ClientKind::GmailProxy,
            ClientKind::AppleMpp,
            ClientKind::YahooProxy,
            ClientKind::Machine,
        ] {
            let loc = resolve(
                None,
                &client(kind),
                Some(ip("81.2.69.142")),
                Locators::default(),
            );
            assert_eq!(loc, Location::unknown());
        }
        let browser = client(ClientKind::Browser);
        let loc = resolve(None, &browser, Some(ip("81.2.69.142")), Locators::default());
        assert_eq!(loc.source, LocationSource::Unknown);
    }

    #[test]
    fn apple_relays_are_placed_by_the_egress_list() {
        let egress = egress();
        let locators = Locators {
            geo: None,
            egress: Some(&egress),
        };
        let apple = client(ClientKind::AppleMpp);
        let loc = resolve(None, &apple, Some(ip("172.224.224.3")), locators);
        assert_eq!(loc.source, LocationSource::AppleRelay);
        assert_eq!(loc.city.as_deref(), Some("Los Angeles"));
        assert_eq!(loc.region.as_deref(), Some("US-CA"));
        assert_eq!(loc.country_name.as_deref(), Some("United States"));
        assert_eq!(loc.time_zone.as_deref(), Some("America/Los_Angeles"));
        assert!(locators.can_locate(apple.kind, apple.machine));
        // A scanner's address is never used, even when it is a relay's.
        let scanner = client(ClientKind::Machine);
        let loc = resolve(None, &scanner, Some(ip("172.224.224.3")), locators);
        assert_eq!(loc, Location::unknown());
        assert!(!locators.can_locate(scanner.kind, scanner.machine));
        // Outside the list: unknown.
        let loc = resolve(None, &apple, Some(ip("17.58.0.1")), locators);
        assert_eq!(loc, Location::unknown());
    }

    #[test]
    fn sources_serialize_as_named_and_old_locations_read() {
        let v = serde_json::to_value(Location::unknown()).unwrap();
        assert_eq!(v["source"], "unknown");
        assert_eq!(LocationSource::Ip.as_str(), "ip");
        assert_eq!(
            serde_json::to_value(LocationSource::AppleRelay).unwrap(),
            "apple-relay"
        );
        // A location stored by a lock before countries were codes.
        let old = json!({"city": "Berlin", "region": "Land Berlin", "country": "Germany",
                         "lat": 52.52, "lon": 13.405, "source": "ip"});
        let read: Location = serde_json::from_value(old).unwrap();
        assert_eq!(read.country.map(|c| c.to_string()).as_deref(), Some("DE"));
        let odd: Location =
            serde_json::from_value(json!({"country": "Atlantis", "city": null, "region": null,
                "lat": null, "lon": null, "source": "context"}))
            .unwrap();
        assert_eq!(odd.country, None);
    }

    #[test]
    fn zero_hops_ignores_the_header() {
        let peer = ip("203.0.113.5");
        assert_eq!(client_ip(peer, ["198.51.100.1"], 0), Some(peer));
    }

    #[test]
    fn nth_address_from_the_right() {
        let peer = ip("10.0.0.2");
        let header = ["spoofed, 198.51.100.1, 192.0.2.10"];
        assert_eq!(client_ip(peer, header, 1), Some(ip("192.0.2.10")));
        assert_eq!(client_ip(peer, header, 2), Some(ip("198.51.100.1")));
        // Several header lines are one list.
        let split = ["198.51.100.1", "192.0.2.10"];
        assert_eq!(client_ip(peer, split, 2), Some(ip("198.51.100.1")));
    }

    #[test]
    fn short_missing_or_odd_headers() {
        let peer = ip("10.0.0.2");
        // Fewer entries than trusted hops: the entry may be the client's own; unknown.
        assert_eq!(client_ip(peer, ["192.0.2.10"], 3), None);
        assert_eq!(client_ip(peer, ["6.6.6.6, 192.0.2.10"], 3), None);
        assert_eq!(client_ip(peer, std::iter::empty(), 1), Some(peer));
        assert_eq!(client_ip(peer, [" , "], 1), Some(peer));
        assert_eq!(client_ip(peer, ["unknown"], 1), None);
        assert_eq!(
            client_ip(peer, ["192.0.2.10:4711"], 1),
            Some(ip("192.0.2.10"))
        );
        assert_eq!(
            client_ip(peer, ["[2001:db8::7]:443"], 1),
            Some(ip("2001:db8::7"))
        );
        assert_eq!(
            client_ip(peer, ["[2001:db8::7]"], 1),
            Some(ip("2001:db8::7"))
        );
        assert_eq!(
            client_ip(peer, ["::ffff:192.0.2.10"], 1),
            Some(ip("192.0.2.10"))
        );
    }

    #[test]
    fn garbage_database_is_an_error_not_a_panic() {
        assert!(matches!(
            GeoDb::from_bytes(b"not an mmdb".to_vec()),
            Err(GeoError::Invalid(_))
        ));
        assert!(matches!(
            GeoDb::open(Path::new("/nonexistent/city.mmdb")),
            Err(GeoError::Open { .. })
        ));
    }

    proptest::proptest! {
        /// Whatever a client writes into `X-Forwarded-For`, the address is the peer's, an
        /// entry a trusted proxy appended (counted from the right), or unknown.
        #[test]
        fn forwarded_for_never_trusts_more_than_the_trusted_hops(
            client_entries in proptest::collection::vec("\\PC{0,20}|[0-9.]{7,15}", 0..4),
            proxy_entries in proptest::collection::vec((1u8..=254, 0u8..=255), 0..4),
            hops in 0usize..4,
        ) {
            let peer = ip("10.9.8.7");
            let appended: Vec<String> =
                proxy_entries.iter().map(|(a, b)| format!("198.51.{a}.{b}")).collect();
            let header = client_entries.iter().chain(&appended).cloned().collect::<Vec<_>>().join(",");
            let chosen = client_ip(peer, [header.as_str()], hops);
            if hops == 0 {
                proptest::prop_assert_eq!(chosen, Some(peer));
            } else if hops <= appended.len() {
                let expected: IpAddr = appended[appended.len() - hops].parse().unwrap();
                proptest::prop_assert_eq!(chosen, Some(expected));
            }
        }
    }
}
