//! A countdown block's answer: its template's frames as an animated GIF
//! ([`super::render_countdown`]); for a client that shows its copy later, unchanged, the still
//! that says when the countdown ends ([`super::still`]); or, past the deadline, the expired
//! still or the block's `expired_image`.
//!
//! The deadline and language arrive resolved ([`CountdownRequest`], decided once per open by
//! `open::input` for the server and the offline commands alike). The caller describes the
//! block with a [`CountdownBlock`] view, so this module needs nothing from `crate::blocks`.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::frame_template::FrameTemplate;
use super::settings::{CountdownRequest, CountdownSpec};
use super::{render_countdown, still, CountdownError};
use crate::render::svg::Rasterizer;
use crate::render::{fallback, RenderError, Rendered};

/// What the answer needs to know about a countdown block.
pub(crate) struct CountdownBlock<'a> {
    pub(crate) name: &'a str,
    /// The campaign's compiled templates.
    pub(crate) tera: &'a tera::Tera,
    /// The countdown template's name in `tera`.
    pub(crate) template: &'a str,
    /// Picture size in template units (CSS pixels).
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) spec: &'a CountdownSpec,
    /// Where the campaign's files are (`expired_image` is relative to it).
    pub(crate) campaign_dir: &'a Path,
}

/// One open of a countdown: the subscriber's context fields, what it shows, the moment.
pub(crate) struct CountdownOpen<'a> {
    pub(crate) ctx: &'a Map<String, Value>,
    pub(crate) request: CountdownRequest,
    pub(crate) now: DateTime<Utc>,
    /// 1 = the declared size, 2 = retina.
    pub(crate) scale: u8,
}

/// Answers `block` for `open`: an animated GIF, the expired still, or the expired image.
pub(crate) fn answer(
    block: &CountdownBlock,
    rasterizer: &Rasterizer,
    open: &CountdownOpen,
) -> Result<Rendered, CountdownError> {
    let spec = block.spec;
    let request = open.request;
    // One range budget for the whole countdown, every frame's template included.
    let _budget = crate::template_bounds::Budget::start();
    if open.now >= request.deadline {
        if let Some(file) = &spec.expired_image {
            return expired_image(block, rasterizer, file, open.scale);
        }
    }
    let extra = template_extras(block, open);
    let options = rasterizer.options();
    let frames = FrameTemplate {
        tera: block.tera,
        name: block.template,
        svg: &options,
        width: block.width,
        height: block.height,
        scale: f32::from(open.scale.max(1)),
        extra: &extra,
    };
    if let Some(ends) = request.ends.filter(|_| open.now < request.deadline) {
        let (tera, name) = match spec.still_template.as_deref() {
            Some(name) => (block.tera, name),
            None => still::builtin().ok_or_else(still::builtin_missing)?,
        };
        let template = FrameTemplate {
            tera,
            name,
            ..frames
        };
        let gif = still::render(&template, request.deadline, &ends, request.lang)?;
        return Ok(Rendered {
            bytes: Bytes::from(gif.bytes),
            content_type: "image/gif",
        });
    }
    let gif = render_countdown(
        &frames,
        spec.expired_template.as_deref(),
        request.deadline,
        open.now,
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
fn template_extras(block: &CountdownBlock, open: &CountdownOpen) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("ctx".into(), Value::Object(open.ctx.clone()));
    extra.insert(
        "now".into(),
        open.now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    extra.insert(
        "block".into(),
        serde_json::json!({"name": block.name, "width": block.width, "height": block.height}),
    );
    extra
}

/// The block's `expired_image`, prepared like a fallback image (SVG rasterized at the block's
/// size, PNG and GIF served as they are).
fn expired_image(
    block: &CountdownBlock,
    rasterizer: &Rasterizer,
    file: &str,
    scale: u8,
) -> Result<Rendered, CountdownError> {
    let failed = |e: RenderError| CountdownError::ExpiredImage(Box::new(e));
    let bytes = std::fs::read(block.campaign_dir.join(file))
        .map_err(|e| failed(RenderError::Assets(format!("{file}: {e}"))))?;
    let image = fallback::prepare(
        rasterizer,
        Some((file, bytes)),
        block.width,
        block.height,
        String::new(),
    )
    .map_err(failed)?;
    Ok(Rendered {
        bytes: image.image_for_scale(scale).clone(),
        content_type: image.content_type,
    })
}
