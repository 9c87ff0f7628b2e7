//! Who may use the studio, as Jupyter does it: the studio token (`OPENTIME_STUDIO_TOKEN`),
//! typed into the login page or given once as `?token=`, opens a session kept in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` behind HTTPS). Every write also carries the
//! session's CSRF token in a header, and a request from another origin is refused. Tokens are
//! compared in constant time and never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "opentime_studio";
/// The header every write carries the session's CSRF token in.
pub(super) const CSRF_HEADER: &str = "x-opentime-csrf";
/// How long a session lasts without a new login.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 1000;
/// Shortest studio token accepted from the settings.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("OPENTIME_STUDIO_TOKEN must be at least {MIN_TOKEN_LEN} characters")]
    TokenTooShort,
    #[error("no random source for session ids: {0}")]
    Random(String),
}

/// One person's session.
#[derive(Clone)]
pub(super) struct Session {
    pub id: String,
    /// What every write of this session must send in [`CSRF_HEADER`].
    pub csrf: String,
    expires: Instant,
}

/// The studio token and the open sessions.
pub(super) struct Access {
    token: String,
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Access { token: <redacted> }")
    }
}

impl Access {
    /// Access with the configured token, or a random one (returned, to be shown once).
    pub(super) fn new(token: Option<&str>) -> Result<(Self, Option<String>), AccessError> {
        let (token, generated) = match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) if token.len() < MIN_TOKEN_LEN => return Err(AccessError::TokenTooShort),
            Some(token) => (token.to_owned(), None),
            None => {
                let token = random_hex(24)?;
                (token.clone(), Some(token))
            }
        };
        let access = Self {
            token,
            sessions: Mutex::new(HashMap::new()),
        };
        Ok((access, generated))
    }

    /// Whether `given` is the studio token (constant time).
    pub(super) fn token_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// A new session for someone who gave the right token.
    pub(super) fn open_session(&self) -> Result<Session, AccessError> {
        let session = Session {
            id: random_hex(32)?,
            csrf: random_hex(32)?,
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let Ok(mut sessions) = self.sessions.lock() else {
            return Err(AccessError::Random("session table poisoned".into()));
        };
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .values()
                .min_by_key(|s| s.expires)
                .map(|s| s.id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The live session a `Cookie` header names, if any.
    pub(super) fn session(&self, cookie_header: Option<&str>) -> Option<Session> {
        let id = cookie_value(cookie_header?, SESSION_COOKIE)?;
        let sessions = self.sessions.lock().ok()?;
        // Looked up by id, then compared in constant time: the map's lookup alone could leak
        // through timing how much of a guessed id is right.
        let session = sessions.get(id)?;
        let same = bool::from(session.id.as_bytes().ct_eq(id.as_bytes()));
        (same && session.expires > Instant::now()).then(|| session.clone())
    }

    /// Ends a session.
    pub(super) fn close_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }
}

impl Session {
    /// Whether a write's CSRF header is this session's (constant time).
    pub(super) fn csrf_matches(&self, given: Option<&str>) -> bool {
        given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// The `Set-Cookie` value that keeps this session; `secure` behind HTTPS.
    pub(super) fn cookie(&self, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{SESSION_COOKIE}={}; Path=/studio; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.id,
            SESSION_LIFETIME.as_secs()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub(super) fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/studio; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a write comes from the studio's own pages: an `Origin` header, when the browser
/// sends one, must name the host the request was sent to.
pub(super) fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// `bytes` random bytes from the operating system, as hex.
fn random_hex(bytes: usize) -> Result<String, AccessError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| AccessError::Random(e.to_string()))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_with_the_token_only() {
        let (access, generated) = Access::new(Some("a-studio-token-of-some-length")).unwrap();
        assert!(generated.is_none());
        assert!(access.token_matches("a-studio-token-of-some-length"));
        assert!(!access.token_matches("a-studio-token-of-some-lengtH"));
        assert!(!access.token_matches(""));
        let session = access.open_session().unwrap();
        let header = format!("other=1; {SESSION_COOKIE}={}", session.id);
        let found = access.session(Some(&header)).unwrap();
        assert!(found.csrf_matches(Some(&session.csrf)));
        assert!(!found.csrf_matches(Some("forged")));
        assert!(!found.csrf_matches(None));
        assert!(access.session(Some("opentime_studio=guess")).is_none());
        access.close_session(&session.id);
        assert!(access.session(Some(&header)).is_none());
    }

    #[test]
    fn a_missing_token_is_made_and_a_short_one_refused() {
        let (access, generated) = Access::new(None).unwrap();
        let generated = generated.unwrap();
        assert_eq!(generated.len(), 48);
        assert!(access.token_matches(&generated));
        assert!(Access::new(Some("short")).is_err());
        assert!(format!("{access:?}").contains("redacted"));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_https() {
        let (access, _) = Access::new(None).unwrap();
        let session = access.open_session().unwrap();
        let plain = session.cookie(false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(session.cookie(true).ends_with("; Secure"));
    }

    #[test]
    fn writes_from_other_origins_are_told_apart() {
        assert!(same_origin(None, Some("127.0.0.1:8081")));
        assert!(same_origin(
            Some("http://127.0.0.1:8081"),
            Some("127.0.0.1:8081")
        ));
        assert!(!same_origin(
            Some("https://evil.example"),
            Some("127.0.0.1:8081")
        ));
        assert!(!same_origin(Some("null"), Some("127.0.0.1:8081")));
    }
}
