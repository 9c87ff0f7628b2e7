//! Caching headers, decided here and nowhere else (DESIGN.md, "Behind a CDN"), from the
//! block's cache policy and what the render depended on:
//! - personalized render: `no-cache` + strong `ETag` — cached per URL, revalidated every open;
//! - shared render: `public, max-age=N, s-maxage=N`, `Last-Modified` (the later of the
//!   campaign's load time and the start of the render's time bucket);
//! - a shared render that depends on the client *address* (IP location, Apple's relay ranges)
//!   cannot be keyed by any `Vary`: `no-cache`, so the CDN revalidates and opentime decides;
//! - `Vary: User-Agent` only when the User-Agent can change the bytes;
//! - a render with placeholder photos, a fallback, an error: `no-store` (an outage or a slow
//!   image host is never pinned in a CDN or a mail proxy), with the reason in a header;
//! - both kinds of 304: `If-None-Match` against the `ETag`, else `If-Modified-Since` against
//!   `Last-Modified` (shared blocks only: personalized ones change whenever a channel writes
//!   the context, at times opentime does not track);
//! - `Surrogate-Key` / `Cache-Tag` name the campaign and `campaign:block` for purging.

use crate::blocks::CachePolicy;
use crate::open::Opened;
use chrono::{DateTime, Utc};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, VARY,
};
use std::time::SystemTime;

pub(super) const FALLBACK_REASON: HeaderName = HeaderName::from_static("x-opentime-fallback");
pub(super) const IMAGE_FALLBACK: HeaderName = HeaderName::from_static("x-opentime-image-fallback");
pub(super) const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
pub(super) const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Sets every caching header of a rendered block into `headers`, and says whether the answer
/// is a 304 with no body (the client's copy, by `ETag` or by date, is current).
pub(super) fn for_render(
    opened: &Opened,
    campaign: &str,
    block: &str,
    request: &HeaderMap,
    headers: &mut HeaderMap,
) -> bool {
    let render = &opened.render;
    if let Ok(value) = HeaderValue::from_str(&render.etag) {
        headers.insert(ETAG, value);
    }
    add_surrogate_keys(headers, campaign, block);
    if opened.depends_on.user_agent {
        add_vary(headers, "User-Agent");
    }
    let etag_matches = if_none_match_hits(request, &render.etag);
    if let Some(reason) = &render.image_fallback {
        headers.insert(CACHE_CONTROL, no_store());
        if let Ok(value) = HeaderValue::from_str(reason) {
            headers.insert(IMAGE_FALLBACK, value);
        }
        return etag_matches;
    }
    let shared = matches!(opened.policy, CachePolicy::Shared { .. });
    if shared && opened.depends_on.client_address {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return etag_matches;
    }
    headers.insert(CACHE_CONTROL, cache_control(opened.policy));
    if !shared {
        return etag_matches;
    }
    let modified = DateTime::<Utc>::from(
        opened
            .campaign_loaded_at
            .max(SystemTime::from(opened.rendered_for)),
    );
    if let Ok(value) = HeaderValue::from_str(&http_date(modified)) {
        headers.insert(LAST_MODIFIED, value);
    }
    let unmodified_since = !request.contains_key(IF_NONE_MATCH)
        && request
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v.trim()).ok())
            .is_some_and(|since| since.timestamp() >= modified.timestamp());
    etag_matches || unmodified_since
}

/// The caching headers of a block's fallback: never stored, the reason said, purgeable.
pub(super) fn for_fallback(
    headers: &mut HeaderMap,
    reason: &'static str,
    campaign: &str,
    block: &str,
) {
    headers.insert(CACHE_CONTROL, no_store());
    headers.insert(FALLBACK_REASON, HeaderValue::from_static(reason));
    add_surrogate_keys(headers, campaign, block);
}

/// `Cache-Control` for a successfully rendered block.
pub(super) fn cache_control(policy: CachePolicy) -> HeaderValue {
    match policy {
        CachePolicy::Personalized => HeaderValue::from_static("no-cache"),
        CachePolicy::Shared { max_age } => {
            HeaderValue::from_str(&format!("public, max-age={max_age}, s-maxage={max_age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
        }
    }
}

/// `Cache-Control` for anything that must not be stored (fallbacks, errors, APIs).
pub(super) fn no_store() -> HeaderValue {
    HeaderValue::from_static("no-store")
}

/// Adds `token` to the answer's `Vary` (one header, comma-separated, no duplicates).
pub(super) fn add_vary(headers: &mut HeaderMap, token: &'static str) {
    let current = headers
        .get(VARY)
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
        headers.insert(VARY, value);
    }
}

/// Adds the purge keys of a block to `headers`.
fn add_surrogate_keys(headers: &mut HeaderMap, campaign: &str, block: &str) {
    // Names are validated (a-z, 0-9, -, _), so these are always valid header values.
    if let Ok(value) = HeaderValue::from_str(&format!("{campaign} {campaign}:{block}")) {
        headers.insert(SURROGATE_KEY, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("{campaign},{campaign}:{block}")) {
        headers.insert(CACHE_TAG, value);
    }
}

/// Whether the request's `If-None-Match` matches `etag` (strong comparison; `*` matches).
fn if_none_match_hits(request: &HeaderMap, etag: &str) -> bool {
    request.get_all(IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',').map(str::trim).any(|candidate| {
                candidate == "*" || candidate == etag || candidate.strip_prefix("W/") == Some(etag)
            })
        })
    })
}

