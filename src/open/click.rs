//! A click-through: the link of item N as the block showed it to this subscriber — from the
//! lock when the block is locked (so the link matches the image even after the context
//! changed), otherwise from the context now. Whatever goes wrong (bad token, store down, no
//! such item, a target off the allowed hosts) gives the block's `default_link`. Every click is
//! an event; a machine's click (a security scanner following every link) is redirected like any
//! other but recorded as a machine's, so it never counts as a person's click.
//!
//! A block with variants sends the click to the link of the variant that open showed: its
//! test arm (recorded per subscriber, and the click counted for the arm once, after a counted
//! open), or the variant its rules pick from the same inputs as the image.

use super::error::OpenError;
use super::input::TemplateInput;
use super::lock_on_open::{self, Lookup};
use super::opener::Opener;
use super::verify::Attribution;
use super::{feeds, query, verify, Pipeline};
use crate::blocks::links::{Links, Target};
use crate::blocks::Block;
use crate::context::SubscriberId;
use crate::events::EventKind;
use crate::lock::lock_key;
use crate::tally::{ArmMark, CLICKED, HUMAN_OPEN};

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
        let (target, attribution, item, variant) = self
            .choose_target(&campaign.name, &block, &links, raw_query, &opener)
            .await;
        if let Some(mut event) = self.attributed_event(
            EventKind::Click,
            &campaign.name,
            &block.name,
            attribution,
            &opener,
        ) {
            event.item = item;
            event.link = Some(target.label());
            event.variant = variant;
            self.events.record(event);
        }
        Some(ClickTarget {
            url: target.url().to_owned(),
            default: links.default.clone(),
        })
    }

    /// The target, who the click is attributed to, the item index asked for and the
    /// variant the open showed.
    async fn choose_target(
        &self,
        campaign: &str,
        block: &Block,
        links: &Links,
        raw_query: Option<&str>,
        opener: &Opener,
    ) -> (Target, Attribution, Option<usize>, Option<String>) {
        let default = || Target::Default(links.default.clone());
        let Ok(mut query) = query::parse(raw_query) else {
            return (default(), Attribution::Anonymous("bad-query"), None, None);
        };
        let item = query
            .template_query
            .remove("i")
            .and_then(|i| i.parse::<usize>().ok());
        let subscriber = match verify::subscriber(
            &self.signer,
            block,
            query.subscriber.as_deref(),
            query.token.as_deref(),
        ) {
            Ok(subscriber) => subscriber,
            Err(OpenError::MissingSubscriber) => {
                return (
                    default(),
                    Attribution::Anonymous("no-subscriber"),
                    item,
                    None,
                )
            }
            Err(_) => return (default(), Attribution::Anonymous("bad-token"), item, None),
        };
        let (query_subscriber, query_token) = (query.subscriber, query.token);
        let input = self
            .shown_input(
                campaign,
                block,
                subscriber.as_ref(),
                query.template_query,
                opener,
            )
            .await;
        let variant = match &input {
            Some(input) => {
                self.clicked_variant(campaign, block, subscriber.as_ref(), input.clone(), opener)
                    .await
            }
            None => None,
        };
        let variant_link = variant
            .as_deref()
            .and_then(|name| block.variants.as_ref()?.get(name)?.link.clone());
        let target = match (variant_link, input) {
            (Some(link), _) => Target::Variant(link),
            (None, Some(input)) => links.target(&input.to_tera_context(block), item),
            (None, None) => default(),
        };
        let attribution = verify::attribution(
            &self.signer,
            subscriber.as_ref(),
            query_subscriber.as_deref(),
            query_token.as_deref(),
        );
        (target, attribution, item, variant)
    }

    /// The variant the open of this click showed: the subscriber's test arm (counting a
    /// person's click once), or what the rules pick from the open's inputs and feeds now.
    async fn clicked_variant(
        &self,
        campaign: &str,
        block: &Block,
        subscriber: Option<&SubscriberId>,
        mut input: TemplateInput,
        opener: &Opener,
    ) -> Option<String> {
        let variants = block.variants.as_ref()?;
        if variants.is_test() {
            let mark = ArmMark {
                candidate: None,
                flag: opener.is_person().then_some(CLICKED),
                needs: Some(HUMAN_OPEN),
                ttl: std::time::Duration::from_secs(1),
            };
            let record = self
                .tallies
                .mark_arm(subscriber?, campaign, &block.name, mark)
                .await
                .ok()??;
            if record.flagged_now {
                let counter = super::arms::clicks_counter(&record.arm);
                if let Err(error) = self.tallies.count(campaign, &block.name, &counter).await {
                    tracing::warn!(%error, "test click not counted");
                }
            }
            return Some(record.arm);
        }
        if input.variant.is_none() {
            let found = self.catalog.campaign(campaign)?;
            let deadline = tokio::time::Instant::now() + self.limits.deadline;
            if feeds::fetch(
                &self.sources.feeds,
                &self.metrics,
                &found,
                block,
                &mut input,
                deadline,
            )
            .await
            .is_err()
            {
                return None;
            }
            super::input::choose_variant(block, &mut input);
        }
        input.variant
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
                return Some(*input);
            }
        }
        self.context_input(block, subscriber, query, opener)
            .await
            .ok()
    }
}
