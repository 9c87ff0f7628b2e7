//! Which mail client — or which mail provider's image proxy — is fetching an image.
//!
//! The "opener" of an email image is often not the reader: Gmail and Yahoo fetch through
//! their proxies, and Apple Mail Privacy Protection prefetches every image from Apple's
//! relays. Templates and open events get a [`ClientKind`] so they can tell these apart.
//! The rules (User-Agent substrings and address ranges) live in a data file,
//! `assets/clients.toml`, embedded by default and replaceable by a path in the
//! configuration; this module only evaluates them.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// The rules shipped with opentime.
const BUILTIN_RULES: &str = include_str!("../../assets/clients.toml");

/// What kind of client fetched the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// Gmail's image proxy (`GoogleImageProxy`); fetches when the reader opens the mail.
    GmailProxy,
    /// Apple Mail Privacy Protection: Apple's relays prefetch images, not a human open.
    AppleMpp,
    /// Yahoo Mail's image proxy.
    YahooProxy,
    /// Outlook desktop (Windows or Mac); shows only the first frame of a GIF.
    Outlook,
    /// A browser or a mail app that renders like one.
    Browser,
    /// Nothing matched.
    Unknown,
}

impl ClientKind {
    /// Every kind, in a stable order.
    pub const ALL: [ClientKind; 6] = [
        ClientKind::GmailProxy,
        ClientKind::AppleMpp,
        ClientKind::YahooProxy,
        ClientKind::Outlook,
        ClientKind::Browser,
        ClientKind::Unknown,
    ];

    /// The name used in templates, events, metrics and the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::GmailProxy => "gmail-proxy",
            ClientKind::AppleMpp => "apple-mpp",
            ClientKind::YahooProxy => "yahoo-proxy",
            ClientKind::Outlook => "outlook",
            ClientKind::Browser => "browser",
            ClientKind::Unknown => "unknown",
        }
    }

    /// Parses the name given by [`ClientKind::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// True when the fetch is a machine prefetch, not a person opening the email.
    pub fn is_machine_prefetch(self) -> bool {
        matches!(self, ClientKind::AppleMpp)
    }

    /// False for Outlook desktop, which shows only the first frame of an animated GIF:
    /// send it a static image of that frame (smaller, and faster to render).
    pub fn animates_gifs(self) -> bool {
        !matches!(self, ClientKind::Outlook)
    }

    /// True when the request comes from a provider's image proxy, so its IP address
    /// says nothing about where the reader is.
    pub fn is_image_proxy(self) -> bool {
        matches!(
            self,
            ClientKind::GmailProxy | ClientKind::AppleMpp | ClientKind::YahooProxy
        )
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ClientKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// From the name given by [`ClientKind::as_str`] (a lock stores the inputs it was shown with).
impl<'de> serde::Deserialize<'de> for ClientKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ClientKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown client kind {name:?}")))
    }
}