/// IMF-fixdate, e.g. `Wed, 25 Nov 2026 15:04:05 GMT`.
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachedRender;
    use crate::open::RequestDependence;
    use crate::render::Rendered;
    use bytes::Bytes;
    use std::sync::Arc;

    fn opened(policy: CachePolicy, depends_on: RequestDependence) -> Opened {
        let render = CachedRender::new(Rendered {
            bytes: Bytes::from_static(b"png"),
            content_type: "image/png",
        });
        Opened {
            render: Arc::new(render),
            policy,
            depends_on,
            rendered_for: DateTime::parse_from_rfc3339("2026-11-25T15:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            campaign_loaded_at: SystemTime::UNIX_EPOCH,
        }
    }

    /// The caching headers of `opened` for `request`, and whether it is a 304.
    fn caching(opened: &Opened, request: &HeaderMap) -> (HeaderMap, bool) {
        let mut headers = HeaderMap::new();
        let not_modified = for_render(opened, "demo", "cart", request, &mut headers);
        (headers, not_modified)
    }

    fn request(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        headers
    }

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
        let mut headers = HeaderMap::new();
        for_fallback(&mut headers, "timeout", "demo", "cart");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[FALLBACK_REASON], "timeout");
        assert_eq!(headers[SURROGATE_KEY], "demo demo:cart");
    }

    #[test]
    fn shared_blocks_get_last_modified_and_answer_if_modified_since() {
        let shared = opened(
            CachePolicy::Shared { max_age: 60 },
            RequestDependence::default(),
        );
        let answer = caching(&shared, &HeaderMap::new());
        assert_eq!(answer.0[LAST_MODIFIED], "Wed, 25 Nov 2026 15:04:05 GMT");
        assert_eq!(answer.0[CACHE_CONTROL], "public, max-age=60, s-maxage=60");
        assert!(!answer.1);

        let same = [(IF_MODIFIED_SINCE, "Wed, 25 Nov 2026 15:04:05 GMT")];
        assert!(caching(&shared, &request(&same)).1);
        let earlier = [(IF_MODIFIED_SINCE, "Wed, 25 Nov 2026 15:04:04 GMT")];
        assert!(!caching(&shared, &request(&earlier)).1);
        // If-None-Match decides alone when present.
        let both = [
            (IF_MODIFIED_SINCE, "Wed, 25 Nov 2026 15:04:05 GMT"),
            (IF_NONE_MATCH, "\"other\""),
        ];
        assert!(!caching(&shared, &request(&both)).1);

        let personal = opened(CachePolicy::Personalized, RequestDependence::default());
        let answer = caching(&personal, &request(&same));
        assert!(!answer.0.contains_key(LAST_MODIFIED));
        assert!(!answer.1);
        assert_eq!(answer.0[CACHE_CONTROL], "no-cache");
        let etag = answer.0[ETAG].to_str().unwrap().to_owned();
        let mut by_etag = HeaderMap::new();
        by_etag.insert(IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert!(caching(&personal, &by_etag).1);
    }

    #[test]
    fn request_dependence_and_placeholders() {
        let by_request = RequestDependence {
            user_agent: true,
            client_address: true,
        };
        let shared = opened(CachePolicy::Shared { max_age: 60 }, by_request);
        let answer = caching(&shared, &HeaderMap::new());
        assert_eq!(answer.0[VARY], "User-Agent");
        assert_eq!(answer.0[CACHE_CONTROL], "no-cache");
        assert!(!answer.0.contains_key(LAST_MODIFIED));

        let mut degraded = opened(
            CachePolicy::Shared { max_age: 60 },
            RequestDependence::default(),
        );
        let render = CachedRender::new(Rendered {
            bytes: Bytes::from_static(b"png"),
            content_type: "image/png",
        })
        .with_image_fallback(Some("1 timeout".into()));
        degraded.render = Arc::new(render);
        let answer = caching(&degraded, &HeaderMap::new());
        assert_eq!(answer.0[CACHE_CONTROL], "no-store");
        assert_eq!(answer.0[IMAGE_FALLBACK], "1 timeout");
        assert!(!answer.0.contains_key(VARY));
    }
}
