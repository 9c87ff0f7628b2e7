//! One open's render, start to end, for the server and for `opentime render` alike:
//! the template step (blocking pool) → product photos (async, all at once, within the
//! deadline) → the raster step (blocking pool). CPU steps hold a render permit when the caller bounds
//! concurrency; waiting for photos does not, so a slow image host cannot starve renders.

use super::block_render::{self, BlockRender, TemplateOutput};
use super::error::BlockRenderError;
use super::input::TemplateInput;
use super::photos;
use super::render_budget::{RenderBudget, RenderPermit};
use crate::blocks::{Block, Campaign};
use crate::render::image_slots;
use crate::render::{FetchedImages, Format, RenderError, Rendered, Renderer};
use crate::sources::product_photos::ProductPhotos;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Time kept back from the deadline for rasterizing after the photos.
const RASTER_RESERVE_MAX: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderJobError {
    #[error("render capacity exhausted until the deadline")]
    Overloaded,
    #[error("{0}")]
    Render(#[from] BlockRenderError),
}

/// What to render.
pub(crate) struct RenderJob {
    pub campaign: Arc<Campaign>,
    pub block: Arc<Block>,
    pub format: Format,
    pub scale: u8,
    pub input: TemplateInput,
}

/// A finished render with the photos it asked for (and the placeholders it got instead).
pub(crate) struct FinishedRender {
    pub rendered: Rendered,
    pub images: FetchedImages,
    /// Time spent on the CPU steps (not waiting for photos or permits).
    pub cpu: Duration,
}

/// Renders `job`. `budget` bounds concurrent CPU steps (the server's render budget, with
/// `heavy` for blocks that render slowly); `None` renders without a bound (the offline command).
pub(crate) async fn run(
    renderer: Arc<Renderer>,
    photos: &ProductPhotos,
    job: RenderJob,
    deadline: Instant,
    budget: Option<(&RenderBudget, bool)>,
) -> Result<FinishedRender, RenderJobError> {
    let RenderJob {
        campaign,
        block,
        format,
        scale,
        input,
    } = job;
    let permit = acquire(budget, deadline).await?;
    let started = Instant::now();
    let (template_renderer, template_block) = (Arc::clone(&renderer), Arc::clone(&block));
    let (output, slots) = offload(move || {
        let _permit = permit;
        let output = block_render::template_output(BlockRender {
            renderer: &template_renderer,
            campaign: &campaign,
            block: &template_block,
            format,
            scale,
            input: &input,
        })?;
        let slots = match &output {
            TemplateOutput::Svg(svg) => image_slots::find_slots(svg, template_block.width, scale),
            TemplateOutput::Html(_) | TemplateOutput::Done(_) => Vec::new(),
        };
        Ok((output, slots))
    })
    .await?;
    let mut cpu = started.elapsed();

    let fetched = if slots.is_empty() {
        FetchedImages::default()
    } else {
        let now = Instant::now();
        let reserve = (deadline.saturating_duration_since(now) / 4).min(RASTER_RESERVE_MAX);
        photos::fetch(photos, slots, deadline.checked_sub(reserve).unwrap_or(now)).await
    };

    let permit = acquire(budget, deadline).await?;
    let started = Instant::now();
    let fetched = Arc::new(fetched);
    let raster_images = Arc::clone(&fetched);
    let rendered = offload(move || {
        let _permit = permit;
        block_render::finish(&renderer, output, &block, format, scale, raster_images)
    })
    .await?;
    cpu += started.elapsed();
    Ok(FinishedRender {
        rendered,
        images: Arc::unwrap_or_clone(fetched),
        cpu,
    })
}

async fn acquire(
    budget: Option<(&RenderBudget, bool)>,
    deadline: Instant,
) -> Result<Option<RenderPermit>, RenderJobError> {
    let Some((budget, heavy)) = budget else {
        return Ok(None);
    };
    match budget.acquire(heavy, deadline).await {
        Some(permit) => Ok(Some(permit)),
        None => Err(RenderJobError::Overloaded),
    }
}

/// Runs CPU-bound work on the blocking pool; a panic there is a render error, not a crash.
async fn offload<T, F>(work: F) -> Result<T, RenderJobError>
where
    F: FnOnce() -> Result<T, BlockRenderError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            BlockRenderError::from(RenderError::Svg(format!("render thread failed: {e}")))
        })?
        .map_err(RenderJobError::Render)
}
