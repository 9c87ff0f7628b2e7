//! The tracking pixel's open: a pixel event is recorded when the campaign exists and, if a
//! subscriber is named, its token is right (a forged URL records nothing). The answer is always
//! the pixel, whatever happens here.

use super::opener::Opener;
use super::{query, verify, Pipeline};
use crate::context::SubscriberId;
use crate::events::{Event, EventKind};

impl Pipeline {
    /// Records the pixel open of `campaign`; returns whether the campaign exists.
    pub fn pixel(&self, campaign: &str, raw_query: Option<&str>, opener: Opener) -> bool {
        let Some(campaign) = self.catalog.campaign(campaign) else {
            return false;
        };
        let subscriber = query::parse(raw_query).ok().and_then(|query| {
            verify::named_subscriber(
                &self.signer,
                query.subscriber.as_deref(),
                query.token.as_deref(),
            )
        });
        if let Some(subscriber) = subscriber {
            self.events.record(Event::now(
                EventKind::Pixel,
                &campaign.name,
                "",
                subscriber.as_ref().map(SubscriberId::as_str),
                opener.client,
                opener.prefetch,
            ));
        }
        true
    }
}
