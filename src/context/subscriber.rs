//! Subscriber ids as they arrive in URLs and API paths, validated once.
//!
//! Ids end up inside Redis keys (`ctx:{SUB}`), so braces, whitespace and control characters are
//! refused: a brace would break the Redis Cluster hash tag that keeps a subscriber in one slot.

use std::fmt;

/// Longest accepted subscriber id, in bytes.
pub(super) const MAX_SUBSCRIBER_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriberIdError {
    #[error("subscriber id is empty")]
    Empty,
    #[error("subscriber id is longer than {MAX_SUBSCRIBER_LEN} bytes")]
    TooLong,
    #[error("subscriber id contains a brace, whitespace or control character")]
    BadCharacter,
}

/// A validated subscriber id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriberId(String);

impl SubscriberId {
    pub fn parse(raw: &str) -> Result<Self, SubscriberIdError> {
        if raw.is_empty() {
            return Err(SubscriberIdError::Empty);
        }
        if raw.len() > MAX_SUBSCRIBER_LEN {
            return Err(SubscriberIdError::TooLong);
        }
        if raw
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(SubscriberIdError::BadCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis key of this subscriber's context hash.
    pub fn context_key(&self) -> String {
        format!("ctx:{{{}}}", self.0)
    }
}

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_and_emails() {
        assert_eq!(
            SubscriberId::parse("alice").unwrap().context_key(),
            "ctx:{alice}"
        );
        assert!(SubscriberId::parse("bob+news@example.com").is_ok());
        assert!(SubscriberId::parse("Zoë-42").is_ok());
    }

    #[test]
    fn refuses_what_would_break_a_key() {
        assert_eq!(SubscriberId::parse(""), Err(SubscriberIdError::Empty));
        assert_eq!(
            SubscriberId::parse("a}b"),
            Err(SubscriberIdError::BadCharacter)
        );
        assert_eq!(
            SubscriberId::parse("a b"),
            Err(SubscriberIdError::BadCharacter)
        );
        assert_eq!(
            SubscriberId::parse("a\nb"),
            Err(SubscriberIdError::BadCharacter)
        );
        assert_eq!(
            SubscriberId::parse(&"x".repeat(MAX_SUBSCRIBER_LEN + 1)),
            Err(SubscriberIdError::TooLong)
        );
    }
}
