//! One open of a block, without HTTP: the steps every route and the offline `render` command
//! share, each in its own file, data flowing down through them:
//!
//! 1. [`query`] — the URL's query, parsed once and bounded;
//! 2. [`verify`] — the subscriber id and its token (**tokens before context**);
//! 3. [`opener`] — who fetched (mail client, image proxy or machine, on what evidence; address);
//! 4. [`subscriber_context`] — the context, one round trip within the store deadline, or
//!    [`lock_on_open`] — what a locked block showed first;
//! 5. [`input`] — what the render sees, decided in one place, hence its render cache key (for
//!    a plain block, [`raw_key`] hashes the key from the context's stored text, so a cache hit
//!    parses no JSON);
//! 6. [`cached_render`] — the render cache, one render per key however many opens ask;
//! 7. [`render_job`] — the render off the async threads: [`block_render`]'s template step,
//!    the product [`photos`] (async), then its raster step.
//!
//! The open event is made right after verification and queued when the open is over, with the
//! variant it showed (never waited for); a test block's arm (`arms`), the block's `feeds` and a
//! results block's poll counts (`poll_results`) join the input before step 5. [`Pipeline::open_block`]
//! returns a typed outcome: the render and what it depended on, or an [`OpenError`] that the
//! HTTP layer turns into the block's fallback. [`click`] and [`pixel`] are the other two opens.

mod arms;
mod block_render;
mod cached_render;
mod click;
mod error;
mod feeds;
mod input;
mod local_time;
mod lock_on_open;
mod opener;
mod photos;
mod pixel;
mod poll_results;
mod query;
mod raw_key;
pub(crate) mod render_budget;
pub(crate) mod render_job;
mod report;
mod subscriber_context;
mod verify;
mod vote;

pub use block_render::render_block;
pub use error::{BlockRenderError, OpenError};
pub use input::{from_context, Reader, RenderInput, RequestDependence, TemplateInput};
pub use local_time::LocalTime;
pub use opener::Opener;
pub(crate) use poll_results::results as poll_results;
pub use report::{report, ArmReport, Report, TestReport};
pub use vote::{VoteError, Voted};

use crate::blocks::{Block, BlockKind, CachePolicy, Campaign, Catalog};
use crate::cache::{CachedRender, RenderCache};
use crate::clock::Clock;
use crate::context::{RawContextFields, SharedStore, SubscriberId};
use crate::events::{Event, EventKind, EventRecorder};
use crate::lock::SharedLocks;
use crate::metrics::Metrics;
use crate::render::{Fallback, Format};
use crate::signing::Signer;
use crate::sources::Sources;
use crate::tally::SharedTallies;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Everything an open needs, built once at start-up and shared by every request.
pub struct Pipeline {
    pub signer: Signer,
    /// Subscriber contexts (Redis or the embedded store).
    pub contexts: SharedStore,
    /// Lock-on-open storage (the same backend as `contexts`).
    pub locks: SharedLocks,
    /// Poll votes and test counts (the same backend as `contexts`).
    pub tallies: SharedTallies,
    /// Open and click events, written in the background.
    pub events: EventRecorder,
    pub catalog: Arc<Catalog>,
    pub cache: RenderCache,
    pub metrics: Arc<Metrics>,
    /// Bounds renders running at once, so a burst of cache misses queues (up to the deadline,
    /// then falls back) instead of stalling every other request; slow blocks share a lane of it.
    pub(crate) render_budget: Arc<render_budget::RenderBudget>,
    /// Product photos, geo-IP, mail-client rules and the shop's stores.
    pub sources: Arc<Sources>,
    /// "Now" for renders (the system clock; tests pin it).
    pub clock: Clock,
    pub limits: OpenLimits,
}

/// The time limits of one open.
#[derive(Debug, Clone, Copy)]
pub struct OpenLimits {
    /// The whole open, from request to answer (an image must never look slow).
    pub deadline: Duration,
    /// One store round trip (context, lock).
    pub store_timeout: Duration,
}

/// One image or HTML block asked for.
pub struct BlockOpen<'a> {
    pub campaign: &'a str,
    pub block: &'a str,
    pub format: Format,
    pub query: Option<&'a str>,
    pub opener: Opener,
}

/// The block an open names, found in the catalog.
pub struct FoundBlock {
    pub campaign: Arc<Campaign>,
    pub block: Arc<Block>,
    /// Served when the open fails (prepared at load time, so serving it cannot fail).
    pub fallback: Arc<Fallback>,
}

/// A rendered block and what its caching headers depend on.
pub struct Opened {
    pub render: Arc<CachedRender>,
    pub policy: CachePolicy,
    pub depends_on: RequestDependence,
    /// The start of the render's time bucket (`now` as the template saw it).
    pub rendered_for: DateTime<Utc>,
    /// When the campaign's current version was loaded.
    pub campaign_loaded_at: SystemTime,
}

