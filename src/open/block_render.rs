//! A block rendered for one input, synchronously, in two steps:
//! - the template step: the suppressed variant when the block is suppressed for this input
//!   (`crate::blocks::suppress`; decided from the same input as the render, so the render cache
//!   keeps each variant apart), else Tera → SVG or HTML, or a countdown's whole GIF;
//! - the raster step: SVG → PNG with the product photos fetched between the two.
//!
//! [`super::render_job`] runs the steps off the async threads with the photos in between;
//! `opentime check`, the golden tests and the benches call [`render_block`] directly.

use super::error::BlockRenderError;
use super::input::TemplateInput;
use crate::blocks::suppress::Instead;
use crate::blocks::variants::Shows;
use crate::blocks::{Block, Campaign};
use crate::countdown::{CountdownBlock, CountdownError, CountdownOpen};
use crate::render::{
    transparent_png, FetchedImages, Format, RenderError, Rendered, Renderer, TRANSPARENT_GIF,
};
use bytes::Bytes;
use std::sync::Arc;

/// A template filled in, before rasterizing.
#[derive(Debug, Clone)]
pub(super) enum TemplateOutput {
    Svg(String),
    Html(Vec<u8>),
    /// Already finished (a suppressed variant, a countdown's GIF).
    Done(Rendered),
}

/// One block to render: which, in which format and at which scale (1 = the declared size),
/// for which input, with the renderer's fonts and images.
#[derive(Clone, Copy)]
pub(super) struct BlockRender<'a> {
    pub renderer: &'a Renderer,
    pub campaign: &'a Campaign,
    pub block: &'a Block,
    pub format: Format,
    pub scale: u8,
    pub input: &'a TemplateInput,
}

/// Renders `block` of `campaign` in `format` at `scale` (1 = the declared size) with no
/// product photos (their slots draw nothing); [`super::render_job`] fetches them.
pub fn render_block(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    format: Format,
    scale: u8,
    input: &TemplateInput,
) -> Result<Rendered, BlockRenderError> {
    let job = BlockRender {
        renderer,
        campaign,
        block,
        format,
        scale,
        input,
    };
    let output = template_output(job)?;
    finish(renderer, output, block, format, scale, Arc::default())
}

/// The first step: the block's template filled in (SVG or HTML text), or the finished
/// suppressed variant when the block is suppressed for this input, or a countdown's GIF.
pub(super) fn template_output(job: BlockRender<'_>) -> Result<TemplateOutput, BlockRenderError> {
    let BlockRender {
        renderer,
        campaign,
        block,
        format,
        scale,
        input,
    } = job;
    match suppressed_variant(job)? {
        Some(Suppressed::Finished(rendered)) => return Ok(TemplateOutput::Done(rendered)),
        Some(Suppressed::Template(variant)) => {
            let rendered = render_block(renderer, campaign, &variant, format, scale, input)?;
            return Ok(TemplateOutput::Done(rendered));
        }
        None => {}
    }
    let shown = match shown_variant(job)? {
        Shown::Block => None,
        Shown::Finished(rendered) => return Ok(TemplateOutput::Done(rendered)),
        Shown::Variant(variant) => Some(variant),
    };
    let block = shown.as_deref().unwrap_or(block);
    let unsupported = |format| BlockRenderError::Unsupported {
        block: block.name.clone(),
        format,
    };
    match format {
        Format::Html => {
            let template = block
                .html_template
                .as_deref()
                .ok_or_else(|| unsupported("html"))?;
            let html = campaign.render_template(template, &input.to_tera_context(block))?;
            Ok(TemplateOutput::Html(html.into_bytes()))
        }
        Format::Png => {
            let template = block
                .template
                .as_deref()
                .ok_or_else(|| unsupported("png"))?;
            Ok(TemplateOutput::Svg(campaign.render_template(
                template,
                &input.to_tera_context(block),
            )?))
        }
        // A countdown is finished in this step: its frames are drawn and encoded together.
        Format::Gif => {
            let countdown = CountdownBlock {
                name: &block.name,
                tera: campaign.tera(),
                template: block
                    .template
                    .as_deref()
                    .ok_or_else(|| unsupported("gif"))?,
                width: block.width,
                height: block.height,
                spec: block
                    .countdown
                    .as_deref()
                    .ok_or_else(|| unsupported("gif"))?,
                campaign_dir: &campaign.dir,
            };
            let open = CountdownOpen {
                ctx: &input.ctx,
                request: input.countdown.ok_or(CountdownError::Undecided)?,
                now: input.now,
                scale,
            };
            Ok(TemplateOutput::Done(crate::countdown::answer(
                &countdown,
                renderer.rasterizer(),
                &open,
            )?))
        }
    }
}

