//! `GET /click/{campaign}/{block}?s=&t=&i=N`: a 302 to the link of item N as the block showed
//! it to this subscriber — from the lock when the block is locked (so the link matches the
//! image even after the context changed), otherwise from the live context. Whatever goes wrong
//! (bad token, store down, no such item, a target off the allowed hosts) sends the person to
//! the block's `default_link`; never an error page, never a 5xx. Every click is an event.

use super::answer::{self, Body};
use super::block_route::{live_input, subscriber_for};
use super::locked::{self, Lookup};
use super::query;
use super::state::AppState;
use crate::blocks::links::{Links, Target};
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::events::{Event, EventKind};
use crate::lock::lock_key;
use crate::opener::Opener;
use crate::render::TemplateInput;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Response, StatusCode};

pub async fn serve(
    state: &AppState,
    campaign_name: &str,
    block_name: &str,
    raw_query: Option<&str>,
    opener: Opener,
) -> Response<Body> {
    let found = state.catalog.find(campaign_name, block_name);
    let Some((campaign, block, links)) =
        found.and_then(|(c, b)| b.links.clone().map(|links| (c, b, links)))
    else {
        return answer::plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such campaign or block, or the block has no links\n",
        );
    };
    let (target, subscriber, item) =
        choose_target(state, &campaign.name, &block, &links, raw_query, &opener).await;
    let mut event = Event::now(
        EventKind::Click,
        &campaign.name,
        &block.name,
        subscriber.as_ref().map(SubscriberId::as_str),
        opener,
    );
    event.item = item;
    event.link = Some(target.label());
    state.events.record(event);
    redirect(target.url())
        .or_else(|| redirect(&links.default))
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

/// The target, the verified subscriber (if any) and the item index asked for.
async fn choose_target(
    state: &AppState,
    campaign: &str,
    block: &Block,
    links: &Links,
    raw_query: Option<&str>,
    opener: &Opener,
) -> (Target, Option<SubscriberId>, Option<usize>) {
    let default = || Target::Default(links.default.clone());
    let Ok(mut query) = query::parse(raw_query) else {
        return (default(), None, None);
    };
    let item = query
        .extra
        .remove("i")
        .and_then(|i| i.parse::<usize>().ok());
    let Ok(subscriber) = subscriber_for(
        state,
        block,
        query.subscriber.as_deref(),
        query.token.as_deref(),
    ) else {
        return (default(), None, item);
    };
    let input = shown_input(
        state,
        campaign,
        block,
        subscriber.as_ref(),
        query.extra,
        opener,
    )
    .await;
    let target = match input {
        Some(input) => links.target(&input.to_tera_context(block), item),
        None => default(),
    };
    (target, subscriber, item)
}

/// What the block showed: the locked inputs, or the live ones.
async fn shown_input(
    state: &AppState,
    campaign: &str,
    block: &Block,
    subscriber: Option<&SubscriberId>,
    query: std::collections::BTreeMap<String, String>,
    opener: &Opener,
) -> Option<TemplateInput> {
    if let (Some(subscriber), Some(_)) = (subscriber, block.lock_ttl) {
        if let Lookup::Locked(input) =
            locked::stored(state, &lock_key(subscriber, campaign, &block.name)).await
        {
            return Some(input);
        }
    }
    live_input(state, block, subscriber, query, opener)
        .await
        .ok()
}
