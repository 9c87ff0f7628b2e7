//! A countdown block's answer: its template's frames as an animated GIF
//! ([`crate::countdown::render_countdown`]), or, past the deadline, the expired still or the
//! block's `expired_image`.
//!
//! The deadline and language come from the input's query, which the HTTP layer has already
//! resolved and made canonical (`crate::blocks::countdown`); resolving again here keeps the
//! offline CLI (`opentime render`, `opentime check`) on exactly the server's path.

use super::{RenderError, Rendered, Renderer, TemplateInput};
use crate::blocks::{Block, Campaign};
use crate::countdown::{render_countdown, FrameTemplate};
use bytes::Bytes;

/// Renders `block` (a countdown) for `input` at `scale`.
pub fn render(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    scale: u8,
    input: &TemplateInput,
) -> Result<Rendered, RenderError> {
    let unsupported = || RenderError::Unsupported {
        block: block.name.clone(),
        format: "gif",
    };
    let spec = block.countdown.as_deref().ok_or_else(unsupported)?;
    let template = block.template.as_deref().ok_or_else(unsupported)?;
    let request = spec.resolve(&input.ctx, &input.query)?;
    if input.now >= request.deadline {
        if let Some(file) = &spec.expired_image {
            return expired_image(renderer, campaign, block, file, scale);
        }
    }
    let extra = template_extras(block, input);
    let options = renderer.rasterizer().options();
    let frames = FrameTemplate {
        tera: campaign.tera(),
        name: template,
        svg: &options,
        width: block.width,
        height: block.height,
        scale: f32::from(scale.max(1)),
        extra: &extra,
    };
    let gif = render_countdown(
        &frames,
        spec.expired_template.as_deref(),
        request.deadline,
        input.now,
        &spec.settings_for(&request),
    )?;
    Ok(Rendered {
        bytes: Bytes::from(gif.bytes),
        content_type: "image/gif",
    })
}

/// What a countdown template sees besides the countdown's own values: `ctx` (the fields the
/// block reads), `now` and `block`, as image templates do. Never the raw query: a shared
/// countdown is cached per deadline and language, so nothing else may change its picture.
fn template_extras(
    block: &Block,
    input: &TemplateInput,
) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert("ctx".into(), serde_json::Value::Object(input.ctx.clone()));
    extra.insert(
        "now".into(),
        input
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    extra.insert(
        "block".into(),
        serde_json::json!({"name": block.name, "width": block.width, "height": block.height}),
    );
    extra
}

fn expired_image(
    renderer: &Renderer,
    campaign: &Campaign,
    block: &Block,
    file: &str,
    scale: u8,
) -> Result<Rendered, RenderError> {
    let bytes = std::fs::read(campaign.dir.join(file))
        .map_err(|e| RenderError::Assets(format!("{file}: {e}")))?;
    let image = renderer.fallback(
        Some((file, bytes)),
        block.width,
        block.height,
        String::new(),
    )?;
    Ok(Rendered {
        bytes: image.image_for_scale(scale).clone(),
        content_type: image.content_type,
    })
}
