//! Where the reader is, for location-aware blocks.
//!
//! Order of trust: the subscriber's own `location` field in the context (written by a
//! channel that knows), then the request's IP through a MaxMind City database, then
//! unknown. The IP is never used when an image proxy fetched the image (Gmail, Apple
//! MPP, Yahoo): it locates the proxy, not the reader. This module also decides which
//! address is the client's when opentime sits behind a CDN (`X-Forwarded-For`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::mail_clients::ClientKind;

/// Where a [`Location`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationSource {
    /// The subscriber context's `location` field.
    Context,
    /// The client IP, looked up in the MaxMind database.
    Ip,
    /// Nothing known.
    Unknown,
}

impl LocationSource {
    /// `context`, `ip` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationSource::Context => "context",
            LocationSource::Ip => "ip",
            LocationSource::Unknown => "unknown",
        }
    }
}

/// The reader's location as templates see it (`location.city`, `location.lat`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub city: Option<String>,
    /// The first-level subdivision (state, region, province), in English.
    pub region: Option<String>,
    /// The country's English name from the database; from the context, as written there.
    pub country: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub source: LocationSource,
}

impl Location {
    /// Nothing known.
    pub fn unknown() -> Self {
        Self {
            city: None,
            region: None,
            country: None,
            lat: None,
            lon: None,
            source: LocationSource::Unknown,
        }
    }

    /// Both coordinates, when known.
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }

    fn is_empty(&self) -> bool {
        self.city.is_none()
            && self.region.is_none()
            && self.country.is_none()
            && self.coordinates().is_none()
    }

    /// Reads the context's `location` field: an object with any of `city`, `region`,
    /// `country` (strings) and `lat`, `lon` (numbers in range; both or neither).
    /// Returns `None` when the value holds nothing usable.
    pub fn from_context(value: &serde_json::Value) -> Option<Self> {
        let object = value.as_object()?;
        let text = |key: &str| {
            object
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let number = |key: &str| object.get(key).and_then(serde_json::Value::as_f64);
        let (lat, lon) = match (number("lat"), number("lon")) {
            (Some(lat), Some(lon)) if valid_coordinates(lat, lon) => (Some(lat), Some(lon)),
            _ => (None, None),
        };
        let location = Self {
            city: text("city"),
            region: text("region"),
            country: text("country"),
            lat,
            lon,
            source: LocationSource::Context,
        };
        (!location.is_empty()).then_some(location)
    }
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
        let location = Location {
            city: city.city.names.english.map(str::to_owned),
            region: city
                .subdivisions
                .first()
                .and_then(|s| s.names.english.or(s.iso_code))
                .map(str::to_owned),
            country: city
                .country
                .names
                .english
                .or(city.country.iso_code)
                .map(str::to_owned),
            lat,
            lon,
            source: LocationSource::Ip,
        };
        (!location.is_empty()).then_some(location)
    }
}

/// Resolves the reader's location: the context's `location` field first; else the
/// client IP through `db` unless `client` is an image proxy; else unknown.
pub fn resolve(
    context_location: Option<&serde_json::Value>,
    client: ClientKind,
    ip: Option<IpAddr>,
    db: Option<&GeoDb>,
) -> Location {
    if let Some(location) = context_location.and_then(Location::from_context) {
        return location;
    }
    if client.is_image_proxy() {
        return Location::unknown();
    }
    match (ip, db) {
        (Some(ip), Some(db)) => db.lookup(ip).unwrap_or_else(Location::unknown),
        _ => Location::unknown(),
    }
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

    #[test]
    fn context_location_is_used_first() {
        let ctx = json!({"city": "Lyon", "country": "FR", "lat": 45.76, "lon": 4.84});
        let loc = resolve(Some(&ctx), ClientKind::Browser, Some(ip("1.2.3.4")), None);
        assert_eq!(loc.source, LocationSource::Context);
        assert_eq!(loc.city.as_deref(), Some("Lyon"));
        assert_eq!(loc.coordinates(), Some((45.76, 4.84)));
        // Even for a proxy: the context is the subscriber's own data.
        let loc = resolve(Some(&ctx), ClientKind::GmailProxy, None, None);
        assert_eq!(loc.source, LocationSource::Context);
    }

    #[test]
    fn unusable_context_location_is_ignored() {
        for bad in [
            json!("Lyon"),
            json!({}),
            json!({"city": "  "}),
            json!({"lat": 999.0, "lon": 4.0}),
            json!({"lat": "45", "lon": "4"}),
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
    fn proxies_and_missing_database_give_unknown() {
        for kind in [
            ClientKind::GmailProxy,
            ClientKind::AppleMpp,
            ClientKind::YahooProxy,
        ] {
            let loc = resolve(None, kind, Some(ip("81.2.69.142")), None);
            assert_eq!(loc, Location::unknown());
        }
        let loc = resolve(None, ClientKind::Browser, Some(ip("81.2.69.142")), None);
        assert_eq!(loc.source, LocationSource::Unknown);
    }

    #[test]
    fn source_serializes_lowercase() {
        let v = serde_json::to_value(Location::unknown()).unwrap();
        assert_eq!(v["source"], "unknown");
        assert_eq!(LocationSource::Ip.as_str(), "ip");
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
