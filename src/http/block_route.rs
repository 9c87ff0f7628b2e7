//! `GET /img/{campaign}/{block}.{png|gif}` and `GET /html/{campaign}/{block}.html`: the open.
//!
//! parse → token → open event (queued, never waited for) → context within the store deadline
//! and the opener's facts for blocks that declare them (client, location), or a lock-on-open
//! block's stored inputs ([`super::locked`]) → cache → render with remote photos (bounded,
//! within the request deadline) → answer (with the CDN refinements of [`cdn`] and CORS). Every step's failure is a [`BlockError`], which [`answer`] turns
//! into the block's fallback; nothing here can produce a 5xx.

use super::answer::{self, BlockTarget, Body};
use super::cdn::{self, Variance};
use super::locked;
use super::query::{self, QueryError};
use super::state::AppState;
use crate::blocks::{Block, Campaign};
use crate::cache::{CachedRender, RenderKey};
use crate::context::{self, ContextFields, StoreError, SubscriberId};
use crate::events::{Event, EventKind};
use crate::metrics::{FormatLabels, OutcomeLabels};
use crate::opener::{self, Opener};
use crate::render::live::{self, LiveRenderError, RenderJob};
use crate::render::{Format, RenderError, TemplateInput};
use hyper::{HeaderMap, Response};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// Why a block could not be rendered; each maps to one fallback reason.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("bad query: {0}")]
    BadQuery(#[from] QueryError),
    #[error("no subscriber (`s`) in the URL")]
    MissingSubscriber,
    #[error("bad subscriber id: {0}")]
    BadSubscriber(#[from] context::SubscriberIdError),
    #[error("missing or wrong token")]
    BadToken,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no context stored for this subscriber")]
    NoContext,
    #[error("{detail}")]
    Render {
        reason: &'static str,
        detail: String,
    },
    #[error("render capacity exhausted until the deadline")]
    Overloaded,
    #[error("deadline passed before the render finished")]
    Timeout,
    #[error("countdown: {0}")]
    Countdown(#[from] crate::countdown::CountdownError),
}

impl BlockError {
    /// The short reason sent in `X-Opentime-Fallback` and counted in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BlockError::BadQuery(_) => "bad-query",
            BlockError::MissingSubscriber => "missing-subscriber",
            BlockError::BadSubscriber(_) => "bad-subscriber",
            BlockError::BadToken => "bad-token",
            BlockError::Store(error) => error.reason(),
            BlockError::NoContext => "no-context",
            BlockError::Render { reason, .. } => reason,
            BlockError::Overloaded => "overload",
            BlockError::Timeout => "timeout",
            BlockError::Countdown(error) => error.reason(),
        }
    }
}

/// Errors raised inside the cache's single-flight render.
#[derive(Debug)]
enum RenderFailure {
    Render(RenderError),
    Overloaded,
    /// Rendered, but with placeholder photos: given to every waiting open, never cached.
    Degraded(Arc<CachedRender>),
}

/// A render and what its headers need besides the bytes.
struct BlockRender {
    render: Arc<CachedRender>,
    variance: Variance,
    last_modified: Option<SystemTime>,
}

/// Serves one block request. `file` is the last path segment, e.g. `cart.png`.
pub async fn serve(
    state: &Arc<AppState>,
    campaign_name: &str,
    file: &str,
    route_format: Format,
    query: Option<&str>,
    request_headers: &HeaderMap,
    opener: Opener,
) -> Response<Body> {
    let started = Instant::now();
    let deadline = started + state.config.deadline();
    let Some((block_name, format)) = split_file(file, route_format) else {
        return answer::not_found(route_format);
    };
    let Some((campaign, block)) = state.catalog.find(campaign_name, block_name) else {
        return answer::not_found(route_format);
    };
    if !serves_format(&block, format) {
        return answer::not_found(route_format);
    }
    let Some(fallback) = campaign.fallback(&block.name).cloned() else {
        return answer::not_found(route_format);
    };
    let scale_hint = query::parse(query).map(|q| q.scale).unwrap_or(1);
    let target = BlockTarget {
        campaign: &campaign.name,
        block: &block.name,
        format,
        scale: scale_hint,
    };
    let rendered = render_block(state, &campaign, &block, format, query, deadline, opener).await;
    let mut response = match rendered {
        Ok(done) => {
            let mut response =
                answer::rendered(&done.render, block.cache, &target, request_headers);
            cdn::apply(
                &mut response,
                request_headers,
                &done.render,
                block.cache,
                done.variance,
                done.last_modified,
            );
            response
        }
        Err(error) => {
            state.metrics.fallback(error.reason());
            match &error {
                BlockError::Render { .. }
                | BlockError::Store(_)
                | BlockError::Overloaded
                | BlockError::Timeout => {
                    tracing::warn!(campaign = %campaign.name, block = %block.name, reason = error.reason(), %error, "serving fallback")
                }
                _ => {
                    tracing::debug!(campaign = %campaign.name, block = %block.name, reason = error.reason(), %error, "serving fallback")
                }
            }
            answer::failure(&error, &fallback, &target)
        }
    };
    state.cors.apply(response.headers_mut(), request_headers);
    response
}

