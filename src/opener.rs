//! Who fetched an image: the opener's address (through trusted proxies), a coarse client kind,
//! and whether the fetch was a machine prefetch rather than a person opening the email.
//!
//! STAND-IN: the full client classification (`ClientKind` in `src/client.rs`) lands on another
//! branch. When it is merged, replace [`classify`] with `ClientKind::classify` and
//! [`Opener::prefetch`] with `ClientKind::is_machine_prefetch()`; the rest of this file
//! (finding the opener's address) stays.

use hyper::header::{HeaderMap, USER_AGENT};
use std::net::{IpAddr, SocketAddr};

/// The TCP peer of a connection, put into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What the events and locks need to know about who fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    /// `gmail-proxy`, `apple-mpp`, `yahoo-proxy`, `outlook`, `browser` or `unknown`.
    pub client: &'static str,
    /// A machine fetching ahead of (or instead of) a person: never locks, never an open.
    pub prefetch: bool,
}

impl Opener {
    /// Classifies a request from its headers and the connection's peer address.
    pub fn of(headers: &HeaderMap, peer: Option<SocketAddr>, trusted_proxy_hops: usize) -> Self {
        let ip = client_ip(headers, peer.map(|p| p.ip()), trusted_proxy_hops);
        let user_agent = headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let client = classify(user_agent, ip);
        Self {
            client,
            prefetch: is_machine_prefetch(user_agent, ip),
        }
    }
}

/// The opener's address: the TCP peer, or — behind `hops` trusted proxies — the entry of
/// `X-Forwarded-For` that the outermost trusted proxy saw. Entries further left are written
/// by the client and could be anything, so they are never used.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // The last proxy appended the address it saw; with N trusted proxies, the N-th entry from
    // the right is the first address no trusted proxy made up.
    let index = forwarded.len().saturating_sub(hops);
    forwarded
        .get(index)
        .and_then(|entry| parse_forwarded(entry))
        .or(peer)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// STAND-IN for `ClientKind::is_machine_prefetch()`: Apple Mail Privacy Protection fetches
/// every image from Apple's network, 17.0.0.0/8, whether or not the person ever opens.
pub fn is_machine_prefetch(_user_agent: &str, ip: Option<IpAddr>) -> bool {
    matches!(ip, Some(IpAddr::V4(v4)) if v4.octets()[0] == 17)
}

/// STAND-IN for `ClientKind::classify`: a coarse guess from the User-Agent and address.
pub fn classify(user_agent: &str, ip: Option<IpAddr>) -> &'static str {
    if is_machine_prefetch(user_agent, ip) {
        "apple-mpp"
    } else if user_agent.contains("GoogleImageProxy") {
        "gmail-proxy"
    } else if user_agent.contains("YahooMailProxy") {
        "yahoo-proxy"
    } else if user_agent.contains("Outlook") || user_agent.contains("ms-office") {
        "outlook"
    } else if user_agent.starts_with("Mozilla/") {
        "browser"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn forwarded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn forwarded_for_counts_only_with_trusted_hops() {
        let peer = Some("127.0.0.1".parse().unwrap());
        let headers = forwarded("6.6.6.6, 17.58.0.1");
        assert_eq!(client_ip(&headers, peer, 0), peer);
        assert_eq!(
            client_ip(&headers, peer, 1),
            Some("17.58.0.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&headers, peer, 2),
            Some("6.6.6.6".parse().unwrap())
        );
        assert_eq!(client_ip(&forwarded("junk"), peer, 1), peer);
        assert_eq!(
            client_ip(&forwarded("17.58.0.1:4431"), peer, 1),
            Some("17.58.0.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&forwarded("17.58.0.1"), peer, 3),
            Some("17.58.0.1".parse().unwrap()),
            "fewer entries than hops: the leftmost, written by a trusted proxy"
        );
        assert_eq!(client_ip(&HeaderMap::new(), peer, 1), peer);
    }

    #[test]
    fn apple_network_is_a_prefetch() {
        let apple = Some("17.58.0.1".parse().unwrap());
        let other = Some("18.0.0.1".parse().unwrap());
        assert!(is_machine_prefetch("Mozilla/5.0", apple));
        assert!(!is_machine_prefetch("Mozilla/5.0", other));
        assert!(!is_machine_prefetch("Mozilla/5.0", None));
        assert_eq!(classify("Mozilla/5.0", apple), "apple-mpp");
        assert_eq!(
            classify("Mozilla/5.0 (via ggpht.com GoogleImageProxy)", other),
            "gmail-proxy"
        );
        assert_eq!(classify("curl/8", other), "unknown");
    }
}
