//! Which URLs opentime may fetch images from, and which addresses it may connect to.
//!
//! Template image URLs come from subscriber context that other channels write, so they
//! are untrusted: without these rules a context field could make opentime fetch from
//! the internal network (SSRF). A URL must be http(s), its host must be on the
//! allow-list (exact names, or `*.suffix` wildcards), and every address the host
//! resolves to must be public — unless the host is named in `private_hosts`. The address
//! check runs inside the HTTP client's resolver, so the addresses checked are the ones
//! connected to, and it runs again for every redirect.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use super::FetchError;

/// Why an allow-list entry is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    #[error("product photo host {0:?} is not a host name, `*.suffix` wildcard or IP address")]
    BadPattern(String),
    #[error("product photo private host {0:?} must be an exact host name or IP address")]
    BadPrivateHost(String),
}

/// A host as it appears in a URL, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostKey {
    Name(String),
    Ip(IpAddr),
}

impl HostKey {
    /// Lower-cases names, drops a trailing dot and IPv6 brackets.
    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let unbracketed = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(raw);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(HostKey::Ip(ip.to_canonical()));
        }
        let name = raw.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        valid.then_some(HostKey::Name(name))
    }

    fn from_url(url: &Url) -> Option<Self> {
        // `host_str` is already IDNA-normalised, and IPv4 in canonical dotted form.
        HostKey::parse(url.host_str()?)
    }
}

/// The allow-list: which hosts may be fetched, which may be on private addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList {
    exact: Vec<HostKey>,
    /// Suffixes with their leading dot, e.g. `.example.com` for `*.example.com`.
    wildcard_suffixes: Vec<String>,
    /// Exact hosts that may resolve to (or be) non-public addresses.
    private: Vec<HostKey>,
    /// Static DNS answers (like curl's `--resolve`), still subject to the address check.
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl AllowList {
    pub(crate) fn new(
        hosts: &[String],
        private_hosts: &[String],
        overrides: &HashMap<String, Vec<IpAddr>>,
    ) -> Result<Self, AllowListError> {
        let mut list = AllowList::default();
        for pattern in hosts {
            let trimmed = pattern.trim();
            if let Some(suffix) = trimmed.strip_prefix("*.") {
                match HostKey::parse(suffix) {
                    Some(HostKey::Name(name)) => list.wildcard_suffixes.push(format!(".{name}")),
                    _ => return Err(AllowListError::BadPattern(pattern.clone())),
                }
            } else {
                let key = HostKey::parse(trimmed)
                    .ok_or_else(|| AllowListError::BadPattern(pattern.clone()))?;
                list.exact.push(key);
            }
        }
        for host in private_hosts {
            let key = HostKey::parse(host)
                .filter(|_| !host.contains('*'))
                .ok_or_else(|| AllowListError::BadPrivateHost(host.clone()))?;
            // Listing a host as private also allows it.
            if !list.exact.contains(&key) {
                list.exact.push(key.clone());
            }
            list.private.push(key);
        }
        for (name, addrs) in overrides {
            if let Some(HostKey::Name(name)) = HostKey::parse(name) {
                let addrs = addrs.iter().map(|ip| ip.to_canonical()).collect();
                list.overrides.insert(name, addrs);
            }
        }
        Ok(list)
    }

    fn host_allowed(&self, host: &HostKey) -> bool {
        if self.exact.contains(host) {
            return true;
        }
        match host {
            HostKey::Name(name) => self
                .wildcard_suffixes
                .iter()
                .any(|suffix| name.ends_with(suffix.as_str())),
            HostKey::Ip(_) => false,
        }
    }

    /// Whether the URL's host is one of the listed private hosts (an operator's internal
    /// server, which may be reached over plain HTTP).
    pub(crate) fn is_private_host(&self, url: &Url) -> bool {
        HostKey::from_url(url).is_some_and(|host| self.private.contains(&host))
    }

    fn address_allowed(&self, host: &HostKey, ip: IpAddr) -> bool {
        is_public(ip) || self.private.contains(host)
    }

    /// Checks a URL before any connection: scheme, host on the list, and for an IP
    /// literal host (never resolved) the address rule too.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::SchemeNotAllowed);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl);
        }
        let host = HostKey::from_url(url).ok_or(FetchError::InvalidUrl)?;
        if !self.host_allowed(&host) {
            return Err(FetchError::HostNotAllowed);
        }
        if let HostKey::Ip(ip) = host {
            if !self.address_allowed(&host, ip) {
                return Err(FetchError::ForbiddenAddress);
            }
        }
        Ok(())
    }

    /// Resolves a host and keeps only the addresses it may connect to.
    async fn resolve(&self, raw_host: &str) -> Result<Vec<SocketAddr>, FetchError> {
        let host = HostKey::parse(raw_host).ok_or(FetchError::InvalidUrl)?;
        if !self.host_allowed(&host) {
            return Err(FetchError::HostNotAllowed);
        }
        let addrs: Vec<IpAddr> = match &host {
            HostKey::Ip(ip) => vec![*ip],
            HostKey::Name(name) => match self.overrides.get(name) {
                Some(addrs) => addrs.clone(),
                None => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map_err(|_| FetchError::Dns)?
                    .map(|addr| addr.ip().to_canonical())
                    .collect(),
            },
        };
        if addrs.is_empty() {
            return Err(FetchError::Dns);
        }
        let permitted: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|ip| self.address_allowed(&host, *ip))
            .map(|ip| SocketAddr::new(ip, 0))
            .collect();
        if permitted.is_empty() {
            tracing::debug!(
                host = raw_host,
                "product photo host resolves only to forbidden addresses"
            );
            return Err(FetchError::ForbiddenAddress);
        }
        Ok(permitted)
    }
}