/// `cart.png` → (`cart`, Png); the extension must belong to the route.
fn split_file(file: &str, route_format: Format) -> Option<(&str, Format)> {
    let (name, extension) = file.rsplit_once('.')?;
    let format = match (route_format, extension) {
        (Format::Html, "html") => Format::Html,
        (Format::Png | Format::Gif, "png") => Format::Png,
        (Format::Png | Format::Gif, "gif") => Format::Gif,
        _ => return None,
    };
    Some((name, format))
}

/// Whether a block can be served in `format` at all (otherwise the URL is wrong for good).
fn serves_format(block: &Block, format: Format) -> bool {
    use crate::blocks::BlockKind;
    match format {
        Format::Html => block.html_template.is_some(),
        Format::Png => matches!(block.kind, BlockKind::Image),
        Format::Gif => matches!(block.kind, BlockKind::Countdown),
    }
}

async fn render_block(
    state: &Arc<AppState>,
    campaign: &Arc<Campaign>,
    block: &Arc<Block>,
    format: Format,
    raw_query: Option<&str>,
    deadline: Instant,
    opener: Opener,
) -> Result<BlockRender, BlockError> {
    let query = query::parse(raw_query)?;
    let subscriber = subscriber_for(
        state,
        block,
        query.subscriber.as_deref(),
        query.token.as_deref(),
    )?;
    state.events.record(Event::now(
        EventKind::Open,
        &campaign.name,
        &block.name,
        subscriber.as_ref().map(SubscriberId::as_str),
        opener,
    ));
    let live = live_input(state, block, subscriber.as_ref(), query.extra, &opener);
    let input = match (&subscriber, block.lock_ttl) {
        (Some(subscriber), Some(ttl)) => {
            locked::input(state, &campaign.name, block, subscriber, ttl, opener, live).await?
        }
        _ => live.await?,
    };
    let input = countdown_input(block, input, opener.first_frame_only())?;
    let variance = Variance::of(block, &input, state.sources.geo.is_some());
    let last_modified = Some(cdn::shared_last_modified(campaign.loaded_at, input.now));
    let key = RenderKey::new(
        &campaign.name,
        campaign.version,
        &block.name,
        format,
        query.scale,
        &input,
    );
    let render = render_cached(
        state,
        campaign,
        block,
        format,
        query.scale,
        input,
        key,
        deadline,
    )
    .await?;
    Ok(BlockRender {
        render,
        variance,
        last_modified,
    })
}

/// The template input from the subscriber's live context, with the opener's facts for blocks
/// that declare them.
pub(super) async fn live_input(
    state: &AppState,
    block: &Block,
    subscriber: Option<&SubscriberId>,
    query: std::collections::BTreeMap<String, String>,
    opener: &Opener,
) -> Result<TemplateInput, BlockError> {
    let fields = match (subscriber, block.reads_context()) {
        (Some(subscriber), true) => load_context(state, subscriber).await?,
        _ => ContextFields::new(),
    };
    let mut input = TemplateInput::for_block(
        block,
        &fields,
        subscriber.map(SubscriberId::as_str),
        state.clock.now(),
        query,
    );
    opener::extend_input(&mut input, block, opener, &state.sources);
    Ok(input)
}

/// A countdown's input: its deadline and language resolved (bad `until`, `tz` or `lang` are
/// errors, so the block's fallback), and written back as the only query the render sees, with
/// `first_frame` set for clients that show only a GIF's first frame
/// ([`Opener::first_frame_only`], decided from the User-Agent; `http::cdn` adds
/// `Vary: User-Agent` to countdown answers). The
/// render cache key then holds exactly (block version, deadline, language, first-frame flag,
/// the second of the open), and concurrent opens in one second render once. Other blocks'
/// inputs pass through.
fn countdown_input(
    block: &Block,
    mut input: TemplateInput,
    first_frame_only: bool,
) -> Result<TemplateInput, BlockError> {
    let Some(spec) = &block.countdown else {
        return Ok(input);
    };
    let mut request = spec.resolve(&input.ctx, &input.query)?;
    request.first_frame_only |= first_frame_only;
    input.query = request.canonical_query();
    Ok(input)
}

