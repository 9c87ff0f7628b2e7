//! Rendering: a block's template and its inputs in, PNG, GIF or HTML bytes out.
//!
//! Tera produces SVG ([`svg`] rasterizes it with resvg using the shipped fonts and images) or
//! HTML ([`html`]). Everything here is synchronous and CPU-bound except [`live`], which runs
//! one open's render in steps — template, remote photos ([`remote`], async), raster — for the
//! server and the offline `render` command alike.

mod assets;
pub(crate) mod fallback;
mod fonts;
mod glyph_coverage;
mod glyph_text;
mod html;
mod input;
pub mod live;
mod plain_text;
pub mod png;
pub mod remote;
mod suppressed;
pub mod svg;
mod text_tiles;

pub use assets::AssetImages;
pub use fallback::{transparent_pixel_png, Fallback};
pub use input::TemplateInput;
pub use remote::FetchedImages;
pub use suppressed::TRANSPARENT_GIF;

use crate::blocks::{Block, Campaign, CampaignError};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Largest accepted `scale` (retina is 2).
pub const MAX_SCALE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template-error: {0}")]
    Template(#[from] CampaignError),
    #[error("svg-error: {0}")]
    Svg(String),
    #[error("encode-error: {0}")]
    Encode(String),
    #[error("unsupported: block `{block}` has no {format} form")]
    Unsupported { block: String, format: &'static str },
    #[error("assets: {0}")]
    Assets(String),
    #[error("{0}")]
    Countdown(#[from] crate::countdown::CountdownError),
}

impl RenderError {
    /// The short reason used in fallback headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Template(_) => "template-error",
            RenderError::Svg(_) => "svg-error",
            RenderError::Encode(_) => "encode-error",
            RenderError::Unsupported { .. } => "unsupported-format",
            RenderError::Assets(_) => "assets-error",
            RenderError::Countdown(error) => error.reason(),
        }
    }
}

/// The output formats a block can be served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Gif,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Html => "html",
        }
    }
}

/// A finished answer body.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// A template filled in, before rasterizing.
#[derive(Debug, Clone)]
pub enum TemplateOutput {
    Svg(String),
    Html(Vec<u8>),
    /// Already finished (a suppressed block's variant).
    Done(Rendered),
}

/// Holds what every render shares: fonts and shipped images. Cheap to share behind an `Arc`.
pub struct Renderer {
    rasterizer: svg::Rasterizer,
}

impl Renderer {
    /// Loads fonts from `assets/fonts` and images from `assets/images`.
    pub fn load(assets_dir: &Path) -> Result<Self, RenderError> {
        let fonts = fonts::load(&assets_dir.join("fonts"))?;
        let images = AssetImages::load(&assets_dir.join("images"))?;
        Ok(Self {
            rasterizer: svg::Rasterizer::new(fonts, Arc::new(images)),
        })
    }

    pub fn rasterizer(&self) -> &svg::Rasterizer {
        &self.rasterizer
    }

    /// Renders `block` of `campaign` in `format` at `scale` (1 = the declared size), with no
    /// remote images (their slots draw nothing); [`live::render`] fetches them.
    pub fn render(
        &self,
        campaign: &Campaign,
        block: &Block,
        format: Format,
        scale: u8,
        input: &TemplateInput,
    ) -> Result<Rendered, RenderError> {
        let output = self.template_output(campaign, block, format, scale, input)?;
        self.finish(output, block, format, scale, Arc::default())
    }

    /// The first step of a render: the block's template filled in (SVG or HTML text), or the
    /// finished suppressed variant when the block is suppressed for this input.
    pub fn template_output(
        &self,
        campaign: &Campaign,
        block: &Block,
        format: Format,
        scale: u8,
        input: &TemplateInput,
    ) -> Result<TemplateOutput, RenderError> {
        if let Some(variant) =
            suppressed::render_if_suppressed(self, campaign, block, format, scale, input)?
        {
            return Ok(TemplateOutput::Done(variant));
        }
        let context = input.to_tera_context(block);
        match format {
            Format::Html => {
                let template = block
                    .html_template
                    .as_deref()
                    .ok_or(RenderError::Unsupported {
                        block: block.name.clone(),
                        format: "html",
                    })?;
                Ok(TemplateOutput::Html(html::render(
                    campaign, template, &context,
                )?))
            }
            Format::Png => {
                let template = block.template.as_deref().ok_or(RenderError::Unsupported {
                    block: block.name.clone(),
                    format: "png",
                })?;
                Ok(TemplateOutput::Svg(
                    campaign.render_template(template, &context)?,
                ))
            }
            // A countdown is finished in this step: its frames are drawn and encoded together.
            Format::Gif => {
                let unsupported = || RenderError::Unsupported {
                    block: block.name.clone(),
                    format: "gif",
                };
                let countdown = crate::countdown::CountdownBlock {
                    name: &block.name,
                    tera: campaign.tera(),
                    template: block.template.as_deref().ok_or_else(unsupported)?,
                    width: block.width,
                    height: block.height,
                    spec: block.countdown.as_deref().ok_or_else(unsupported)?,
                    campaign_dir: &campaign.dir,
                };
                let open = crate::countdown::CountdownOpen {
                    ctx: &input.ctx,
                    query: &input.query,
                    now: input.now,
                    scale,
                };
                Ok(TemplateOutput::Done(crate::countdown::answer(
                    &countdown,
                    &self.rasterizer,
                    &open,
                )?))
            }
        }
    }

    /// The last step of a render: SVG rasterized (with the remote images fetched for it) and
    /// encoded, or HTML passed through.
    pub fn finish(
        &self,
        output: TemplateOutput,
        block: &Block,
        format: Format,
        scale: u8,
        fetched: Arc<FetchedImages>,
    ) -> Result<Rendered, RenderError> {
        let bytes = match output {
            TemplateOutput::Done(rendered) => return Ok(rendered),
            TemplateOutput::Html(bytes) => bytes,
            TemplateOutput::Svg(svg) => {
                let pixmap = self.rasterizer.rasterize_with(
                    &svg,
                    block.width,
                    block.height,
                    scale,
                    fetched,
                )?;
                png::encode(&pixmap)?
            }
        };
        Ok(Rendered {
            bytes: Bytes::from(bytes),
            content_type: format.content_type(),
        })
    }

    /// Prepares a block's fallback: an image file (SVG is rasterized at 1× and 2×; PNG and GIF
    /// are served as they are), or a transparent image of the block's size when none is given.
    pub fn fallback(
        &self,
        image: Option<(&str, Vec<u8>)>,
        width: u32,
        height: u32,
        html: String,
    ) -> Result<Fallback, RenderError> {
        fallback::prepare(&self.rasterizer, image, width, height, html)
    }
}
