//! Who fetched the image: the opener's address (through trusted proxies), the [`Client`]
//! (kind, machine flag, evidence) from the rules in [`crate::sources::mail_clients`], and
//! whether the fetch is a person's open at all — decided once per request and used by the open
//! events, the locks, countdowns (first frame, Apple's still) and blocks that declare
//! `request = ["client", "location"]` (only declared facts reach a template and its cache key,
//! which is what lets the answer say `Vary: User-Agent` precisely).

use crate::sources::geo_ip;
use crate::sources::mail_clients::{Client, ClientKind, ClientRules, Reachable};
use std::net::IpAddr;
use std::sync::Arc;

/// The evidence recorded for a HEAD request (checking a link or an image is not looking at it).
pub(crate) const HEAD_REQUEST: &str = "head-request";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    /// From the User-Agent and the client address (Apple's relays and scanners are known by
    /// address).
    pub client: Client,
    /// From the User-Agent alone: what a CDN keyed on `Vary: User-Agent` can tell apart.
    pub client_by_user_agent: Client,
    /// What this User-Agent is classified as from any address (see [`Opener::address_decides`]).
    pub reachable: Reachable,
    /// The opener's address, after the trusted proxy hops; `None` when unknown.
    pub ip: Option<IpAddr>,
    /// A HEAD request: served like a GET, never a person's open.
    pub head: bool,
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
        let classified = rules.classify_fully(user_agent, ip);
        Self {
            client: classified.client,
            client_by_user_agent: classified.by_user_agent,
            reachable: classified.reachable,
            ip,
            head: false,
        }
    }

    /// The same fetch made with HEAD (`head = true`) or GET.
    pub fn with_head(mut self, head: bool) -> Self {
        self.head = head;
        self
    }

    /// An open with no request (the offline render and `check`), as a client of `kind`.
    pub fn offline(kind: ClientKind) -> Self {
        let client = Client::of_kind(kind, "offline");
        Self {
            reachable: Reachable::only(&client),
            client_by_user_agent: client.clone(),
            client,
            ip: None,
            head: false,
        }
    }

    /// Whether a person caused this fetch: only then does it claim a lock and count as an
    /// open or a click in `ctx.email`.
    pub fn is_person(&self) -> bool {
        !self.client.machine && !self.head
    }

    /// The client as the event stream records it: a HEAD request is a machine's.
    pub fn recorded_client(&self) -> Client {
        if self.head && !self.client.machine {
            return Client {
                kind: self.client.kind,
                machine: true,
                evidence: Arc::from(HEAD_REQUEST),
            };
        }
        self.client.clone()
    }

    /// Countdown hook: whether to answer with a countdown's first frame as a still instead
    /// of the animation. The Outlook that renders with Word shows only the first frame of a
    /// GIF anyway, and one frame is smaller and faster.
    ///
    /// `open::input` puts the answer into a countdown's canonical query (`first_frame`), so it
    /// is part of the render key; the answer says `Vary: User-Agent` for countdown blocks. It
    /// decides by User-Agent only, so a CDN that varies on the User-Agent stays correct.
    pub fn first_frame_only(&self) -> bool {
        !self.client_by_user_agent.kind.animates_gifs()
    }

    /// Whether `decide` (a choice made from the kind and the machine flag) can come out
    /// differently for this User-Agent from another address: then no `Vary` keys the answer.
    pub fn address_decides(&self, decide: impl Fn(ClientKind, bool) -> bool) -> bool {
        self.reachable.varies(decide)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLOOK: &str =
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    fn peer(ip: [u8; 4]) -> Option<IpAddr> {
        Some(IpAddr::from(ip))
    }

    #[test]
    fn the_word_outlook_gets_the_first_frame_only() {
        let rules = ClientRules::builtin();
        let opener = Opener::of(Some(OUTLOOK), [], peer([192, 0, 2, 1]), 0, &rules);
        assert_eq!(opener.client.kind, ClientKind::OutlookWord);
        assert!(opener.first_frame_only());
        let mac = Opener::of(
            Some("MacOutlook/16.61.22050700"),
            [],
            peer([192, 0, 2, 1]),
            0,
            &rules,
        );
        assert_eq!(mac.client.kind, ClientKind::Outlook);
        assert!(!mac.first_frame_only());
        let opener = Opener::of(Some(CHROME), [], peer([192, 0, 2, 1]), 0, &rules);
        assert!(!opener.first_frame_only());
    }

    #[test]
    fn forwarded_for_counts_only_with_trusted_hops() {
        let rules = ClientRules::builtin();
        // 40.92.0.0/15: Exchange Online Protection, a scanner network.
        let forwarded = ["6.6.6.6, 40.92.0.1"];
        let direct = Opener::of(Some(CHROME), forwarded, peer([10, 0, 0, 1]), 0, &rules);
        assert_eq!(direct.ip, Some([10, 0, 0, 1].into()));
        assert!(direct.is_person());
        let behind_one = Opener::of(Some(CHROME), forwarded, peer([10, 0, 0, 1]), 1, &rules);
        assert_eq!(behind_one.ip, Some([40, 92, 0, 1].into()));
        assert_eq!(behind_one.client.kind, ClientKind::Machine);
        assert!(!behind_one.is_person(), "a scanner network");
        assert_eq!(behind_one.client_by_user_agent.kind, ClientKind::Browser);
        let behind_two = Opener::of(Some(CHROME), forwarded, peer([10, 0, 0, 1]), 2, &rules);
        assert_eq!(behind_two.ip, Some([6, 6, 6, 6].into()));
    }

    #[test]
    fn head_requests_are_never_a_persons_open() {
        let rules = ClientRules::builtin();
        let opener = Opener::of(Some(CHROME), [], peer([192, 0, 2, 1]), 0, &rules).with_head(true);
        assert!(!opener.is_person());
        let recorded = opener.recorded_client();
        assert!(recorded.machine);
        assert_eq!(recorded.kind, ClientKind::Browser);
        assert_eq!(&*recorded.evidence, HEAD_REQUEST);
        // The answer is decided as for a GET: HEAD must describe the same picture.
        assert!(!opener.client.machine);
    }
}
