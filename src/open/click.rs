//! A click-through: the link of item N as the block showed it to this subscriber — from the
//! lock when the block is locked (so the link matches the image even after the context
//! changed), otherwise from the context now. Whatever goes wrong (bad token, store down, no
//! such item, a target off the allowed hosts) gives the block's `default_link`. Every click is
//! an event; a machine's click (a security scanner following every link) is redirected like any
//! other but recorded as a machine's, so it never counts as a person's click.

use super::input::TemplateInput;
use super::lock_on_open::{self, Lookup};
use super::opener::Opener;
use super::{query, verify, Pipeline};
use crate::blocks::links::{Links, Target};
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::events::{Event, EventKind};
use crate::lock::lock_key;

/// Where a click goes: the chosen link, then the block's default.
pub struct ClickTarget {
    pub url: String,
    pub default: String,
}

impl Pipeline {
    /// Chooses the link for a click on `block` of `campaign` and records the click; `None`
    /// when the campaign or block does not exist or the block has no links.
    pub async fn click(
        &self,
        campaign: &str,
        block: &str,
        raw_query: Option<&str>,
        opener: Opener,
    ) -> Option<ClickTarget> {
        let (campaign, block) = self.catalog.find(campaign, block)?;
        let links = block.links.clone()?;
        let (target, subscriber, item) = self
            .choose_target(&campaign.name, &block, &links, raw_query, &opener)
            .await;
        let mut event = Event::now(
            EventKind::Click,
            &campaign.name,
            &block.name,
            subscriber.as_ref().map(SubscriberId::as_str),
            &opener.recorded_client(),
        );
        event.item = item;
        event.link = Some(target.label());
        self.events.record(event);
        Some(ClickTarget {
            url: target.url().to_owned(),
            default: links.default.clone(),
        })
    }

    /// The target, the verified subscriber (if any) and the item index asked for.
    async fn choose_target(
        &self,
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
            .template_query
            .remove("i")
            .and_then(|i| i.parse::<usize>().ok());
        let Ok(subscriber) = verify::subscriber(
            &self.signer,
            block,
            query.subscriber.as_deref(),
            query.token.as_deref(),
        ) else {
            return (default(), None, item);
        };
        let input = self
            .shown_input(
                campaign,
                block,
                subscriber.as_ref(),
                query.template_query,
                opener,
            )
            .await;
        let target = match input {
            Some(input) => links.target(&input.to_tera_context(block), item),
            None => default(),
        };
        (target, subscriber, item)
    }

    /// What the block showed: the locked inputs, or the context's now.
    async fn shown_input(
        &self,
        campaign: &str,
        block: &Block,
        subscriber: Option<&SubscriberId>,
        query: std::collections::BTreeMap<String, String>,
        opener: &Opener,
    ) -> Option<TemplateInput> {
        if let (Some(subscriber), Some(_)) = (subscriber, block.lock_ttl) {
            let key = lock_key(subscriber, campaign, &block.name);
            if let Lookup::Locked(input) = lock_on_open::stored(self, &key).await {
                return Some(input);
            }
        }
        self.context_input(block, subscriber, query, opener)
            .await
            .ok()
    }
}
