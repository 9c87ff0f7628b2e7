//! `GET /click/{campaign}/{block}?s=&t=&i=N`: a 302 to the link the image showed this
//! subscriber (chosen by the open pipeline, `crate::open::click`), else the block's default;
//! never an error page, never a 5xx.

use super::answer::{self, Body};
use super::state::AppState;
use crate::open::Opener;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

pub(super) async fn serve(
    state: &AppState,
    campaign: &str,
    block: &str,
    raw_query: Option<&str>,
    opener: Opener,
) -> Response<Body> {
    let Some(target) = state
        .pipeline
        .click(campaign, block, raw_query, opener)
        .await
    else {
        return answer::plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such campaign or block, or the block has no links\n",
        );
    };
    redirect(&target.url)
        .or_else(|| redirect(&target.default))
        .unwrap_or_else(|| {
            answer::plain(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no usable link\n",
            )
        })
}

fn redirect(url: &str) -> Option<Response<Body>> {
    let location = HeaderValue::from_str(url).ok()?;
    let mut response = answer::plain(
        StatusCode::FOUND,
        "text/plain; charset=utf-8",
        "redirecting\n",
    );
    response.headers_mut().insert(LOCATION, location);
    Some(response)
}
