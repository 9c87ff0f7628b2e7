//! Caching headers, decided here and nowhere else (DESIGN.md, "Behind a CDN"):
//! - personalized render: `no-cache` + strong `ETag` — cached per URL, revalidated every open;
//! - shared render: `public, max-age=N, s-maxage=N`;
//! - fallback: `no-store`, so an outage is never pinned in a CDN or a mail proxy;
//! - `Surrogate-Key` / `Cache-Tag` name the campaign and `campaign:block` for purging.

use crate::blocks::CachePolicy;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, ETAG, IF_NONE_MATCH};

pub const FALLBACK_REASON: HeaderName = HeaderName::from_static("x-opentime-fallback");
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// `Cache-Control` for a successfully rendered block.
pub fn cache_control(policy: CachePolicy) -> HeaderValue {
    match policy {
        CachePolicy::Personalized => HeaderValue::from_static("no-cache"),
        CachePolicy::Shared { max_age } => {
            HeaderValue::from_str(&format!("public, max-age={max_age}, s-maxage={max_age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
        }
    }
}

/// `Cache-Control` for anything that must not be stored (fallbacks, errors, APIs).
pub fn no_store() -> HeaderValue {
    HeaderValue::from_static("no-store")
}

/// Adds the purge keys of a block to `headers`.
pub fn add_surrogate_keys(headers: &mut HeaderMap, campaign: &str, block: &str) {
    // Names are validated (a-z, 0-9, -, _), so these are always valid header values.
    if let Ok(value) = HeaderValue::from_str(&format!("{campaign} {campaign}:{block}")) {
        headers.insert(SURROGATE_KEY, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{campaign},{campaign}:{block}")) {
        headers.insert(CACHE_TAG, value);
    }
}

/// Whether the request's `If-None-Match` matches `etag` (strong comparison; `*` matches).
pub fn if_none_match_hits(request: &HeaderMap, etag: &str) -> bool {
    request.get_all(IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',').map(str::trim).any(|candidate| {
                candidate == "*" || candidate == etag || candidate.strip_prefix("W/") == Some(etag)
            })
        })
    })
}

/// Adds `token` to the answer's `Vary` (one header, comma-separated, no duplicates).
pub fn add_vary(headers: &mut HeaderMap, token: &'static str) {
    let current = headers
        .get(hyper::header::VARY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if current
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
    {
        return;
    }
    let value = if current.trim().is_empty() {
        token.to_owned()
    } else {
        format!("{current}, {token}")
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(hyper::header::VARY, value);
    }
}

/// Sets `ETag` and `Cache-Control` for a rendered answer.
pub fn add_validators(headers: &mut HeaderMap, etag: &str, policy: CachePolicy) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    headers.insert(CACHE_CONTROL, cache_control(policy));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_follows_the_policy() {
        assert_eq!(cache_control(CachePolicy::Personalized), "no-cache");
        assert_eq!(
            cache_control(CachePolicy::Shared { max_age: 30 }),
            "public, max-age=30, s-maxage=30"
        );
        assert_eq!(no_store(), "no-store");
    }

    #[test]
    fn if_none_match_compares_lists_and_weak_forms() {
        let etag = "\"abc\"";
        let mut headers = HeaderMap::new();
        assert!(!if_none_match_hits(&headers, etag));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"x\", \"abc\""));
        assert!(if_none_match_hits(&headers, etag));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\""));
        assert!(if_none_match_hits(&headers, etag));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"abd\""));
        assert!(!if_none_match_hits(&headers, etag));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match_hits(&headers, etag));
    }

    #[test]
    fn surrogate_keys_name_campaign_and_block() {
        let mut headers = HeaderMap::new();
        add_surrogate_keys(&mut headers, "demo", "cart");
        assert_eq!(headers[SURROGATE_KEY], "demo demo:cart");
        assert_eq!(headers[CACHE_TAG], "demo,demo:cart");
    }
}
