//! Apple's relay egress list: the addresses Mail Privacy Protection and iCloud Private Relay
//! fetch from, each with the approximate place of the people behind it.
//!
//! Apple publishes it as `egress-ip-ranges.csv` (`CIDR,country,region,city,` per line, IPv4 and
//! IPv6, about 300,000 lines); the operator downloads it and names it in
//! `OPENTIME_APPLE_EGRESS_FILE`. It is read once at start-up into a [`RangeTable`] (a binary
//! search per lookup) with each distinct place kept once. A fetch from one of these addresses
//! without a Safari token is Apple's proxy (see `assets/clients.toml`), and the line's place is
//! the reader's location when nothing better is known — never the relay's own address.

use super::countries::CountryCode;
use super::ip_ranges::RangeTable;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the egress file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {value:?} is not a network (want e.g. 172.224.224.0/27)")]
    BadNetwork {
        path: PathBuf,
        line: usize,
        value: String,
    },
    #[error("{path} holds no network: is it Apple's egress-ip-ranges.csv?")]
    Empty { path: PathBuf },
}

/// Where the people behind one egress range are, as Apple gives it. Fields may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EgressPlace {
    pub country: Option<CountryCode>,
    /// The ISO 3166-2 code, e.g. `US-CA`, `DE-HE`.
    pub region: Option<Arc<str>>,
    pub city: Option<Arc<str>>,
}

/// The egress list in memory.
#[derive(Debug, Clone, Default)]
pub struct AppleEgress {
    ranges: RangeTable<u32>,
    places: Vec<EgressPlace>,
    networks: usize,
}

impl AppleEgress {
    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, EgressError> {
        let text = std::fs::read_to_string(path).map_err(|source| EgressError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            ParseError::BadNetwork { line, value } => EgressError::BadNetwork {
                path: path.to_path_buf(),
                line,
                value,
            },
            ParseError::Empty => EgressError::Empty {
                path: path.to_path_buf(),
            },
        })
    }

    /// Parses the CSV text. Blank lines and `#` comments are skipped; a line whose first
    /// column is not a network is an error naming the line (a truncated download, an HTML
    /// error page), so a broken file stops start-up instead of silently matching nothing.
    fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut places: Vec<EgressPlace> = Vec::new();
        let mut known: HashMap<EgressPlace, u32> = HashMap::new();
        let mut networks = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut columns = line.split(',').map(str::trim);
            let first = columns.next().unwrap_or_default();
            let network = parse_network(first).ok_or_else(|| ParseError::BadNetwork {
                line: index + 1,
                value: first.chars().take(60).collect(),
            })?;
            let mut text_column = || {
                columns
                    .next()
                    .filter(|value| !value.is_empty())
                    .map(Arc::<str>::from)
            };
            let country = text_column().and_then(|code| CountryCode::parse(&code));
            let region = text_column();
            let city = text_column();
            let place = EgressPlace {
                country,
                region,
                city,
            };
            let id = match known.get(&place) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(places.len()).unwrap_or(u32::MAX);
                    known.insert(place.clone(), id);
                    places.push(place);
                    id
                }
            };
            networks.push((network, id));
        }
        if networks.is_empty() {
            return Err(ParseError::Empty);
        }
        let count = networks.len();
        Ok(Self {
            ranges: RangeTable::build(networks),
            places,
            networks: count,
        })
    }

    /// Whether `ip` is one of Apple's relay egress addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.contains(ip)
    }

    /// The place behind the egress range holding `ip`.
    pub fn place(&self, ip: IpAddr) -> Option<&EgressPlace> {
        let id = self.ranges.get(ip)?;
        self.places.get(usize::try_from(id).ok()?)
    }

    /// Networks read from the file.
    pub fn networks(&self) -> usize {
        self.networks
    }

    /// Distinct places among them.
    pub fn places(&self) -> usize {
        self.places.len()
    }
}

#[derive(Debug)]
enum ParseError {
    BadNetwork { line: usize, value: String },
    Empty,
}

