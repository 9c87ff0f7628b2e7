//! One frame of a countdown: the block's Tera SVG template filled in for one second (the
//! countdown's values, labels and the block's extra context) and drawn in full.
//!
//! Parsing uses the render's own usvg options (`crate::render::svg::Rasterizer::options`:
//! shipped fonts, `asset:` images) and drawing the render's `svg::fit`/`svg::draw`, so a
//! countdown frame is drawn the way every other block is. Template errors are described by
//! [`crate::template_error`], as for every other block.

use std::path::Path;

use resvg::tiny_skia::Pixmap;
use resvg::usvg::{self, Tree};
use serde_json::{Map, Value};

use super::deadline::{Remaining, ShownUnits};
use super::labels::Labels;
use crate::render::svg;
use crate::template_bounds::{self, RenderFailure};
use crate::template_error::describe_tera_error;

/// Largest picture side in pixels (after scale).
pub(crate) const MAX_SIDE: u32 = 2400;

/// A compiled template and how to draw it.
pub struct FrameTemplate<'a> {
    pub tera: &'a tera::Tera,
    /// Template name in `tera`.
    pub name: &'a str,
    /// The render's usvg options (`Rasterizer::options`: shipped fonts and images), built
    /// once per countdown and shared by every parse of its frames.
    pub svg: &'a usvg::Options<'a>,
    /// Picture size in template units (CSS pixels).
    pub width: u32,
    pub height: u32,
    /// Device pixels per unit (2 for retina).
    pub scale: f32,
    /// Extra context the template sees at top level (countdown keys win on a clash).
    pub extra: &'a Map<String, Value>,
}

/// Why a frame could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The template failed to render (described as `template: reason`).
    #[error("template: {0}")]
    Template(String),
    #[error("svg: {0}")]
    Svg(#[from] usvg::Error),
    #[error("size {0}x{1} at scale {2} out of range")]
    BadSize(u32, u32, f32),
}

/// The values one frame's template sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameState {
    pub(crate) left: Remaining,
    pub(crate) shown: ShownUnits,
    pub(crate) expired: bool,
}

impl<'a> FrameTemplate<'a> {
    /// Picture size in device pixels.
    pub(crate) fn pixel_size(&self) -> Result<(u32, u32), FrameError> {
        let bad = || FrameError::BadSize(self.width, self.height, self.scale);
        if !(self.scale.is_finite() && (0.25..=4.0).contains(&self.scale)) {
            return Err(bad());
        }
        let w = (self.width as f32 * self.scale).round();
        let h = (self.height as f32 * self.scale).round();
        if !(1.0..=MAX_SIDE as f32).contains(&w) || !(1.0..=MAX_SIDE as f32).contains(&h) {
            return Err(bad());
        }
        Ok((w as u32, h as u32))
    }

    /// The base context: the extra values, then the picture size.
    pub(super) fn base_context(&self) -> tera::Context {
        let mut ctx = tera::Context::new();
        for (k, v) in self.extra {
            ctx.insert(k.as_str(), v);
        }
        ctx.insert("width", &self.width);
        ctx.insert("height", &self.height);
        ctx
    }

    /// The SVG source of one frame.
    pub(crate) fn svg_source(
        &self,
        state: &FrameState,
        labels: &Labels,
    ) -> Result<String, FrameError> {
        self.fill(&frame_context(self.base_context(), state, labels))
    }

    /// The template filled in with `ctx`, within the output bound every template has (the range
    /// budget is the whole countdown's: `answer` starts it); errors read as for every other
    /// template.
    pub(super) fn fill(&self, ctx: &tera::Context) -> Result<String, FrameError> {
        let output = self
            .tera
            .render(self.name, ctx)
            .map_err(|e| FrameError::Template(describe_tera_error(&e, Path::new(""), self.name)))?;
        template_bounds::check_output(output).map_err(|failure| match failure {
            RenderFailure::TooLarge(bytes) => FrameError::Template(RenderFailure::too_large(bytes)),
            RenderFailure::Tera(e) => {
                FrameError::Template(describe_tera_error(&e, Path::new(""), self.name))
            }
        })
    }

    /// Parses an SVG drawn from this template (a frame, or one text standing alone).
    pub(super) fn parse(&self, svg: &str) -> Result<Tree, FrameError> {
        Ok(Tree::from_str(svg, self.svg)?)
    }

    /// One frame rendered in full (also the expired picture and the Outlook still).
    pub(crate) fn render_still(
        &self,
        state: &FrameState,
        labels: &Labels,
    ) -> Result<Pixmap, FrameError> {
        let svg = self.svg_source(state, labels)?;
        self.rasterize(&svg).map(|(_, pm)| pm)
    }

    /// One frame drawn in full, with its parsed tree (the text shortcut reads it).
    pub(super) fn rasterize(&self, svg: &str) -> Result<(Tree, Pixmap), FrameError> {
        let (w, h) = self.pixel_size()?;
        let tree = self.parse(svg)?;
        let pm = svg::draw(&tree, svg::fit(&tree, w, h), w, h).ok_or(FrameError::BadSize(
            self.width,
            self.height,
            self.scale,
        ))?;
        Ok((tree, pm))
    }
}

/// Two digits at least (`"07"`, `"123"` days).
fn two_digits(n: u64) -> String {
    format!("{n:02}")
}

/// Adds a frame's countdown values to `ctx`.
pub(crate) fn frame_context(
    mut ctx: tera::Context,
    state: &FrameState,
    labels: &Labels,
) -> tera::Context {
    let l = &state.left;
    let values = [
        ("days", state.shown.days, two_digits(l.days), labels.days),
        (
            "hours",
            state.shown.hours,
            two_digits(u64::from(l.hours)),
            labels.hours,
        ),
        (
            "minutes",
            state.shown.minutes,
            two_digits(u64::from(l.minutes)),
            labels.minutes,
        ),
        (
            "seconds",
            state.shown.seconds,
            two_digits(u64::from(l.seconds)),
            labels.seconds,
        ),
    ];
    let units: Vec<Value> = values
        .iter()
        .filter(|(_, shown, _, _)| *shown)
        .map(|(key, _, value, label)| {
            let digits: Vec<String> = value.chars().map(String::from).collect();
            serde_json::json!({"key": key, "value": value, "label": label, "digits": digits})
        })
        .collect();
    for (key, shown, value, _) in &values {
        ctx.insert(*key, value);
        ctx.insert(format!("show_{key}"), shown);
    }
    ctx.insert("units", &units);
    ctx.insert("labels", labels);
    ctx.insert("expired", &state.expired);
    ctx.insert("total_seconds", &l.total);
    ctx
}
