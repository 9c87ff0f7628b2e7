//! The channels allowed to write context through the ingest API, each with its bearer token
//! (`OPENTIME_CHANNEL_TOKENS=sms:TOKEN,crm:TOKEN`) and what it may do
//! (`OPENTIME_CHANNEL_SCOPES=sms=write:sms,write:loyalty;crm=write:*,read,erase`): which
//! fields it may write (and delete), whether it may read a whole context, and whether it may
//! erase a subscriber. A channel listed without a scope may do everything (as before scopes
//! existed); the server says so at start-up.
//!
//! Tokens are compared in constant time (HMAC tags compared with `verify_slice`), never logged,
//! and `Debug` shows only the channel names.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest token accepted: shorter ones can be guessed.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelTokenError {
    #[error("entry {0} is not CHANNEL:TOKEN")]
    Malformed(usize),
    #[error("channel name `{0}` must use a-z, 0-9, - and _ (at most 32)")]
    BadName(String),
    #[error("the token of channel `{0}` is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort(String),
    #[error("channel `{0}` is listed twice")]
    Duplicate(String),
    #[error("scope `{0}` is not CHANNEL=RIGHT,RIGHT (rights: read, erase, write:FIELD, write:*)")]
    MalformedScope(String),
    #[error("scope for `{0}`, which has no token")]
    ScopeWithoutToken(String),
}

/// What a channel may do through the ingest API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Fields it may write and delete; `None` = every field.
    pub writable: Option<Vec<String>>,
    /// May read a subscriber's whole context (`GET`).
    pub read: bool,
    /// May erase a subscriber: the whole context, their locks and cached renders.
    pub erase: bool,
}

impl Scope {
    /// Everything: a channel listed without a scope.
    pub fn unrestricted() -> Self {
        Self {
            writable: None,
            read: true,
            erase: true,
        }
    }

    pub fn may_write(&self, field: &str) -> bool {
        self.writable
            .as_ref()
            .is_none_or(|fields| fields.iter().any(|f| f == field))
    }

    /// Parses `write:sms,write:loyalty,read`.
    fn parse(entry: &str, rights: &str) -> Result<Self, ChannelTokenError> {
        let malformed = || ChannelTokenError::MalformedScope(entry.to_owned());
        let mut scope = Self {
            writable: Some(Vec::new()),
            read: false,
            erase: false,
        };
        for right in rights.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match right {
                "read" => scope.read = true,
                "erase" => scope.erase = true,
                "write:*" => scope.writable = None,
                _ => {
                    let field = right.strip_prefix("write:").ok_or_else(malformed)?;
                    if !crate::names::is_valid_name(field) {
                        return Err(malformed());
                    }
                    if let Some(fields) = &mut scope.writable {
                        fields.push(field.to_owned());
                    }
                }
            }
        }
        Ok(scope)
    }
}

/// One channel: its name, the MAC of its token under the process key, and its scope.
struct Channel {
    name: String,
    tag: Vec<u8>,
    scope: Scope,
    /// Listed without a scope (so unrestricted).
    unscoped: bool,
}

/// The configured channels.
pub struct ChannelTokens {
    /// A key used only to compare tokens in constant time; the tags are MACs under it.
    key: [u8; 32],
    channels: Vec<Channel>,
}

impl std::fmt::Debug for ChannelTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.channels.iter().map(|c| &c.name))
            .finish()
    }
}

impl ChannelTokens {
    /// Parses `sms:TOKEN,crm:TOKEN`; an empty list means no channel may write.
    pub fn parse(list: &str) -> Result<Self, ChannelTokenError> {
        let key = comparison_key();
        let mut channels: Vec<Channel> = Vec::new();
        for (index, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (name, token) = entry
                .split_once(':')
                .ok_or(ChannelTokenError::Malformed(index + 1))?;
            let name = name.trim();
            if name.is_empty() || name.len() > 32 || !crate::names::is_valid_name(name) {
                return Err(ChannelTokenError::BadName(name.to_owned()));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(ChannelTokenError::TooShort(name.to_owned()));
            }
            if channels.iter().any(|c| c.name == name) {
                return Err(ChannelTokenError::Duplicate(name.to_owned()));
            }
            channels.push(Channel {
                name: name.to_owned(),
                tag: mac(&key, token.as_bytes()),
                scope: Scope::unrestricted(),
                unscoped: true,
            });
        }
        Ok(Self { key, channels })
    }

