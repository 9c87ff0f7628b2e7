//! The suppressed variant of a block (see [`crate::blocks::suppress`]): decided from the same
//! [`TemplateInput`] as the render itself, so the render cache keeps each variant apart.

use super::{fallback, Format, RenderError, Rendered, Renderer, TemplateInput};
use crate::blocks::suppress::Instead;
use crate::blocks::{Block, Campaign};
use bytes::Bytes;

/// A 1×1 GIF89a whose only pixel is transparent (43 bytes): the pixel of GIF routes.
pub const TRANSPARENT_GIF: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The suppressed variant when `block` is suppressed for `input`; `None` to render as usual.
pub fn render_if_suppressed(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    format: Format,
    scale: u8,
    input: &TemplateInput,
) -> Result<Option<Rendered>, RenderError> {
    let Some(suppression) = &block.suppression else {
        return Ok(None);
    };
    if !suppression.applies(&input.to_tera_context(block)) {
        return Ok(None);
    }
    if format == Format::Html {
        return Ok(Some(Rendered {
            bytes: Bytes::new(),
            content_type: format.content_type(),
        }));
    }
    let rendered = match &suppression.instead {
        Instead::Template(template) => {
            let variant = Block {
                template: Some(template.clone()),
                suppression: None,
                ..block.clone()
            };
            renderer.render(campaign, &variant, format, scale, input)?
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
            bytes: fallback::transparent_png(1, 1)?,
            content_type: "image/png",
        },
    };
    Ok(Some(rendered))
}
