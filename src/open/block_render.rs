//! A block rendered for one input, synchronously: the template step (the suppressed variant,
//! Tera → SVG or HTML, or a countdown's whole GIF) and the raster step (SVG → PNG with the
//! photos fetched between the two). [`super::render_job`] runs the steps off the async threads
//! with the photos in between; `opentime check`, the golden tests and the benches call
//! [`render_block`] directly.

use super::error::BlockRenderError;
use super::input::TemplateInput;
use super::suppressed::{self, Suppressed};
use crate::blocks::{Block, Campaign};
use crate::countdown::{CountdownBlock, CountdownError, CountdownOpen};
use crate::render::{FetchedImages, Format, Rendered, Renderer};
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
    let output = template_output(renderer, campaign, block, format, scale, input)?;
    finish(renderer, output, block, format, scale, Arc::default())
}

/// The first step: the block's template filled in (SVG or HTML text), or the finished
/// suppressed variant when the block is suppressed for this input, or a countdown's GIF.
pub(super) fn template_output(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    format: Format,
    scale: u8,
    input: &TemplateInput,
) -> Result<TemplateOutput, BlockRenderError> {
    match suppressed::variant(renderer, campaign, block, format, scale, input)? {
        Some(Suppressed::Finished(rendered)) => return Ok(TemplateOutput::Done(rendered)),
        Some(Suppressed::Template(variant)) => {
            let rendered = render_block(renderer, campaign, &variant, format, scale, input)?;
            return Ok(TemplateOutput::Done(rendered));
        }
        None => {}
    }
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
        TemplateOutput::Html(bytes) => Bytes::from(bytes),
        TemplateOutput::Svg(svg) => {
            renderer.svg_to_png(&svg, block.width, block.height, scale, fetched)?
        }
    };
    Ok(Rendered {
        bytes,
        content_type: format.content_type(),
    })
}