/// The last step: SVG rasterized (with the photos fetched for it) and encoded, or HTML
/// passed through.
pub(super) fn finish(
    renderer: &Renderer,
    output: TemplateOutput,
    block: &Block,
    format: Format,
    scale: u8,
    fetched: Arc<FetchedImages>,
) -> Result<Rendered, BlockRenderError> {
    let bytes = match output {
        TemplateOutput::Done(rendered) => return Ok(rendered),
        TemplateOutput::Html(mut bytes) => {
            // Kept in the render cache, which weighs the length.
            bytes.shrink_to_fit();
            Bytes::from(bytes)
        }
        TemplateOutput::Svg(svg) => {
            renderer.svg_to_png(&svg, (block.width, block.height), scale, fetched, block.png)?
        }
    };
    Ok(Rendered {
        bytes,
        content_type: format.content_type(),
    })
}

/// What a suppressed block shows instead.
enum Suppressed {
    /// A finished answer: nothing (HTML), an image file, a transparent pixel.
    Finished(Rendered),
    /// Another template of the block, rendered like the block itself.
    Template(Box<Block>),
}

/// The suppressed variant when `block` is suppressed for `input`; `None` to render as usual.
fn suppressed_variant(job: BlockRender<'_>) -> Result<Option<Suppressed>, BlockRenderError> {
    let (block, format) = (job.block, job.format);
    let Some(suppression) = &block.suppression else {
        return Ok(None);
    };
    if !suppression.applies(&job.input.to_tera_context(block)) {
        return Ok(None);
    }
    if format == Format::Html {
        return Ok(Some(Suppressed::Finished(Rendered {
            bytes: Bytes::new(),
            content_type: format.content_type(),
        })));
    }
    let rendered = match &suppression.instead {
        Instead::Template(template) => {
            return Ok(Some(Suppressed::Template(Box::new(Block {
                template: Some(template.clone()),
                suppression: None,
                variants: None,
                ..block.clone()
            }))));
        }
        Instead::Image(file) => campaign_image(job, file)?,
        Instead::Pixel if format == Format::Gif => Rendered {
            bytes: Bytes::from_static(&TRANSPARENT_GIF),
            content_type: "image/gif",
        },
        Instead::Pixel => Rendered {
            bytes: transparent_png(1, 1)?,
            content_type: "image/png",
        },
    };
    Ok(Some(Suppressed::Finished(rendered)))
}

/// What the variant of this input shows.
enum Shown {
    /// The block as it is (no variant, or one that shows the block's own templates).
    Block,
    /// A variant's image file.
    Finished(Rendered),
    /// The block with the variant's templates.
    Variant(Box<Block>),
}

/// The block as the input's variant shows it (`crate::blocks::variants`).
fn shown_variant(job: BlockRender<'_>) -> Result<Shown, BlockRenderError> {
    let block = job.block;
    let variant = match (&block.variants, job.input.variant.as_deref()) {
        (Some(variants), Some(name)) => variants.get(name),
        _ => None,
    };
    let Some(variant) = variant else {
        return Ok(Shown::Block);
    };
    let template = match (&variant.shows, job.format) {
        (Shows::Image(file), Format::Png | Format::Gif) => {
            return Ok(Shown::Finished(campaign_image(job, file)?))
        }
        (Shows::Template(template), _) => Some(template.clone()),
        (Shows::Block | Shows::Image(_), _) => block.template.clone(),
    };
    if variant.html.is_none() && template == block.template {
        return Ok(Shown::Block);
    }
    Ok(Shown::Variant(Box::new(Block {
        template,
        html_template: variant.html.clone().or_else(|| block.html_template.clone()),
        ..block.clone()
    })))
}

/// An image file of the campaign at the block's size and the job's scale.
fn campaign_image(job: BlockRender<'_>, file: &str) -> Result<Rendered, BlockRenderError> {
    let block = job.block;
    let bytes = std::fs::read(job.campaign.dir.join(file))
        .map_err(|e| RenderError::Assets(format!("{file}: {e}")))?;
    let image = job.renderer.fallback(
        Some((file, bytes)),
        block.width,
        block.height,
        String::new(),
    )?;
    Ok(Rendered {
        bytes: image.image_for_scale(job.scale).clone(),
        content_type: image.content_type,
    })
}
