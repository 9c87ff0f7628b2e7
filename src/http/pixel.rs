//! `GET /open/{campaign}.gif?s=&t=`: the 1×1 transparent tracking pixel. Always the pixel
//! (`no-store`, so every open reaches us); the open pipeline records the pixel event
//! (`crate::open::pixel`).

use super::answer::{self, Body};
use super::state::AppState;
use crate::open::Opener;
use crate::render::TRANSPARENT_GIF;
use hyper::{Response, StatusCode};

pub(super) fn serve(
    state: &AppState,
    file: &str,
    raw_query: Option<&str>,
    opener: Opener,
) -> Response<Body> {
    let known = file
        .strip_suffix(".gif")
        .is_some_and(|campaign| state.pipeline.pixel(campaign, raw_query, opener));
    let status = if known {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    answer::plain(status, "image/gif", &TRANSPARENT_GIF[..])
}
