//! CORS for block answers, so a web view or an ESP's connected-content fetch can read an
//! HTML fragment from script. Only origins on the configured allow-list are echoed in
//! `Access-Control-Allow-Origin` (no credentials, no wildcard). With an allow-list set, every
//! block answer carries `Vary: Origin` — the answer then depends on the `Origin` header — and
//! without one, neither header is ever sent.

use super::headers;
use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ORIGIN,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("OPENTIME_CORS_ORIGINS: `{0}` is not an origin like https://shop.example.com")]
pub struct CorsError(pub String);

/// The allow-list, normalised (lower case, no trailing slash).
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins(Vec<String>);

impl CorsOrigins {
    pub fn new(origins: &[String]) -> Result<Self, CorsError> {
        let mut list = Vec::new();
        for origin in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let normalised = origin.trim_end_matches('/').to_ascii_lowercase();
            let rest = normalised
                .strip_prefix("https://")
                .or_else(|| normalised.strip_prefix("http://"));
            let valid = rest.is_some_and(|host| {
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            });
            if !valid {
                return Err(CorsError(origin.to_owned()));
            }
            list.push(normalised);
        }
        Ok(Self(list))
    }

    /// Adds the CORS headers for a request carrying `request` headers.
    pub fn apply(&self, response: &mut HeaderMap, request: &HeaderMap) {
        if self.0.is_empty() {
            return;
        }
        headers::add_vary(response, "Origin");
        let Some(origin) = request.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let wanted = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if !self.0.contains(&wanted) {
            return;
        }
        if let Ok(value) = HeaderValue::from_str(origin.trim()) {
            response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
            response.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("ETag, X-Opentime-Fallback, X-Opentime-Image-Fallback"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_listed_origins_only() {
        let cors = CorsOrigins::new(&["https://Shop.example.com/".into()]).unwrap();
        let mut request = HeaderMap::new();
        request.insert(ORIGIN, HeaderValue::from_static("https://shop.example.com"));
        let mut response = HeaderMap::new();
        cors.apply(&mut response, &request);
        assert_eq!(
            response[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://shop.example.com"
        );
        assert_eq!(response["vary"], "Origin");

        request.insert(ORIGIN, HeaderValue::from_static("https://evil.example.com"));
        let mut response = HeaderMap::new();
        cors.apply(&mut response, &request);
        assert!(!response.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(response["vary"], "Origin");

        let mut response = HeaderMap::new();
        CorsOrigins::default().apply(&mut response, &request);
        assert!(response.is_empty());
    }

    #[test]
    fn refuses_non_origins() {
        for bad in [
            "shop.example.com",
            "https://shop.example.com/path",
            "*",
            "ftp://x",
        ] {
            assert!(CorsOrigins::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
