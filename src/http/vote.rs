//! `GET /vote/{campaign}/{poll}/{option}?s=&t=`: one `Pipeline::vote` call, then a 302 to the
//! poll's thank-you link. A wrong URL is a 4xx with its reason; a store that cannot take the
//! vote a 503 (the voter may click again).

use super::answer::{self, Body};
use super::state::AppState;
use crate::open::{Opener, VoteError};
use hyper::header::{HeaderValue, CACHE_CONTROL, LOCATION};
use hyper::{Response, StatusCode};

pub(super) async fn serve(
    state: &AppState,
    campaign: &str,
    poll: &str,
    option: &str,
    raw_query: Option<&str>,
    opener: Opener,
) -> Response<Body> {
    let voted = state
        .pipeline
        .vote(campaign, poll, option, raw_query, &opener)
        .await;
    let mut response = match voted {
        Ok(voted) => match HeaderValue::from_str(&voted.thank_you) {
            Ok(location) => {
                let mut response = answer::plain(
                    StatusCode::FOUND,
                    "text/plain; charset=utf-8",
                    "thank you\n",
                );
                response.headers_mut().insert(LOCATION, location);
                response
            }
            Err(_) => answer::plain(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no usable thank-you link\n",
            ),
        },
        Err(error) => {
            let status = match error {
                VoteError::NotFound => StatusCode::NOT_FOUND,
                VoteError::BadQuery(_) => StatusCode::BAD_REQUEST,
                VoteError::BadToken => StatusCode::FORBIDDEN,
                VoteError::Store(_) => {
                    tracing::warn!(%error, "vote not stored");
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            answer::plain(status, "text/plain; charset=utf-8", format!("{error}\n"))
        }
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
