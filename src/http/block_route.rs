//! `GET /img/{campaign}/{block}.{png|gif}` and `GET /html/{campaign}/{block}.html`: turns the
//! request into one call of the open pipeline (`crate::open`) and its outcome into the answer
//! ([`super::answer`]), with CORS for script readers. Nothing here can produce a 5xx.

use super::answer::{self, BlockTarget, Body};
use super::state::AppState;
use crate::open::{BlockOpen, OpenOutcome, Opener};
use crate::render::Format;
use hyper::{HeaderMap, Response};

/// Serves one block request. `file` is the last path segment, e.g. `cart.png`.
pub(super) async fn serve(
    state: &AppState,
    campaign: &str,
    file: &str,
    route_format: Format,
    query: Option<&str>,
    request_headers: &HeaderMap,
    opener: Opener,
) -> Response<Body> {
    let Some((block, format)) = split_file(file, route_format) else {
        return answer::not_found(route_format);
    };
    let open = BlockOpen {
        campaign,
        block,
        format,
        query,
        opener,
    };
    let target = BlockTarget {
        campaign,
        block,
        format,
    };
    let mut response = match state.pipeline.open_block(open).await {
        OpenOutcome::NotFound => return answer::not_found(route_format),
        OpenOutcome::Rendered(opened) => answer::rendered(&opened, &target, request_headers),
        OpenOutcome::Failed {
            error,
            fallback,
            scale,
        } => answer::failure(&error, &fallback, scale, &target),
    };
    state.cors.apply(response.headers_mut(), request_headers);
    response
}

/// `cart.png` → (`cart`, Png); the extension must belong to the route.
fn split_file(file: &str, route_format: Format) -> Option<(&str, Format)> {
    let (name, extension) = file.rsplit_once('.')?;
    let format = match (route_format, extension) {
        (Format::Html, "html") => Format::Html,
        (Format::Png | Format::Gif, "png") => Format::Png,
        (Format::Png | Format::Gif, "gif") => Format::Gif,
        _ => return None,
    };
    Some((name, format))
}
