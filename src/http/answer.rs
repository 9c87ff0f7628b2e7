//! Turns the outcome of an open into an HTTP response — the one place where every outcome is
//! mapped to its answer (the caching headers of each come from [`super::headers`]):
//! - rendered → 200, or 304 when the client's copy is current;
//! - any failure on an image route → 200 with the block's fallback and
//!   `X-Opentime-Fallback: <reason>` (an email image must never be broken);
//! - a malformed query on the HTML route → 400 with the reason;
//! - an unknown campaign, block or format → 404 (a 1×1 transparent PNG on image routes).

use super::headers;
use crate::open::{OpenError, Opened};
use crate::render::{Fallback, Format};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Response, StatusCode};
use std::sync::OnceLock;

pub(super) type Body = Full<Bytes>;

/// Where a block was asked for, for headers and fallbacks.
pub(super) struct BlockTarget<'a> {
    pub campaign: &'a str,
    pub block: &'a str,
    pub format: Format,
}

/// A plain response with a body and content type, never stored by caches.
pub(super) fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let body = body.into();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, headers::no_store());
    response
}

/// 404 for a block URL that names nothing: on image routes a transparent pixel, so even a
/// wrong URL shows no broken-image icon.
pub(super) fn not_found(format: Format) -> Response<Body> {
    match format {
        Format::Html => plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such campaign or block\n",
        ),
        Format::Png | Format::Gif => plain(
            StatusCode::NOT_FOUND,
            "image/png",
            transparent_pixel().clone(),
        ),
    }
}

fn transparent_pixel() -> &'static Bytes {
    static PIXEL: OnceLock<Bytes> = OnceLock::new();
    PIXEL.get_or_init(crate::render::transparent_pixel_png)
}

/// A rendered block: 200 with its bytes, or 304 when the client already has them.
pub(super) fn rendered(
    opened: &Opened,
    target: &BlockTarget<'_>,
    request_headers: &HeaderMap,
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let not_modified = headers::for_render(
        opened,
        target.campaign,
        target.block,
        request_headers,
        response.headers_mut(),
    );
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    } else {
        let render = &opened.render;
        *response.body_mut() = Full::new(render.bytes.clone());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(render.content_type));
    }
    response
}

/// The answer to a failed open: the block's fallback at the asked `scale`.
pub(super) fn failure(
    error: &OpenError,
    fallback: &Fallback,
    scale: u8,
    target: &BlockTarget<'_>,
) -> Response<Body> {
    if target.format == Format::Html {
        if let OpenError::BadQuery(reason) = error {
            return plain(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                format!("bad query: {reason}\n"),
            );
        }
    }
    let (body, content_type) = match target.format {
        Format::Html => (fallback.html.clone(), "text/html; charset=utf-8"),
        Format::Png | Format::Gif => (
            fallback.image_for_scale(scale).clone(),
            fallback.content_type,
        ),
    };
    let mut response = plain(StatusCode::OK, content_type, body);
    headers::for_fallback(
        response.headers_mut(),
        error.reason(),
        target.campaign,
        target.block,
    );
    response
}

/// For HEAD: the same status and headers with no body, `Content-Length` kept.
pub(super) fn strip_body_for_head(response: Response<Body>) -> Response<Body> {
    use hyper::body::Body as _;
    let (mut parts, body) = response.into_parts();
    let length = body.size_hint().exact().unwrap_or(0);
    if parts.status != StatusCode::NOT_MODIFIED {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}