/// The HTTP client's resolver: DNS (or a static override), then the address rule.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = allow.resolve(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Address blocks that are never "the shop's CDN": private, loopback, link-local,
/// unspecified, shared (CGNAT), benchmarking, multicast, reserved, and their IPv6 kin.
const NON_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// True for an address on the public internet.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
    if let IpAddr::V6(v6) = ip {
        let s = v6.segments();
        if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
            let o = v6.octets();
            return is_public(IpAddr::from([o[12], o[13], o[14], o[15]]));
        }
    }
    !NON_PUBLIC.iter().any(|net| {
        net.parse::<IpNet>()
            .map(|net| net.contains(&ip))
            // The table is constant; an unparsable entry would be a bug, so fail closed.
            .unwrap_or(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(hosts: &[&str], private: &[&str]) -> AllowList {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        let private: Vec<String> = private.iter().map(|s| s.to_string()).collect();
        AllowList::new(&hosts, &private, &HashMap::new()).unwrap()
    }

    fn check(list: &AllowList, url: &str) -> Result<(), FetchError> {
        list.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn exact_and_wildcard_hosts() {
        let l = list(&["cdn.shop.test", "*.img.test"], &[]);
        assert_eq!(check(&l, "https://cdn.shop.test/a.jpg"), Ok(()));
        assert_eq!(check(&l, "https://CDN.Shop.Test./a.jpg"), Ok(()));
        assert_eq!(check(&l, "http://a.img.test/a.jpg"), Ok(()));
        assert_eq!(check(&l, "http://a.b.img.test/a.jpg"), Ok(()));
        assert_eq!(
            check(&l, "http://img.test/a.jpg"),
            Err(FetchError::HostNotAllowed)
        );
        assert_eq!(
            check(&l, "http://evilimg.test/a.jpg"),
            Err(FetchError::HostNotAllowed)
        );
        assert_eq!(
            check(&l, "http://shop.test/a.jpg"),
            Err(FetchError::HostNotAllowed)
        );
        assert_eq!(
            check(&l, "http://cdn.shop.test.evil.test/a.jpg"),
            Err(FetchError::HostNotAllowed)
        );
    }

    #[test]
    fn only_http_and_https() {
        let l = list(&["cdn.shop.test"], &[]);
        assert_eq!(
            check(&l, "ftp://cdn.shop.test/a.jpg"),
            Err(FetchError::SchemeNotAllowed)
        );
        assert_eq!(
            check(&l, "file:///etc/passwd"),
            Err(FetchError::SchemeNotAllowed)
        );
        assert_eq!(
            check(&l, "https://user:pw@cdn.shop.test/a.jpg"),
            Err(FetchError::InvalidUrl)
        );
    }

    #[test]
    fn ip_literals_need_listing_and_private_permission() {
        let l = list(&["127.0.0.1", "203.0.113.7"], &[]);
        assert_eq!(check(&l, "http://203.0.113.7/a.png"), Ok(()));
        assert_eq!(
            check(&l, "http://127.0.0.1/a.png"),
            Err(FetchError::ForbiddenAddress)
        );
        assert_eq!(
            check(&l, "http://10.0.0.1/a.png"),
            Err(FetchError::HostNotAllowed)
        );
        let l = list(&[], &["127.0.0.1", "[::1]"]);
        assert_eq!(check(&l, "http://127.0.0.1:8080/a.png"), Ok(()));
        assert_eq!(check(&l, "http://[::1]:8080/a.png"), Ok(()));
    }

    #[test]
    fn bad_patterns_are_errors() {
        let bad = |hosts: &[&str], private: &[&str]| {
            let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
            let private: Vec<String> = private.iter().map(|s| s.to_string()).collect();
            AllowList::new(&hosts, &private, &HashMap::new()).is_err()
        };
        assert!(bad(&["*"], &[]));
        assert!(bad(&["*.1.2.3.4"], &[]));
        assert!(bad(&["https://cdn.shop.test"], &[]));
        assert!(bad(&["cdn shop"], &[]));
        assert!(bad(&[], &["*.internal.test"]));
    }

    #[test]
    fn public_and_non_public_addresses() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn resolver_drops_forbidden_addresses() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "evil.img.test".to_string(),
            vec!["127.0.0.1".parse().unwrap()],
        );
        overrides.insert(
            "mixed.img.test".to_string(),
            vec![
                "10.0.0.1".parse().unwrap(),
                "93.184.216.34".parse().unwrap(),
            ],
        );
        overrides.insert("inside.test".to_string(), vec!["10.0.0.1".parse().unwrap()]);
        let l = AllowList::new(
            &["*.img.test".to_string()],
            &["inside.test".to_string()],
            &overrides,
        )
        .unwrap();
        assert_eq!(
            l.resolve("evil.img.test").await,
            Err(FetchError::ForbiddenAddress)
        );
        assert_eq!(
            l.resolve("mixed.img.test").await,
            Ok(vec!["93.184.216.34:0".parse().unwrap()])
        );
        assert_eq!(
            l.resolve("inside.test").await,
            Ok(vec!["10.0.0.1:0".parse().unwrap()])
        );
        assert_eq!(
            l.resolve("other.test").await,
            Err(FetchError::HostNotAllowed)
        );
    }
}