/// What an open came to.
pub enum OpenOutcome {
    /// The URL names no block that serves this format: wrong for good.
    NotFound,
    Rendered(Opened),
    /// Anything else: the block's fallback with the reason.
    Failed {
        error: OpenError,
        fallback: Arc<Fallback>,
        scale: u8,
    },
}

impl Pipeline {
    /// The block `open` names, if it exists and serves `open.format`.
    pub fn find(&self, campaign: &str, block: &str, format: Format) -> Option<FoundBlock> {
        let (campaign, block) = self.catalog.find(campaign, block)?;
        if !serves_format(&block, format) {
            return None;
        }
        let fallback = campaign.fallback(&block.name).cloned()?;
        Some(FoundBlock {
            campaign,
            block,
            fallback,
        })
    }

    /// One open of an image or HTML block, start to end, within the open's deadline.
    pub async fn open_block(&self, open: BlockOpen<'_>) -> OpenOutcome {
        let deadline = Instant::now() + self.limits.deadline;
        let Some(found) = self.find(open.campaign, open.block, open.format) else {
            return OpenOutcome::NotFound;
        };
        let query = match query::parse(open.query) {
            Ok(query) => query,
            Err(error) => return self.failed(&found, error.into(), 1),
        };
        let scale = query.scale;
        match self.render_found(&found, open, query, deadline).await {
            Ok(opened) => OpenOutcome::Rendered(opened),
            Err(error) => self.failed(&found, error, scale),
        }
    }

    /// The metrics in the text format, with the cache sizes read now.
    pub async fn metrics_text(&self) -> String {
        self.metrics
            .cache_bytes
            .set(self.cache.weighted_size().await);
        let (tiles, glyphs) = self.catalog.renderer().rasterizer().kept_text_bytes();
        self.metrics.text_tile_bytes.set(tiles);
        self.metrics.glyph_bytes.set(glyphs);
        self.metrics
            .png_band_bytes
            .set(self.catalog.renderer().kept_png_bytes());
        self.metrics.encode()
    }

    /// The event of an open or click when it is attributed to a verified subscriber; anything
    /// else is only counted in `opentime_anonymous_total{kind,reason}`.
    fn attributed_event(
        &self,
        kind: EventKind,
        campaign: &str,
        block: &str,
        attribution: verify::Attribution,
        opener: &Opener,
    ) -> Option<Event> {
        match attribution {
            verify::Attribution::Subscriber(subscriber) => Some(Event::now(
                kind,
                campaign,
                block,
                Some(subscriber.as_str()),
                &opener.recorded_client(),
            )),
            verify::Attribution::Anonymous(reason) => {
                self.metrics.anonymous(kind.as_str(), reason);
                None
            }
        }
    }

    async fn render_found(
        &self,
        found: &FoundBlock,
        open: BlockOpen<'_>,
        mut query: query::BlockQuery,
        deadline: Instant,
    ) -> Result<Opened, OpenError> {
        let FoundBlock {
            campaign, block, ..
        } = found;
        verify::signed_query(
            &self.signer,
            &campaign.name,
            block,
            &mut query.template_query,
        )?;
        let subscriber = verify::subscriber(
            &self.signer,
            block,
            query.subscriber.as_deref(),
            query.token.as_deref(),
        )?;
        let attribution = verify::attribution(
            &self.signer,
            subscriber.as_ref(),
            query.subscriber.as_deref(),
            query.token.as_deref(),
        );
        // Recorded when this function returns, with the variant shown when there is one.
        let mut event = PendingEvent {
            events: &self.events,
            event: self.attributed_event(
                EventKind::Open,
                &campaign.name,
                &block.name,
                attribution,
                &open.opener,
            ),
        };
        if raw_key::applies(block) {
            return self
                .open_plain(found, &open, subscriber.as_ref(), query, deadline)
                .await;
        }
        let from_context = self.context_input(
            block,
            subscriber.as_ref(),
            query.template_query,
            &open.opener,
        );
        let mut input = match (&subscriber, block.lock_ttl) {
            (Some(subscriber), Some(ttl)) => {
                lock_on_open::input(
                    self,
                    &campaign.name,
                    block,
                    subscriber,
                    ttl,
                    &open.opener,
                    from_context,
                )
                .await?
            }
            _ => from_context.await?,
        };
        if let Some(arm) = self
            .arm(
                &campaign.name,
                block,
                subscriber.as_ref(),
                open.opener.is_person(),
            )
            .await
        {
            input.variant = Some(arm);
        }
        feeds::fetch(
            &self.sources.feeds,
            &self.metrics,
            campaign,
            block,
            &mut input,
            deadline,
        )
        .await?;
        if let Some(poll) = block.poll.as_deref().and_then(|p| campaign.poll(p)) {
            input.poll = Some(self.poll_results(&campaign.name, poll).await?);
        }
        let decided = RenderInput::decide(
            campaign,
            block,
            open.format,
            query.scale,
            input,
            &open.opener,
            &self.sources,
        )?;
        if let Some(event) = event.event.as_mut() {
            event.variant.clone_from(&decided.input.variant);
        }
        let rendered_for = decided.input.now;
        let depends_on = decided.depends_on;
        let job = || render_job::RenderJob {
            campaign: Arc::clone(campaign),
            block: Arc::clone(block),
            format: open.format,
            scale: query.scale,
            input: decided.input,
        };
        let render = cached_render::get_or_render(self, decided.key, deadline, job).await?;
        Ok(Opened {
            render,
            policy: block.cache,
            depends_on,
            rendered_for,
            campaign_loaded_at: campaign.loaded_at,
        })
    }

