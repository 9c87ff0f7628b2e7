//! What a CDN or a mail proxy needs beyond `headers`' basics, decided per rendered answer:
//! - `Vary: User-Agent` only when the User-Agent can change the bytes: the template reads
//!   `client`, or `location` came from the IP (an image proxy's User-Agent turns the IP off),
//!   or the block is a countdown (Outlook gets the first frame);
//! - an answer that depends on the client *address* (IP location, Apple's relay ranges)
//!   cannot be keyed by any `Vary`, so a shared block of that kind is sent `no-cache`
//!   (the CDN revalidates every time and opentime decides);
//! - `Last-Modified` on shared blocks only — the later of the campaign's load time and the
//!   start of the render's time bucket — and `If-Modified-Since` answered with 304 when no
//!   `If-None-Match` was sent. Personalized blocks change whenever a channel writes the
//!   context, at times opentime does not track, so they carry only the `ETag`;
//! - a render with placeholder photos is `no-store` with `X-Opentime-Image-Fallback`, like a
//!   fallback: a slow image host must not pin a grey tile in a CDN.

use super::answer::Body;
use super::headers;
use crate::blocks::{Block, BlockKind, CachePolicy};
use crate::cache::CachedRender;
use crate::render::TemplateInput;
use crate::sources::geo_ip::LocationSource;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED,
};
use hyper::{Response, StatusCode};
use std::time::SystemTime;

pub const IMAGE_FALLBACK: HeaderName = HeaderName::from_static("x-opentime-image-fallback");

/// What of the request, beyond the URL, the rendered bytes depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Variance {
    pub user_agent: bool,
    pub client_address: bool,
}

impl Variance {
    /// For a render of `block` from `input` (after the opener's facts were added).
    pub fn of(block: &Block, input: &TemplateInput, geo_configured: bool) -> Self {
        let location_by_request = block.reads_location
            && geo_configured
            && input
                .location
                .as_ref()
                .is_none_or(|l| l.source != LocationSource::Context);
        Self {
            user_agent: block.reads_client
                || location_by_request
                || block.kind == BlockKind::Countdown,
            client_address: block.reads_client || location_by_request,
        }
    }
}

/// Refines the headers of a rendered answer (200 or 304) as described above.
pub fn apply(
    response: &mut Response<Body>,
    request_headers: &HeaderMap,
    render: &CachedRender,
    policy: CachePolicy,
    variance: Variance,
    last_modified: Option<SystemTime>,
) {
    let headers = response.headers_mut();
    if variance.user_agent {
        headers::add_vary(headers, "User-Agent");
    }
    if let Some(fallback) = &render.image_fallback {
        headers.insert(CACHE_CONTROL, headers::no_store());
        if let Ok(value) = HeaderValue::from_str(fallback) {
            headers.insert(IMAGE_FALLBACK, value);
        }
        return;
    }
    let shared = matches!(policy, CachePolicy::Shared { .. });
    if shared && variance.client_address {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return;
    }
    let Some(modified) = last_modified.filter(|_| shared) else {
        return;
    };
    let modified = DateTime::<Utc>::from(modified);
    if let Ok(value) = HeaderValue::from_str(&http_date(modified)) {
        headers.insert(LAST_MODIFIED, value);
    }
    let unmodified = !request_headers.contains_key(IF_NONE_MATCH)
        && request_headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v.trim()).ok())
            .is_some_and(|since| since.timestamp() >= modified.timestamp());
    if unmodified && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.body_mut() = Full::new(Bytes::new());
        response.headers_mut().remove(CONTENT_TYPE);
    }
}

/// The `Last-Modified` of a shared block rendered for `bucket_start`.
pub fn shared_last_modified(loaded_at: SystemTime, bucket_start: DateTime<Utc>) -> SystemTime {
    loaded_at.max(SystemTime::from(bucket_start))
}

/// IMF-fixdate, e.g. `Wed, 25 Nov 2026 15:04:05 GMT`.
fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Rendered;

    fn rendered() -> (Response<Body>, CachedRender) {
        let render = CachedRender::new(Rendered {
            bytes: Bytes::from_static(b"png"),
            content_type: "image/png",
        });
        let mut response = Response::new(Full::new(render.bytes.clone()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
        (response, render)
    }

    fn at(text: &str) -> SystemTime {
        SystemTime::from(DateTime::parse_from_rfc3339(text).unwrap())
    }

    #[test]
    fn shared_blocks_get_last_modified_and_answer_if_modified_since() {
        let shared = CachePolicy::Shared { max_age: 60 };
        let modified = at("2026-11-25T15:04:05Z");
        let (mut response, render) = rendered();
        apply(
            &mut response,
            &HeaderMap::new(),
            &render,
            shared,
            Variance::default(),
            Some(modified),
        );
        assert_eq!(
            response.headers()[LAST_MODIFIED],
            "Wed, 25 Nov 2026 15:04:05 GMT"
        );
        assert_eq!(response.status(), StatusCode::OK);

        let mut request = HeaderMap::new();
        request.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Wed, 25 Nov 2026 15:04:05 GMT"),
        );
        let (mut response, render) = rendered();
        apply(
            &mut response,
            &request,
            &render,
            shared,
            Variance::default(),
            Some(modified),
        );
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert!(!response.headers().contains_key(CONTENT_TYPE));

        request.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Wed, 25 Nov 2026 15:04:04 GMT"),
        );
        let (mut response, render) = rendered();
        apply(
            &mut response,
            &request,
            &render,
            shared,
            Variance::default(),
            Some(modified),
        );
        assert_eq!(response.status(), StatusCode::OK);

        // If-None-Match decides alone when present.
        request.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_static("Wed, 25 Nov 2026 15:04:05 GMT"),
        );
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        let (mut response, render) = rendered();
        apply(
            &mut response,
            &request,
            &render,
            shared,
            Variance::default(),
            Some(modified),
        );
        assert_eq!(response.status(), StatusCode::OK);

        let (mut response, render) = rendered();
        apply(
            &mut response,
            &HeaderMap::new(),
            &render,
            CachePolicy::Personalized,
            Variance::default(),
            Some(modified),
        );
        assert!(!response.headers().contains_key(LAST_MODIFIED));
    }

    #[test]
    fn variance_and_placeholders() {
        let shared = CachePolicy::Shared { max_age: 60 };
        let by_request = Variance {
            user_agent: true,
            client_address: true,
        };
        let (mut response, render) = rendered();
        response
            .headers_mut()
            .insert(CACHE_CONTROL, headers::cache_control(shared));
        apply(
            &mut response,
            &HeaderMap::new(),
            &render,
            shared,
            by_request,
            Some(SystemTime::now()),
        );
        assert_eq!(response.headers()["vary"], "User-Agent");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        assert!(!response.headers().contains_key(LAST_MODIFIED));

        let (mut response, render) = rendered();
        let render = render.with_image_fallback(Some("1 timeout".into()));
        apply(
            &mut response,
            &HeaderMap::new(),
            &render,
            shared,
            Variance::default(),
            Some(SystemTime::now()),
        );
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[IMAGE_FALLBACK], "1 timeout");
        assert!(!response.headers().contains_key("vary"));
    }
}
