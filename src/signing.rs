//! Subscriber tokens: `t = base64url(HMAC-SHA256(secret, subscriber id))`.
//!
//! Several secrets may be configured for rotation: the first signs, every one verifies.
//! Verification is constant time (`Mac::verify_slice`), and neither secrets nor tokens are
//! ever formatted into logs (`Debug` is redacted).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;

/// The secret used when none is configured; `serve` warns loudly when it is in use.
const DEVELOPMENT_SECRET: &str = "opentime-development-secret-do-not-use-in-production";

/// Shortest secret accepted; shorter ones are guessable.
const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("OPENTIME_SECRET holds no secret (it is empty or only commas)")]
    NoSecret,
    #[error("secret number {position} is shorter than {MIN_SECRET_LEN} characters")]
    TooShort { position: usize },
}

/// Signs and verifies subscriber tokens.
#[derive(Clone)]
pub struct Signer {
    /// The first key signs; all keys verify (rotation).
    keys: Vec<Vec<u8>>,
    development: bool,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("development", &self.development)
            .finish()
    }
}

impl Signer {
    /// Builds a signer from a comma-separated list of secrets (first one signs).
    pub fn from_secrets(list: &str) -> Result<Self, SigningError> {
        let mut keys = Vec::new();
        for (index, secret) in list.split(',').map(str::trim).enumerate() {
            if secret.is_empty() {
                continue;
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(SigningError::TooShort {
                    position: index + 1,
                });
            }
            keys.push(secret.as_bytes().to_vec());
        }
        if keys.is_empty() {
            return Err(SigningError::NoSecret);
        }
        Ok(Self {
            keys,
            development: false,
        })
    }

    /// The well-known development signer, for running without configuration.
    pub fn development() -> Self {
        Self {
            keys: vec![DEVELOPMENT_SECRET.as_bytes().to_vec()],
            development: true,
        }
    }

    /// Builds from an optional configured secret list, falling back to the development secret.
    pub fn from_config(secret: Option<&str>) -> Result<Self, SigningError> {
        match secret {
            Some(list) => Self::from_secrets(list),
            None => Ok(Self::development()),
        }
    }

    /// True when the signer uses the public development secret.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The token for a subscriber, signed with the first secret.
    pub fn token(&self, subscriber: &str) -> String {
        URL_SAFE_NO_PAD.encode(Self::mac(&self.keys[0], subscriber).finalize().into_bytes())
    }

    /// Whether `token` was issued for `subscriber` under any configured secret.
    pub fn verify(&self, subscriber: &str, token: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')) else {
            return false;
        };
        // Every key is tried, so the time taken does not tell which one matched.
        self.keys.iter().fold(false, |matched, key| {
            Self::mac(key, subscriber).verify_slice(&given).is_ok() | matched
        })
    }

    /// The signature (`sig`) of an image URL's parameters: binds the `campaign/block` path and
    /// every parameter but `s`, `t`, `scale` and `sig` itself, so a block declared `signed`
    /// renders only the parameters its URL was made with (`opentime url --query`).
    pub fn query_signature(&self, path: &str, params: &BTreeMap<String, String>) -> String {
        let message = query_message(path, params);
        URL_SAFE_NO_PAD.encode(Self::mac(&self.keys[0], &message).finalize().into_bytes())
    }

    /// Whether `signature` was made for `path` and `params` under any configured secret.
    pub fn verify_query(
        &self,
        path: &str,
        params: &BTreeMap<String, String>,
        signature: &str,
    ) -> bool {
        let message = query_message(path, params);
        self.verify(&message, signature)
    }

    fn mac(key: &[u8], subscriber: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        mac.update(subscriber.as_bytes());
        mac
    }
}