/// Why a rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientRulesError {
    #[error("cannot read client rules {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("client rules are not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("client rule {index}: unknown kind {kind:?}")]
    UnknownKind { index: usize, kind: String },
    #[error("client rule {index} ({kind}): {value:?} is not a network (want e.g. 17.0.0.0/8)")]
    BadNetwork {
        index: usize,
        kind: &'static str,
        value: String,
    },
    #[error("client rule {index} ({kind}) has no User-Agent pattern and no network")]
    Empty { index: usize, kind: &'static str },
    #[error("client rule {index} ({kind}): require_both needs User-Agent patterns and networks")]
    RequireBothIncomplete { index: usize, kind: &'static str },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    kind: String,
    #[serde(default)]
    ua_contains: Vec<String>,
    #[serde(default)]
    ua_exact: Vec<String>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    require_both: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    kind: ClientKind,
    /// Lower-cased substrings.
    ua_contains: Vec<String>,
    /// Lower-cased, trimmed whole User-Agents.
    ua_exact: Vec<String>,
    networks: Vec<IpNet>,
    require_both: bool,
}

impl Rule {
    fn matches(&self, ua_lower: Option<&str>, ip: Option<IpAddr>) -> bool {
        let ua_hit = ua_lower.is_some_and(|ua| {
            self.ua_contains.iter().any(|p| ua.contains(p.as_str()))
                || self.ua_exact.iter().any(|p| ua.trim() == p)
        });
        let net_hit = ip.is_some_and(|ip| self.networks.iter().any(|net| net.contains(&ip)));
        if self.require_both {
            ua_hit && net_hit
        } else {
            ua_hit || net_hit
        }
    }
}

/// Ordered classification rules; the first match wins.
#[derive(Debug, Clone)]
pub struct ClientRules {
    rules: Vec<Rule>,
}

impl ClientRules {
    /// The rules embedded from `assets/clients.toml`.
    pub fn builtin() -> Self {
        // The embedded file is part of the build and covered by a unit test.
        Self::from_toml_str(BUILTIN_RULES).expect("embedded assets/clients.toml is valid")
    }

    /// The rules at `path` when given, else the embedded ones.
    pub fn load(path: Option<&Path>) -> Result<Self, ClientRulesError> {
        match path {
            Some(path) => Self::from_path(path),
            None => Self::from_toml_str(BUILTIN_RULES),
        }
    }

    /// Reads a rules file.
    pub fn from_path(path: &Path) -> Result<Self, ClientRulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientRulesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses rules from TOML text in the format of `assets/clients.toml`.
    pub fn from_toml_str(text: &str) -> Result<Self, ClientRulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (index, entry) in file.rule.into_iter().enumerate() {
            let kind = ClientKind::from_name(&entry.kind).ok_or_else(|| {
                ClientRulesError::UnknownKind {
                    index,
                    kind: entry.kind.clone(),
                }
            })?;
            let kind_name = kind.as_str();
            let mut networks = Vec::with_capacity(entry.networks.len());
            for value in &entry.networks {
                let net = parse_network(value).ok_or_else(|| ClientRulesError::BadNetwork {
                    index,
                    kind: kind_name,
                    value: value.clone(),
                })?;
                networks.push(net);
            }
            let lower = |v: &[String]| -> Vec<String> {
                v.iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            let rule = Rule {
                kind,
                ua_contains: lower(&entry.ua_contains),
                ua_exact: lower(&entry.ua_exact),
                networks,
                require_both: entry.require_both,
            };
            let has_ua = !rule.ua_contains.is_empty() || !rule.ua_exact.is_empty();
            let has_net = !rule.networks.is_empty();
            if !has_ua && !has_net {
                return Err(ClientRulesError::Empty {
                    index,
                    kind: kind_name,
                });
            }
            if rule.require_both && !(has_ua && has_net) {
                return Err(ClientRulesError::RequireBothIncomplete {
                    index,
                    kind: kind_name,
                });
            }
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// Classifies a request by its User-Agent and the client's IP address (after
    /// `X-Forwarded-For` handling, see `geo_ip::client_ip`). Never fails: no match is
    /// [`ClientKind::Unknown`].
    pub fn classify(&self, user_agent: Option<&str>, ip: Option<IpAddr>) -> ClientKind {
        let ua_lower = user_agent
            .map(str::trim)
            .filter(|ua| !ua.is_empty())
            .map(str::to_ascii_lowercase);
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = ip.map(|ip| ip.to_canonical());
        self.rules
            .iter()
            .find(|rule| rule.matches(ua_lower.as_deref(), ip))
            .map_or(ClientKind::Unknown, |rule| rule.kind)
    }
}

impl ClientRules {
    /// [`ClientRules::classify`] with the address and without it (what the User-Agent alone
    /// says), in one pass over the rules.
    pub fn classify_with_and_without_ip(
        &self,
        user_agent: Option<&str>,
        ip: Option<IpAddr>,
    ) -> (ClientKind, ClientKind) {
        let ua_lower = user_agent
            .map(str::trim)
            .filter(|ua| !ua.is_empty())
            .map(str::to_ascii_lowercase);
        let ip = ip.map(|ip| ip.to_canonical());
        let mut with_ip = None;
        for rule in &self.rules {
            if with_ip.is_none() && rule.matches(ua_lower.as_deref(), ip) {
                with_ip = Some(rule.kind);
            }
            if rule.matches(ua_lower.as_deref(), None) {
                return (with_ip.unwrap_or(rule.kind), rule.kind);
            }
        }
        (with_ip.unwrap_or(ClientKind::Unknown), ClientKind::Unknown)
    }
}

impl Default for ClientRules {
    fn default() -> Self {
        Self::builtin()
    }
}

/// Accepts a CIDR network or a bare address (a /32 or /128).
fn parse_network(value: &str) -> Option<IpNet> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .ok()
        .or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real User-Agent strings as sent by the clients (collected from public tracking
    // code, user-agent test suites and ESP documentation).
    const GMAIL: &str =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    const YAHOO: &str = "Mozilla/5.0 (compatible; YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html)";
    const YAHOO_BARE: &str =
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html";
    const APPLE_MPP: &str = "Mozilla/5.0";
    const APPLE_MPP_WEBKIT: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)";
    const OUTLOOK_WIN: &str =
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.15225; Pro)";
    const OUTLOOK_MSIE: &str = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0; SLCC2; .NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; .NET4.0C; .NET4.0E; BCP 1.2 GPO; Microsoft Outlook 16.0.9029; Microsoft Outlook 16.0.9029; ms-office; MSOffice 16)";
    const OUTLOOK_2010: &str =
        "Microsoft Office/14.0 (Windows NT 6.1; Microsoft Outlook 14.0.5128; Pro; ms-office; MSOffice 14)";
    const OUTLOOK_MAC: &str = "MacOutlook/16.61.22050700";
    const OUTLOOK_PREFETCH: &str = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)";
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const FIREFOX: &str =
        "Mozilla/5.0 (Windows NT 6.3; Win64; x64; rv:106.0) Gecko/20100101 Firefox/106.0";
    const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 11_2_2 like Mac OS X) AppleWebKit/604.4.7 (KHTML, like Gecko) Version/11.0 Mobile/15C202 Safari/604.1";
    const THUNDERBIRD: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0";
    const CURL: &str = "curl/8.5.0";
    const PYTHON: &str = "python-requests/2.32.5";

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn classify(ua: &str, addr: &str) -> ClientKind {
        ClientRules::builtin().classify(Some(ua), ip(addr))
    }

    #[test]
    fn one_pass_agrees_with_two_classifications() {
        let mut rules = vec![ClientRules::builtin()];
        rules.push(
            ClientRules::from_toml_str(
                "[[rule]]\nkind = \"outlook\"\nua_contains = [\"Outlook\"]\nnetworks = [\"192.0.2.0/24\"]\nrequire_both = true\n[[rule]]\nkind = \"browser\"\nua_contains = [\"Mozilla\"]\n",
            )
            .unwrap(),
        );
        for rules in &rules {
            for ua in [
                GMAIL,
                YAHOO,
                APPLE_MPP,
                APPLE_MPP_WEBKIT,
                OUTLOOK_WIN,
                OUTLOOK_MSIE,
                "curl/8",
                "",
            ] {
                for addr in ["17.58.1.1", "192.0.2.9", "8.8.8.8", "::ffff:17.1.1.1"] {
                    let ip = ip(addr);
                    assert_eq!(
                        rules.classify_with_and_without_ip(Some(ua), ip),
                        (rules.classify(Some(ua), ip), rules.classify(Some(ua), None)),
                        "{ua} from {addr}"
                    );
                }
            }
        }
    }

    #[test]
    fn builtin_rules_parse() {
        assert!(!ClientRules::builtin().rules.is_empty());
    }

    #[test]
    fn gmail_proxy() {
        assert_eq!(classify(GMAIL, "66.249.84.10"), ClientKind::GmailProxy);
        assert_eq!(
            ClientRules::builtin().classify(Some(GMAIL), None),
            ClientKind::GmailProxy
        );
    }

    #[test]
    fn yahoo_proxy() {
        assert_eq!(classify(YAHOO, "98.136.1.1"), ClientKind::YahooProxy);
        assert_eq!(classify(YAHOO_BARE, "98.136.1.1"), ClientKind::YahooProxy);
    }

    #[test]
    fn apple_mpp_by_address() {
        assert_eq!(classify(APPLE_MPP, "17.58.100.2"), ClientKind::AppleMpp);
        assert_eq!(classify(APPLE_MPP_WEBKIT, "17.1.2.3"), ClientKind::AppleMpp);
        // The same generic UA from elsewhere is not Apple's proxy.
        assert_eq!(
            classify(APPLE_MPP_WEBKIT, "203.0.113.9"),
            ClientKind::Browser
        );
        assert_eq!(classify(APPLE_MPP, "203.0.113.9"), ClientKind::Browser);
    }

    #[test]
    fn apple_mpp_through_ipv6_mapped_address() {
        assert_eq!(
            classify(APPLE_MPP, "::ffff:17.58.100.2"),
            ClientKind::AppleMpp
        );
    }

    #[test]
    fn outlook_desktop() {
        for ua in [
            OUTLOOK_WIN,
            OUTLOOK_MSIE,
            OUTLOOK_2010,
            OUTLOOK_MAC,
            OUTLOOK_PREFETCH,
        ] {
            assert_eq!(classify(ua, "198.51.100.7"), ClientKind::Outlook, "{ua}");
        }
    }

    #[test]
    fn browsers() {
        for ua in [CHROME, FIREFOX, IPHONE_SAFARI, THUNDERBIRD] {
            assert_eq!(classify(ua, "198.51.100.7"), ClientKind::Browser, "{ua}");
        }
    }

    #[test]
    fn unknown() {
        assert_eq!(classify(CURL, "198.51.100.7"), ClientKind::Unknown);
        assert_eq!(classify(PYTHON, "198.51.100.7"), ClientKind::Unknown);
        assert_eq!(classify("", "198.51.100.7"), ClientKind::Unknown);
        assert_eq!(
            ClientRules::builtin().classify(None, None),
            ClientKind::Unknown
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in ClientKind::ALL {
            assert_eq!(ClientKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ClientKind::AppleMpp.to_string(), "apple-mpp");
        assert!(ClientKind::AppleMpp.is_machine_prefetch());
        assert!(!ClientKind::GmailProxy.is_machine_prefetch());
        assert!(ClientKind::YahooProxy.is_image_proxy());
        assert!(!ClientKind::Outlook.is_image_proxy());
        assert!(!ClientKind::Outlook.animates_gifs());
        assert!(ClientKind::GmailProxy.animates_gifs());
    }

    #[test]
    fn custom_rules_with_require_both() {
        let rules = ClientRules::from_toml_str(
            r#"
            [[rule]]
            kind = "apple-mpp"
            ua_exact = ["Mozilla/5.0"]
            networks = ["17.0.0.0/8", "2620:149::/32"]
            require_both = true
            "#,
        )
        .unwrap();
        assert_eq!(
            rules.classify(Some("Mozilla/5.0"), ip("17.0.0.1")),
            ClientKind::AppleMpp
        );
        assert_eq!(
            rules.classify(Some("Mozilla/5.0"), ip("2620:149::1")),
            ClientKind::AppleMpp
        );
        assert_eq!(
            rules.classify(Some(CHROME), ip("17.0.0.1")),
            ClientKind::Unknown
        );
    }

    #[test]
    fn bad_rules_are_typed_errors() {
        let unknown = ClientRules::from_toml_str("[[rule]]\nkind = \"fax\"\nua_contains = [\"x\"]");
        assert!(matches!(unknown, Err(ClientRulesError::UnknownKind { .. })));
        let net = ClientRules::from_toml_str("[[rule]]\nkind = \"browser\"\nnetworks = [\"17/8\"]");
        assert!(matches!(net, Err(ClientRulesError::BadNetwork { .. })));
        let empty = ClientRules::from_toml_str("[[rule]]\nkind = \"browser\"");
        assert!(matches!(empty, Err(ClientRulesError::Empty { .. })));
        let both = ClientRules::from_toml_str(
            "[[rule]]\nkind = \"browser\"\nua_contains = [\"x\"]\nrequire_both = true",
        );
        assert!(matches!(
            both,
            Err(ClientRulesError::RequireBothIncomplete { .. })
        ));
        assert!(matches!(
            ClientRules::from_toml_str("not toml ["),
            Err(ClientRulesError::Parse(_))
        ));
        assert!(matches!(
            ClientRules::from_path(Path::new("/nonexistent/clients.toml")),
            Err(ClientRulesError::Read { .. })
        ));
    }
}
