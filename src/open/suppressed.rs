//! The suppressed variant of a block (see [`crate::blocks::suppress`]): decided from the same
//! [`TemplateInput`] as the render itself, so the render cache keeps each variant apart.

use super::error::BlockRenderError;
use super::input::TemplateInput;
use crate::blocks::suppress::Instead;
use crate::blocks::{Block, Campaign};
use crate::render::{transparent_png, Format, RenderError, Rendered, Renderer, TRANSPARENT_GIF};
use bytes::Bytes;

/// What a suppressed block shows instead.
pub(super) enum Suppressed {
    /// A finished answer: nothing (HTML), an image file, a transparent pixel.
    Finished(Rendered),
    /// Another template of the block, rendered like the block itself.
    Template(Box<Block>),
}

/// The suppressed variant when `block` is suppressed for `input`; `None` to render as usual.
pub(super) fn variant(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    format: Format,
    scale: u8,
    input: &TemplateInput,
) -> Result<Option<Suppressed>, BlockRenderError> {
    let Some(suppression) = &block.suppression else {
        return Ok(None);
    };
    if !suppression.applies(&input.to_tera_context(block)) {
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
                ..block.clone()
            }))));
        }
        Instead::Image(file) => {
            let bytes = std::fs::read(campaign.dir.join(file))
                .map_err(|e| RenderError::Assets(format!("{file}: {e}")))?;
            let image = renderer.fallback(
                Some((file.as_str(), bytes)),
                block.width,
                block.height,
                String::new(),
            )?;
            Rendered {
                bytes: image.image_for_scale(scale).clone(),
                content_type: image.content_type,
            }
        }
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
