//! Who fetched the image: the opener's address (through trusted proxies), the mail client kind
//! (or the provider's image proxy) from the rules in [`crate::sources::mail_clients`], and
//! whether the fetch was a machine prefetch rather than a person opening the email — decided
//! once per request and used by the open events, the locks, and blocks that declare
//! `request = ["client", "location"]` (only declared facts reach a template and its cache key,
//! which is what lets the answer say `Vary: User-Agent` precisely).

use crate::sources::geo_ip;
use crate::sources::mail_clients::{ClientKind, ClientRules};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    /// From the User-Agent and the client address (Apple's relays are known by address).
    pub client: ClientKind,
    /// From the User-Agent alone: what a CDN keyed on `Vary: User-Agent` can tell apart.
    pub client_by_user_agent: ClientKind,
    /// The opener's address, after the trusted proxy hops; `None` when unknown.
    pub ip: Option<IpAddr>,
    /// A machine fetching ahead of (or instead of) a person: never locks, never an open.
    pub prefetch: bool,
}

impl Opener {
    /// Classifies a fetch from its User-Agent, its `X-Forwarded-For` values and the
    /// connection's peer address. With `trusted_proxy_hops` > 0 the address is the
    /// `X-Forwarded-For` entry the outermost trusted proxy saw; entries further left are
    /// written by the client and never used.
    pub fn of<'a>(
        user_agent: Option<&str>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
        peer: Option<IpAddr>,
        trusted_proxy_hops: usize,
        rules: &ClientRules,
    ) -> Self {
        let ip = peer.and_then(|peer| geo_ip::client_ip(peer, forwarded_for, trusted_proxy_hops));
        let (client, client_by_user_agent) = rules.classify_with_and_without_ip(user_agent, ip);
        Self {
            client,
            client_by_user_agent,
            ip,
            prefetch: client.is_machine_prefetch(),
        }
    }

    /// An open with no request (the offline render and `check`).
    pub fn offline(client: ClientKind) -> Self {
        Self {
            client,
            client_by_user_agent: client,
            ip: None,
            prefetch: client.is_machine_prefetch(),
        }
    }

    /// Countdown hook: whether to answer with a countdown's first frame as a static image
    /// instead of the animation. Outlook desktop shows only the first frame of a GIF anyway,
    /// and one frame is smaller and faster.
    ///
    /// `open::input` puts the answer into a countdown's canonical query (`first_frame`),
    /// so it is part of the render key; the answer says `Vary: User-Agent` for countdown
    /// blocks. It decides by User-Agent only, so a CDN that varies on the User-Agent stays
    /// correct.
    pub fn first_frame_only(&self) -> bool {
        !self.client_by_user_agent.animates_gifs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLOOK: &str =
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";

    fn peer(ip: [u8; 4]) -> Option<IpAddr> {
        Some(IpAddr::from(ip))
    }

    #[test]
    fn outlook_gets_the_first_frame_only() {
        let rules = ClientRules::builtin();
        let opener = Opener::of(Some(OUTLOOK), [], peer([192, 0, 2, 1]), 0, &rules);
        assert_eq!(opener.client, ClientKind::Outlook);
        assert!(opener.first_frame_only());
        let chrome = Some("Mozilla/5.0 Chrome/120.0");
        let opener = Opener::of(chrome, [], peer([192, 0, 2, 1]), 0, &rules);
        assert!(!opener.first_frame_only());
    }

    #[test]
    fn forwarded_for_counts_only_with_trusted_hops() {
        let rules = ClientRules::builtin();
        let forwarded = ["6.6.6.6, 17.58.0.1"];
        let direct = Opener::of(None, forwarded, peer([10, 0, 0, 1]), 0, &rules);
        assert_eq!(direct.ip, Some([10, 0, 0, 1].into()));
        assert!(!direct.prefetch);
        let behind_one = Opener::of(None, forwarded, peer([10, 0, 0, 1]), 1, &rules);
        assert_eq!(behind_one.ip, Some([17, 58, 0, 1].into()));
        assert_eq!(behind_one.client, ClientKind::AppleMpp);
        assert!(behind_one.prefetch, "Apple's relays prefetch");
        let behind_two = Opener::of(None, forwarded, peer([10, 0, 0, 1]), 2, &rules);
        assert_eq!(behind_two.ip, Some([6, 6, 6, 6].into()));
    }
}
