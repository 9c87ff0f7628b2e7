//! Who fetched the image: the mail client kind (or the provider's image proxy) and the
//! client address, decided once per request from the TCP peer, `X-Forwarded-For` (only as
//! many hops as configured) and the User-Agent — and what a block that declared
//! `request = ["client", "location"]` sees of it.
//!
//! Only declared facts reach a template and its cache key, which is what lets the HTTP
//! layer add `Vary: User-Agent` precisely (see `http::cdn`).

use crate::blocks::Block;
use crate::client::ClientKind;
use crate::geo;
use crate::live_sources::LiveSources;
use crate::render::TemplateInput;
use hyper::header::{HeaderMap, USER_AGENT};
use std::net::IpAddr;

/// How many stores `nearest_stores` lists.
pub const NEAREST_STORES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    /// From the User-Agent and the client address (Apple's relays are known by address).
    pub client: ClientKind,
    /// From the User-Agent alone: what a CDN keyed on `Vary: User-Agent` can tell apart.
    pub client_by_user_agent: ClientKind,
    /// The client's address, after the trusted proxy hops; `None` when unknown.
    pub ip: Option<IpAddr>,
}

impl Opener {
    pub fn from_request(peer: Option<IpAddr>, headers: &HeaderMap, sources: &LiveSources) -> Self {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        let ip = peer.and_then(|peer| geo::client_ip(peer, forwarded, sources.trusted_proxy_hops));
        let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        Self {
            client: sources.clients.classify(user_agent, ip),
            client_by_user_agent: sources.clients.classify(user_agent, None),
            ip,
        }
    }

    /// An open with no request (the offline render and `check`).
    pub fn offline(client: ClientKind) -> Self {
        Self {
            client,
            client_by_user_agent: client,
            ip: None,
        }
    }

    /// Countdown hook: whether to answer with a countdown's first frame as a static image
    /// instead of the animation. Outlook desktop shows only the first frame of a GIF anyway,
    /// and one frame is smaller and faster.
    ///
    /// NOTE for the countdown block (not built yet): call this where the frames are made and
    /// render one frame when it says so; include the answer in the render key (e.g. as the
    /// frame count); the HTTP layer already sends `Vary: User-Agent` for countdown blocks.
    /// It decides by User-Agent only, so a CDN that varies on the User-Agent stays correct.
    pub fn first_frame_only(&self) -> bool {
        !self.client_by_user_agent.animates_gifs()
    }
}

/// Adds to `input` what `block` declared it reads about the open: `client`; `location`
/// (the context's `location` field when the block reads it, else the IP through the
/// MaxMind database unless an image proxy fetched, else unknown) and the stores nearest to it.
pub fn extend_input(
    input: &mut TemplateInput,
    block: &Block,
    opener: &Opener,
    sources: &LiveSources,
) {
    if block.reads_client {
        input.client = Some(opener.client);
    }
    if block.reads_location {
        let location = geo::resolve(
            input.ctx.get("location"),
            opener.client,
            opener.ip,
            sources.geo.as_ref(),
        );
        input.nearest_stores = location
            .coordinates()
            .map(|(lat, lon)| sources.stores.nearest(lat, lon, NEAREST_STORES))
            .unwrap_or_default();
        input.location = Some(location);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const OUTLOOK: &str =
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";

    #[test]
    fn outlook_gets_the_first_frame_only() {
        let sources = LiveSources::defaults().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(OUTLOOK));
        let opener = Opener::from_request(Some([192, 0, 2, 1].into()), &headers, &sources);
        assert_eq!(opener.client, ClientKind::Outlook);
        assert!(opener.first_frame_only());
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 Chrome/120.0"),
        );
        let opener = Opener::from_request(Some([192, 0, 2, 1].into()), &headers, &sources);
        assert!(!opener.first_frame_only());
    }

    #[test]
    fn forwarded_for_counts_only_with_trusted_hops() {
        let mut sources = LiveSources::defaults().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("17.1.2.3"));
        let peer = Some([10, 0, 0, 1].into());
        assert_eq!(Opener::from_request(peer, &headers, &sources).ip, peer);
        sources.trusted_proxy_hops = 1;
        let opener = Opener::from_request(peer, &headers, &sources);
        assert_eq!(opener.ip, Some([17, 1, 2, 3].into()));
        assert_eq!(opener.client, ClientKind::AppleMpp);
    }
}