    /// [`Self::parse`], then each channel's scope from `scopes`
    /// (`sms=write:sms,write:loyalty;crm=write:*,read,erase`).
    pub fn parse_with_scopes(list: &str, scopes: &str) -> Result<Self, ChannelTokenError> {
        let mut tokens = Self::parse(list)?;
        for entry in scopes.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, rights) = entry
                .split_once('=')
                .ok_or_else(|| ChannelTokenError::MalformedScope(entry.to_owned()))?;
            let name = name.trim();
            let channel = tokens
                .channels
                .iter_mut()
                .find(|c| c.name == name)
                .ok_or_else(|| ChannelTokenError::ScopeWithoutToken(name.to_owned()))?;
            channel.scope = Scope::parse(entry, rights)?;
            channel.unscoped = false;
        }
        Ok(tokens)
    }

    /// The channels listed without a scope (they may read, write and erase everything).
    pub fn unscoped(&self) -> impl Iterator<Item = &str> {
        self.channels
            .iter()
            .filter(|c| c.unscoped)
            .map(|c| c.name.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The channel whose token `presented` is, if any. Every configured token is compared, in
    /// constant time, so the answer's timing says nothing about which one came close.
    pub fn channel_for(&self, presented: &str) -> Option<&str> {
        self.authorized(presented).map(|(name, _)| name)
    }

    /// The channel whose token `presented` is, with its scope.
    pub fn authorized(&self, presented: &str) -> Option<(&str, &Scope)> {
        let mut found = None;
        for channel in &self.channels {
            let Ok(mut check) = HmacSha256::new_from_slice(&self.key) else {
                continue;
            };
            check.update(presented.as_bytes());
            if check.verify_slice(&channel.tag).is_ok() {
                found = Some((channel.name.as_str(), &channel.scope));
            }
        }
        found
    }
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; this arm is never taken.
        Err(_) => Vec::new(),
    }
}

/// A per-process key for token comparison: it needs no secrecy beyond this process, only to
/// differ from anything an attacker could precompute against.
fn comparison_key() -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    hasher.update(std::process::id().to_le_bytes());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.update(elapsed.as_nanos().to_le_bytes());
    }
    let stack_address = &hasher as *const _ as usize;
    hasher.update(stack_address.to_le_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_channel_of_a_token() {
        let tokens =
            ChannelTokens::parse("sms:sms-token-0123456789, crm:crm-token-0123456789").unwrap();
        assert_eq!(tokens.channel_for("sms-token-0123456789"), Some("sms"));
        assert_eq!(tokens.channel_for("crm-token-0123456789"), Some("crm"));
        assert_eq!(tokens.channel_for("crm-token-012345678"), None);
        assert_eq!(tokens.channel_for(""), None);
        assert_eq!(format!("{tokens:?}"), r#"["sms", "crm"]"#);
        assert!(ChannelTokens::parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_lists() {
        assert_eq!(
            ChannelTokens::parse("sms").unwrap_err(),
            ChannelTokenError::Malformed(1)
        );
        assert_eq!(
            ChannelTokens::parse("SMS:0123456789abcdef").unwrap_err(),
            ChannelTokenError::BadName("SMS".into())
        );
        assert_eq!(
            ChannelTokens::parse("sms:short").unwrap_err(),
            ChannelTokenError::TooShort("sms".into())
        );
        assert_eq!(
            ChannelTokens::parse("a:0123456789abcdef,a:0123456789abcdeg").unwrap_err(),
            ChannelTokenError::Duplicate("a".into())
        );
    }

    #[test]
    fn scopes_limit_fields_reads_and_erasure() {
        let tokens = ChannelTokens::parse_with_scopes(
            "sms:sms-token-0123456789, crm:crm-token-0123456789, pos:pos-token-0123456789",
            "sms=write:sms,write:loyalty; crm=write:*,read,erase",
        )
        .unwrap();
        let (name, sms) = tokens.authorized("sms-token-0123456789").unwrap();
        assert_eq!(name, "sms");
        assert!(sms.may_write("sms") && sms.may_write("loyalty") && !sms.may_write("cart"));
        assert!(!sms.read && !sms.erase);
        let (_, crm) = tokens.authorized("crm-token-0123456789").unwrap();
        assert!(crm.may_write("anything") && crm.read && crm.erase);
        let (_, pos) = tokens.authorized("pos-token-0123456789").unwrap();
        assert_eq!(pos, &Scope::unrestricted());
        assert_eq!(tokens.unscoped().collect::<Vec<_>>(), ["pos"]);
        assert_eq!(
            ChannelTokens::parse_with_scopes("sms:sms-token-0123456789", "crm=read").unwrap_err(),
            ChannelTokenError::ScopeWithoutToken("crm".into())
        );
        assert!(matches!(
            ChannelTokens::parse_with_scopes("sms:sms-token-0123456789", "sms=delete"),
            Err(ChannelTokenError::MalformedScope(_))
        ));
        assert!(matches!(
            ChannelTokens::parse_with_scopes("sms:sms-token-0123456789", "sms"),
            Err(ChannelTokenError::MalformedScope(_))
        ));
    }
}
