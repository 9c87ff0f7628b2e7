//! Shared test fixtures: the render's usvg options (shipped fonts), the demo template, a
//! fixed clock.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use resvg::usvg;
use serde_json::{Map, Value};

use super::frame_template::FrameTemplate;
use crate::render::Renderer;

pub(crate) const DEMO: &str = "demo/countdown.svg";

/// The render's own renderer (shipped fonts and images), loaded once for all tests.
fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| {
        let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
        Renderer::load(Path::new(assets)).expect("assets")
    })
}

/// The usvg options every render parses with (`Rasterizer::options`).
pub(crate) fn options() -> usvg::Options<'static> {
    renderer().rasterizer().options()
}

pub(crate) fn tera() -> tera::Tera {
    let mut t = tera::Tera::default();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/demo/countdown.svg");
    t.add_template_file(path, Some(DEMO))
        .expect("demo template");
    t
}

pub(crate) fn no_extra() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

pub(crate) fn demo<'a>(tera: &'a tera::Tera, svg: &'a usvg::Options<'a>) -> FrameTemplate<'a> {
    FrameTemplate {
        tera,
        name: DEMO,
        svg,
        width: 600,
        height: 120,
        scale: 1.0,
        extra: no_extra(),
    }
}

pub(crate) fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal")
        .with_timezone(&Utc)
}

/// The largest difference between two byte buffers, channel by channel.
pub(crate) fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}