/// A CIDR network, or a bare address (a /32 or /128).
fn parse_network(value: &str) -> Option<IpNet> {
    value
        .parse::<IpNet>()
        .ok()
        .or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\u{feff}172.224.224.0/27,DE,DE-HE,Frankfurt am Main,\n\
        104.28.86.0/26,NL,NL-NH,Amsterdam,\n\
        \n\
        2a02:26f7:c8c0::/44,DE,DE-HE,Frankfurt am Main,\n\
        172.225.10.0/24,US,US-CA,,\n\
        172.226.0.0/24,,,,\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn places_are_found_and_shared() {
        let egress = AppleEgress::parse(SAMPLE).unwrap();
        assert_eq!(egress.networks(), 5);
        assert_eq!(egress.places(), 4, "Frankfurt is kept once");
        let frankfurt = egress.place(ip("172.224.224.31")).unwrap();
        assert_eq!(
            frankfurt.country.map(|c| c.as_str().to_owned()).as_deref(),
            Some("DE")
        );
        assert_eq!(frankfurt.region.as_deref(), Some("DE-HE"));
        assert_eq!(frankfurt.city.as_deref(), Some("Frankfurt am Main"));
        assert_eq!(
            egress.place(ip("2a02:26f7:c8c0:1::5")),
            Some(frankfurt),
            "IPv6"
        );
        let california = egress.place(ip("::ffff:172.225.10.9")).unwrap();
        assert_eq!(california.region.as_deref(), Some("US-CA"));
        assert_eq!(california.city, None);
        let nowhere = egress.place(ip("172.226.0.1")).unwrap();
        assert_eq!(nowhere.country, None);
        assert!(egress.contains(ip("172.226.0.1")));
        assert!(!egress.contains(ip("172.224.224.32")));
        assert!(!egress.contains(ip("17.58.0.1")));
    }

    #[test]
    fn broken_files_are_typed_errors() {
        assert!(matches!(
            AppleEgress::parse("<html>rate limited</html>\n"),
            Err(ParseError::BadNetwork { line: 1, .. })
        ));
        assert!(matches!(
            AppleEgress::parse("172.224.224.0/27,DE,,,\n172.224.224.0/99,DE,,,\n"),
            Err(ParseError::BadNetwork { line: 2, .. })
        ));
        assert!(matches!(
            AppleEgress::parse("\n# nothing\n"),
            Err(ParseError::Empty)
        ));
        let dir = tempfile::tempdir().unwrap();
        let missing = AppleEgress::load(&dir.path().join("none.csv")).unwrap_err();
        assert!(matches!(missing, EgressError::Read { .. }));
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "1.2.3.0/24,US,,,\nnot-a-net,US,,,\n").unwrap();
        let error = AppleEgress::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("not-a-net"),
            "{error}"
        );
    }

    /// The size of Apple's real file, generated: how long it takes to read and how much it
    /// keeps. Prints its figures (`cargo test --release --lib apple_egress -- --ignored
    /// --nocapture`); asserts only on what it finds.
    #[test]
    #[ignore]
    fn three_hundred_thousand_lines() {
        use std::fmt::Write as _;
        let mut text = String::new();
        let cities = ["London", "Paris", "Berlin", "New York", "Tokyo", "Sydney"];
        for n in 0u32..150_000 {
            let city = cities[(n % 6) as usize];
            let v4 = std::net::Ipv4Addr::from(0xac00_0000 | (n << 5));
            let _ = writeln!(text, "{v4}/27,GB,GB-ENG,{city},");
            let _ = writeln!(
                text,
                "2a02:26f7:{:x}:{:x}::/64,US,US-NY,{city},",
                n >> 16,
                n & 0xffff
            );
        }
        let started = std::time::Instant::now();
        let egress = AppleEgress::parse(&text).unwrap();
        let elapsed = started.elapsed();
        let lookups = std::time::Instant::now();
        let mut found = 0;
        for n in 0u32..1_000_000 {
            let probe = IpAddr::from(std::net::Ipv4Addr::from(
                0xac00_0000 | (n.wrapping_mul(2_654_435_761) >> 8),
            ));
            found += usize::from(egress.contains(probe));
        }
        let per_lookup = lookups.elapsed() / 1_000_000;
        println!(
            "{} lines, {} spans ({} KiB), {} places: read in {elapsed:?}; a lookup takes {per_lookup:?}",
            egress.networks(),
            egress.ranges.spans(),
            egress.ranges.span_bytes() / 1024,
            egress.places()
        );
        assert_eq!(egress.networks(), 300_000);
        assert!(found > 0);
    }
}
