//! The tracking pixel's open: a pixel event is recorded only when the campaign exists and a
//! subscriber is named with the right token. A pixel without a subscriber (`/open/demo.gif`)
//! or with a forged one is only counted (`opentime_pixel_anonymous_total{reason}`): anyone can
//! fetch such a URL in a loop, and as events those fetches would fill the event queue and
//! push out real opens. The answer is always the pixel, whatever happens here.

use super::opener::Opener;
use super::{query, verify, Pipeline};
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
        match subscriber {
            Some(Some(subscriber)) => self.events.record(Event::now(
                EventKind::Pixel,
                &campaign.name,
                "",
                Some(subscriber.as_str()),
                &opener.recorded_client(),
            )),
            Some(None) => self.metrics.pixel_anonymous("no-subscriber"),
            None => self.metrics.pixel_anonymous("bad-token"),
        }
        true
    }
}