    /// The stored context fields of `subscriber` when `block` reads any (none otherwise).
    async fn raw_context(
        &self,
        block: &Block,
        subscriber: Option<&SubscriberId>,
    ) -> Result<RawContextFields, OpenError> {
        match (subscriber, block.reads_context()) {
            (Some(subscriber), true) => subscriber_context::load(self, block, subscriber).await,
            _ => Ok(RawContextFields::new()),
        }
    }

    /// The open of a plain block ([`raw_key`]): the key from the stored text, the cached
    /// render when there is one — nothing parsed, nothing cloned — else the render of the
    /// parsed fields, cached under that key.
    async fn open_plain(
        &self,
        found: &FoundBlock,
        open: &BlockOpen<'_>,
        subscriber: Option<&SubscriberId>,
        mut query: query::BlockQuery,
        deadline: Instant,
    ) -> Result<Opened, OpenError> {
        let FoundBlock {
            campaign, block, ..
        } = found;
        let fields = self.raw_context(block, subscriber).await?;
        let now = self.clock.now();
        let rendered_for = input::bucket_start(block, now);
        query
            .template_query
            .retain(|key, _| block.reads_query_key(key));
        let key = raw_key::key(
            campaign,
            block,
            (open.format, query.scale),
            subscriber.map(SubscriberId::as_str),
            rendered_for,
            &query.template_query,
            &fields,
        );
        let job = || {
            let parsed = raw_key::parse_read_fields(block, &fields);
            let input = TemplateInput::for_block(
                block,
                &parsed,
                subscriber.map(SubscriberId::as_str),
                now,
                query.template_query,
            );
            render_job::RenderJob {
                campaign: Arc::clone(campaign),
                block: Arc::clone(block),
                format: open.format,
                scale: query.scale,
                input,
            }
        };
        let render = cached_render::get_or_render(self, key, deadline, job).await?;
        Ok(Opened {
            render,
            policy: block.cache,
            depends_on: RequestDependence::default(),
            rendered_for,
            campaign_loaded_at: campaign.loaded_at,
        })
    }

    /// The template input from the subscriber's live context, with the opener's facts for
    /// blocks that declare them.
    async fn context_input(
        &self,
        block: &Block,
        subscriber: Option<&SubscriberId>,
        query: std::collections::BTreeMap<String, String>,
        opener: &Opener,
    ) -> Result<TemplateInput, OpenError> {
        let fields = raw_key::parse_read_fields(block, &self.raw_context(block, subscriber).await?);
        Ok(input::from_context(
            block,
            &fields,
            subscriber.map(SubscriberId::as_str),
            self.clock.now(),
            query,
            opener,
            &self.sources,
        ))
    }

    fn failed(&self, found: &FoundBlock, error: OpenError, scale: u8) -> OpenOutcome {
        self.metrics.fallback(error.reason());
        let (campaign, block) = (&found.campaign.name, &found.block.name);
        if error.is_operational() {
            tracing::warn!(%campaign, %block, reason = error.reason(), %error, "serving fallback");
        } else {
            tracing::debug!(%campaign, %block, reason = error.reason(), %error, "serving fallback");
        }
        OpenOutcome::Failed {
            error,
            fallback: found.fallback.clone(),
            scale,
        }
    }
}

/// An open's event, recorded when the open is over (whatever it came to), so it can carry
/// what the open decided (the variant shown).
struct PendingEvent<'a> {
    events: &'a EventRecorder,
    event: Option<Event>,
}

impl Drop for PendingEvent<'_> {
    fn drop(&mut self) {
        if let Some(event) = self.event.take() {
            self.events.record(event);
        }
    }
}

/// Whether a block can be served in `format` at all (otherwise the URL is wrong for good).
pub fn serves_format(block: &Block, format: Format) -> bool {
    match format {
        Format::Html => block.html_template.is_some(),
        Format::Png => matches!(block.kind, BlockKind::Image),
        Format::Gif => matches!(block.kind, BlockKind::Countdown),
    }
}
