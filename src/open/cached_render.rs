//! The render cache on the open path: the cached render for a key, or a fresh one — rendered
//! once per key however many opens ask at once, with bounded concurrency. The render runs in
//! its own task, so an open that gives up at its deadline still leaves the result in the
//! cache. A render with placeholder photos is given to the waiting opens but never cached.

use super::error::OpenError;
use super::render_job::{self, RenderJob, RenderJobError};
use super::Pipeline;
use crate::cache::{CachedRender, RenderKey};
use crate::metrics::{FormatLabels, ReasonLabels};
use std::sync::Arc;
use tokio::time::Instant;

/// Errors raised inside the cache's single-flight render.
#[derive(Debug)]
enum RenderFailure {
    Render(super::BlockRenderError),
    Overloaded,
    /// Rendered, but with placeholder photos: given to every waiting open, never cached.
    Degraded(Arc<CachedRender>),
}

/// The render for `key`; `job` makes what to render, called on a miss only (a hit clones
/// nothing).
pub(super) async fn get_or_render(
    pipeline: &Pipeline,
    key: RenderKey,
    deadline: Instant,
    job: impl FnOnce() -> RenderJob,
) -> Result<Arc<CachedRender>, OpenError> {
    if let Some(hit) = pipeline.cache.get(&key).await {
        pipeline.metrics.cache_hits.inc();
        return Ok(hit);
    }
    let (cache, metrics) = (pipeline.cache.clone(), Arc::clone(&pipeline.metrics));
    let render = render_off_thread(pipeline, job(), deadline);
    let task = tokio::spawn(async move {
        let result = cache.get_or_render(key, render).await;
        match &result {
            Ok((_, true)) => {
                metrics.cache_hits.inc();
            }
            Ok((_, false)) | Err(_) => {
                metrics.cache_misses.inc();
            }
        }
        result.map(|(render, _)| render)
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(Ok(render))) => Ok(render),
        Ok(Ok(Err(failure))) => Err(match failure.as_ref() {
            RenderFailure::Degraded(render) => return Ok(Arc::clone(render)),
            RenderFailure::Overloaded => OpenError::Overloaded,
            RenderFailure::Render(error) => OpenError::Render {
                reason: error.reason(),
                detail: error.to_string(),
            },
        }),
        Ok(Err(join_error)) => Err(OpenError::Render {
            reason: "render-error",
            detail: format!("render task failed: {join_error}"),
        }),
        Err(_) => Err(OpenError::Timeout),
    }
}

/// The render future handed to the cache: owns everything it needs, so it can finish after
/// the open that started it has given up.
fn render_off_thread(
    pipeline: &Pipeline,
    job: RenderJob,
    deadline: Instant,
) -> impl std::future::Future<Output = Result<Arc<CachedRender>, RenderFailure>> + Send + 'static {
    let renderer = Arc::clone(pipeline.catalog.renderer());
    let photos = pipeline.sources.photos.clone();
    let budget = Arc::clone(&pipeline.render_budget);
    let metrics = Arc::clone(&pipeline.metrics);
    async move {
        let (format, subscriber) = (job.format, job.input.subscriber.clone());
        let (campaign, block) = (job.campaign.name.clone(), job.block.name.clone());
        let heavy = budget.is_heavy(&campaign, &block);
        let started = std::time::Instant::now();
        let result =
            render_job::run(renderer, &photos, job, deadline, Some((&budget, heavy))).await;
        match result {
            Ok(done) => {
                budget.record(&campaign, &block, done.cpu);
                metrics
                    .render_seconds
                    .get_or_create(&FormatLabels {
                        format: format.as_str(),
                    })
                    .observe(done.cpu.as_secs_f64());
                for (_, failure) in done.images.failures() {
                    metrics
                        .image_placeholders
                        .get_or_create(&ReasonLabels {
                            reason: failure.reason(),
                        })
                        .inc();
                }
                let image_fallback = done.images.fallback_header();
                let render = Arc::new(
                    CachedRender::new(done.rendered)
                        .with_image_fallback(image_fallback)
                        .for_subscriber(subscriber),
                );
                if render.image_fallback.is_some() {
                    Err(RenderFailure::Degraded(render))
                } else {
                    Ok(render)
                }
            }
            Err(RenderJobError::Overloaded) => Err(RenderFailure::Overloaded),
            Err(RenderJobError::Render(error)) => {
                // A failed render counts with its wall time (no CPU split is known then).
                budget.record(&campaign, &block, started.elapsed());
                if let super::BlockRenderError::Template(inner) = &error {
                    tracing::error!(error = %inner, "template failed to render");
                }
                Err(RenderFailure::Render(error))
            }
        }
    }
}