/// Checks the subscriber and token a block needs. Blocks that need no token still get the
/// subscriber id when one is given and valid (a shared block ignores it).
pub(super) fn subscriber_for(
    state: &AppState,
    block: &Block,
    subscriber: Option<&str>,
    token: Option<&str>,
) -> Result<Option<SubscriberId>, BlockError> {
    if !block.reads_context() {
        return Ok(None);
    }
    let raw = subscriber.ok_or(BlockError::MissingSubscriber)?;
    let subscriber = SubscriberId::parse(raw)?;
    if block.token_required && !token.is_some_and(|t| state.signer.verify(subscriber.as_str(), t)) {
        return Err(BlockError::BadToken);
    }
    Ok(Some(subscriber))
}

async fn load_context(
    state: &AppState,
    subscriber: &SubscriberId,
) -> Result<ContextFields, BlockError> {
    let started = Instant::now();
    let result = context::load_within(
        state.store.as_ref(),
        subscriber,
        state.config.store_timeout(),
    )
    .await;
    let outcome = match &result {
        Ok(fields) if fields.is_empty() => "empty",
        Ok(_) => "found",
        Err(error) => error.reason(),
    };
    state
        .metrics
        .store_seconds
        .get_or_create(&OutcomeLabels { outcome })
        .observe(started.elapsed().as_secs_f64());
    let fields = result?;
    if fields.is_empty() {
        return Err(BlockError::NoContext);
    }
    Ok(fields)
}

/// The cached render for `key`, or a fresh one: rendered once per key however many opens ask
/// at once, on the blocking pool, with bounded concurrency. The render runs in its own task,
/// so an open that gives up at its deadline still leaves the result in the cache.
#[allow(clippy::too_many_arguments)]
async fn render_cached(
    state: &Arc<AppState>,
    campaign: &Arc<Campaign>,
    block: &Arc<Block>,
    format: Format,
    scale: u8,
    input: TemplateInput,
    key: RenderKey,
    deadline: Instant,
) -> Result<Arc<CachedRender>, BlockError> {
    if let Some(hit) = state.cache.get(&key).await {
        state.metrics.cache_hits.inc();
        return Ok(hit);
    }
    let task_state = Arc::clone(state);
    let (campaign, block) = (Arc::clone(campaign), Arc::clone(block));
    let task = tokio::spawn(async move {
        let state = task_state;
        let render = render_off_thread(
            Arc::clone(&state),
            campaign,
            block,
            format,
            scale,
            input,
            deadline,
        );
        let result = state.cache.get_or_render(key, render).await;
        match &result {
            Ok((_, true)) => {
                state.metrics.cache_hits.inc();
            }
            Ok((_, false)) | Err(_) => {
                state.metrics.cache_misses.inc();
            }
        }
        state.metrics.cache_bytes.set(state.cache.weighted_size());
        result.map(|(render, _)| render)
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(Ok(render))) => Ok(render),
        Ok(Ok(Err(failure))) => Err(match failure.as_ref() {
            RenderFailure::Degraded(render) => return Ok(Arc::clone(render)),
            RenderFailure::Overloaded => BlockError::Overloaded,
            RenderFailure::Render(error) => BlockError::Render {
                reason: error.reason(),
                detail: error.to_string(),
            },
        }),
        Ok(Err(join_error)) => Err(BlockError::Render {
            reason: "render-error",
            detail: format!("render task failed: {join_error}"),
        }),
        Err(_) => Err(BlockError::Timeout),
    }
}

async fn render_off_thread(
    state: Arc<AppState>,
    campaign: Arc<Campaign>,
    block: Arc<Block>,
    format: Format,
    scale: u8,
    input: TemplateInput,
    deadline: Instant,
) -> Result<Arc<CachedRender>, RenderFailure> {
    let job = RenderJob {
        campaign,
        block,
        format,
        scale,
        input,
    };
    let result = live::render(
        Arc::clone(state.catalog.renderer()),
        &state.sources.photos,
        job,
        deadline,
        Some(&state.render_permits),
    )
    .await;
    match result {
        Ok(done) => {
            state
                .metrics
                .render_seconds
                .get_or_create(&FormatLabels {
                    format: format.as_str(),
                })
                .observe(done.cpu.as_secs_f64());
            for (_, failure) in done.images.failures() {
                state
                    .metrics
                    .image_placeholders
                    .get_or_create(&crate::metrics::ReasonLabels {
                        reason: failure.reason(),
                    })
                    .inc();
            }
            let image_fallback = done.images.fallback_header();
            let render =
                Arc::new(CachedRender::new(done.rendered).with_image_fallback(image_fallback));
            if render.image_fallback.is_some() {
                Err(RenderFailure::Degraded(render))
            } else {
                Ok(render)
            }
        }
        Err(LiveRenderError::Overloaded) => Err(RenderFailure::Overloaded),
        Err(LiveRenderError::Render(error)) => {
            if let RenderError::Template(inner) = &error {
                tracing::error!(error = %inner, "template failed to render");
            }
            Err(RenderFailure::Render(error))
        }
    }
}
