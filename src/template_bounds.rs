//! How much work one template render may do — the same bounds for every template, whether a
//! block's (`blocks/sandbox.rs` builds their Tera) or a countdown's frames (`countdown/`):
//! `range` gives at most [`MAX_RANGE_ITEMS`] items per call and the calls of one render (a
//! [`Budget`]) at most [`MAX_RANGE_ITEMS_PER_RENDER`] in all, so nested loops are bounded too;
//! an output larger than [`MAX_OUTPUT_BYTES`] is refused. Tera cannot stop in the middle of a
//! render, so the size is checked after it; the range bounds keep the work itself small.
//! Errors raised by a bound start with [`LIMIT`] (`template-limit:`).

use std::cell::Cell;
use std::collections::HashMap;
use tera::{Tera, Value};

/// Most items one `range(...)` call gives.
pub(crate) const MAX_RANGE_ITEMS: usize = 10_000;

/// Most items all `range(...)` calls of one render give together (nested loops).
pub(crate) const MAX_RANGE_ITEMS_PER_RENDER: usize = 100_000;

/// Largest SVG or HTML one render may produce (2 MiB).
pub(crate) const MAX_OUTPUT_BYTES: usize = 2 * 1024 * 1024;

/// How errors raised by a bound begin.
pub(crate) const LIMIT: &str = "template-limit";

thread_local! {
    /// Range items the render running on this thread may still ask for (`None`: no render
    /// through [`render`] is running, only the per-call bound holds).
    static RANGE_BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Puts the previous budget back when a render ends (renders may nest: a link inside a render).
pub(crate) struct Budget(Option<usize>);

impl Budget {
    pub(crate) fn start() -> Self {
        Self(RANGE_BUDGET.with(|budget| budget.replace(Some(MAX_RANGE_ITEMS_PER_RENDER))))
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        RANGE_BUDGET.with(|budget| budget.set(self.0));
    }
}

/// Why a render through [`render`] failed.
#[derive(Debug)]
pub(crate) enum RenderFailure {
    Tera(tera::Error),
    /// The output was this many bytes, more than [`MAX_OUTPUT_BYTES`].
    TooLarge(usize),
}

impl RenderFailure {
    /// The output bound, explained (`Tera` errors are described by the caller).
    pub(crate) fn too_large(bytes: usize) -> String {
        format!(
            "{LIMIT}: the template produced {bytes} bytes, more than the {MAX_OUTPUT_BYTES} a \
             render may produce"
        )
    }
}

/// Renders `template` with the per-render bounds: the range budget and the output size.
pub(crate) fn render(
    tera: &Tera,
    template: &str,
    context: &tera::Context,
) -> Result<String, RenderFailure> {
    let _budget = Budget::start();
    check_output(
        tera.render(template, context)
            .map_err(RenderFailure::Tera)?,
    )
}

/// Checks the size of one render's output.
pub(crate) fn check_output(output: String) -> Result<String, RenderFailure> {
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(RenderFailure::TooLarge(output.len()));
    }
    Ok(output)
}

/// `range(end=…, start=0, step_by=1)` like Tera's, but bounded (and `step_by = 0`, which loops
/// forever in Tera's, is refused).
pub(crate) fn range(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let number = |name: &str, default: Option<usize>| match (args.get(name), default) {
        (Some(value), _) => value.as_u64().map(|n| n as usize).ok_or_else(|| {
            tera::Error::msg(format!(
                "`range` got {name}={value}; {name} must be a whole number, 0 or more"
            ))
        }),
        (None, Some(default)) => Ok(default),
        (None, None) => Err(tera::Error::msg(format!(
            "`range` needs `{name}`, e.g. range(end=5)"
        ))),
    };
    let start = number("start", Some(0))?;
    let end = number("end", None)?;
    let step = number("step_by", Some(1))?;
    if step == 0 {
        return Err(tera::Error::msg("`range` needs step_by of at least 1"));
    }
    if start > end {
        return Err(tera::Error::msg(
            "`range` was called with `start` greater than `end`",
        ));
    }
    let count = (end - start).div_ceil(step);
    if count > MAX_RANGE_ITEMS {
        return Err(tera::Error::msg(format!(
            "{LIMIT}: range(start={start}, end={end}, step_by={step}) would give {count} items; \
             one range gives at most {MAX_RANGE_ITEMS}"
        )));
    }
    RANGE_BUDGET.with(|budget| match budget.get() {
        Some(left) if count > left => Err(tera::Error::msg(format!(
            "{LIMIT}: the ranges of one render give at most {MAX_RANGE_ITEMS_PER_RENDER} items \
             in all (nested loops multiply)"
        ))),
        Some(left) => {
            budget.set(Some(left - count));
            Ok(())
        }
        None => Ok(()),
    })?;
    Ok(Value::Array(
        (start..end).step_by(step).map(Value::from).collect(),
    ))
}