/// What a query signature covers: a prefix with a newline, which no subscriber id has, keeps it
/// apart from subscriber tokens; parameters in key order, form-encoded.
fn query_message(path: &str, params: &BTreeMap<String, String>) -> String {
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        encoded.append_pair(key, value);
    }
    format!("query\n{path}\n{}", encoded.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_is_bound_to_the_subscriber() {
        let signer = Signer::from_secrets("a-very-long-secret-1").unwrap();
        let token = signer.token("alice");
        assert_eq!(token.len(), 43, "256-bit MAC in unpadded base64url");
        assert!(signer.verify("alice", &token));
        assert!(!signer.verify("bob", &token));
        assert!(!signer.verify("alice", "not-a-token"));
        assert!(!signer.verify("alice", ""));
    }

    #[test]
    fn query_signatures_bind_the_path_and_every_parameter() {
        let signer = Signer::from_secrets("a-very-long-secret-1").unwrap();
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let until = params(&[("until", "2026-12-24T18:00:00+01:00"), ("lang", "de")]);
        let sig = signer.query_signature("demo/countdown", &until);
        assert!(signer.verify_query("demo/countdown", &until, &sig));
        assert!(
            !signer.verify_query("demo/other", &until, &sig),
            "another block"
        );
        let later = params(&[("until", "2027-12-24T18:00:00+01:00"), ("lang", "de")]);
        assert!(
            !signer.verify_query("demo/countdown", &later, &sig),
            "another value"
        );
        let more = params(&[
            ("until", "2026-12-24T18:00:00+01:00"),
            ("lang", "de"),
            ("x", "1"),
        ]);
        assert!(
            !signer.verify_query("demo/countdown", &more, &sig),
            "an extra parameter"
        );
        assert!(
            !signer.verify_query("demo/countdown", &until, ""),
            "no signature"
        );
        // A subscriber token is not a query signature, nor the other way round.
        assert!(!signer.verify_query("demo/countdown", &BTreeMap::new(), &signer.token("x")));
        let rotated = Signer::from_secrets("a-newer-long-secret-2,a-very-long-secret-1").unwrap();
        assert!(
            rotated.verify_query("demo/countdown", &until, &sig),
            "old secret verifies"
        );
    }

    #[test]
    fn matches_reference_hmacs() {
        // RFC 4231 test case 2 (key "Jefe"), through the same MAC path the signer uses.
        let rfc = Signer::mac(b"Jefe", "what do ya want for nothing?").finalize();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(rfc.into_bytes()),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM"
        );
        // Computed independently (Python's hmac module) for a configured secret.
        let signer = Signer::from_secrets("key-of-sixteen-ch").unwrap();
        assert_eq!(
            signer.token("alice"),
            "WF4IyMpvn7ItOhyh8SxlYZyX4tOj5toTt5cnyeKZCxI"
        );
    }

    #[test]
    fn rotation_first_signs_all_verify() {
        let old = Signer::from_secrets("old-secret-0123456").unwrap();
        let rotated = Signer::from_secrets("new-secret-0123456, old-secret-0123456").unwrap();
        let old_token = old.token("carol");
        assert!(rotated.verify("carol", &old_token));
        assert_ne!(rotated.token("carol"), old_token);
        assert!(!old.verify("carol", &rotated.token("carol")));
    }

    #[test]
    fn rejects_empty_and_short_secrets() {
        assert_eq!(
            Signer::from_secrets(" , ").unwrap_err(),
            SigningError::NoSecret
        );
        assert_eq!(
            Signer::from_secrets("long-enough-secret-x,short").unwrap_err(),
            SigningError::TooShort { position: 2 }
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let signer = Signer::from_secrets("super-secret-value-123").unwrap();
        assert!(!format!("{signer:?}").contains("super-secret"));
    }

    proptest::proptest! {
        /// A token verifies for its own subscriber only, and no other string verifies.
        #[test]
        fn tokens_verify_only_for_their_subscriber(
            subscriber in "\\PC{1,64}",
            other in "\\PC{1,64}",
            forged in "[A-Za-z0-9_-]{0,60}",
        ) {
            let signer = Signer::from_secrets("property-test-secret-0123456789abcdef").unwrap();
            let token = signer.token(&subscriber);
            proptest::prop_assert!(signer.verify(&subscriber, &token));
            if other != subscriber {
                proptest::prop_assert!(!signer.verify(&other, &token));
            }
            if forged != token {
                proptest::prop_assert!(!signer.verify(&subscriber, &forged));
            }
        }
    }
}
