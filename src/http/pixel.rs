//! `GET /open/{campaign}.gif?s=&t=`: the 1×1 transparent tracking pixel. Always the pixel
//! (`no-store`, so every open reaches us); a pixel event is recorded when the campaign exists
//! and, if a subscriber is named, its token is right (a forged URL records nothing).

use super::answer::{self, Body};
use super::query;
use super::state::AppState;
use crate::context::SubscriberId;
use crate::events::{Event, EventKind};
use crate::opener::Opener;
use crate::render::TRANSPARENT_GIF;
use hyper::{Response, StatusCode};

pub fn serve(
    state: &AppState,
    file: &str,
    raw_query: Option<&str>,
    opener: Opener,
) -> Response<Body> {
    let campaign = file
        .strip_suffix(".gif")
        .and_then(|name| state.catalog.campaign(name));
    let Some(campaign) = campaign else {
        return answer::plain(StatusCode::NOT_FOUND, "image/gif", &TRANSPARENT_GIF[..]);
    };
    let subscriber =
        query::parse(raw_query)
            .ok()
            .and_then(|query| match (query.subscriber, query.token) {
                (None, _) => Some(None),
                (Some(raw), Some(token)) => SubscriberId::parse(&raw)
                    .ok()
                    .filter(|s| state.signer.verify(s.as_str(), &token))
                    .map(Some),
                (Some(_), None) => None,
            });
    if let Some(subscriber) = subscriber {
        state.events.record(Event::now(
            EventKind::Pixel,
            &campaign.name,
            "",
            subscriber.as_ref().map(SubscriberId::as_str),
            opener,
        ));
    }
    answer::plain(StatusCode::OK, "image/gif", &TRANSPARENT_GIF[..])
}
