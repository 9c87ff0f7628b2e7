//! Cache-miss render of `demo/cart` (Tera → SVG → PNG bytes), against a straightforward
//! usvg + resvg + tiny-skia `encode_png` pipeline measured in the same run.
//!
//! `cargo bench --bench render` prints the medians and their ratio at the end.

use criterion::{criterion_group, Criterion};
use opentime::blocks::Campaign;
use opentime::render::{Format, Renderer, TemplateInput};
use std::hint::black_box;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Fixture {
    renderer: Renderer,
    campaign: Campaign,
    input: TemplateInput,
}

fn fixture() -> Fixture {
    let renderer = Renderer::load(&repo().join("assets")).expect("assets");
    let campaign =
        Campaign::load(&repo().join("templates/demo"), &renderer).expect("demo campaign");
    let text =
        std::fs::read_to_string(repo().join("templates/demo/samples/alice.json")).expect("sample");
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("sample JSON");
    let block = campaign.block("cart").expect("cart block");
    let input = TemplateInput::for_block(
        block,
        &fields,
        Some("alice"),
        chrono::Utc::now(),
        Default::default(),
    );
    Fixture {
        renderer,
        campaign,
        input,
    }
}

fn cart(c: &mut Criterion) {
    let f = fixture();
    let block = f.campaign.block("cart").expect("cart block");
    let mut group = c.benchmark_group("cart_miss");
    group.bench_function("opentime", |b| {
        b.iter(|| {
            let rendered = f
                .renderer
                .render(&f.campaign, block, Format::Png, 1, black_box(&f.input))
                .expect("render");
            black_box(rendered.bytes.len())
        })
    });
    group.bench_function("baseline_usvg_resvg_encode_png", |b| {
        let context = f.input.to_tera_context(block);
        let options = f.renderer.rasterizer().options();
        b.iter(|| {
            let svg = f
                .campaign
                .render_template("cart.svg", black_box(&context))
                .expect("tera");
            let tree = resvg::usvg::Tree::from_str(&svg, &options).expect("svg");
            let mut pixmap = resvg::tiny_skia::Pixmap::new(600, 300).expect("pixmap");
            resvg::render(
                &tree,
                resvg::tiny_skia::Transform::identity(),
                &mut pixmap.as_mut(),
            );
            black_box(pixmap.encode_png().expect("png").len())
        })
    });
    group.finish();
}

criterion_group!(benches, cart);

/// The median of one benchmark from criterion's saved estimates, in milliseconds.
fn median_ms(group: &str, name: &str) -> Option<f64> {
    // Where criterion saves its estimates: $CRITERION_HOME, else the target dir's `criterion`.
    let home = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|t| Path::new(&t).join("criterion")))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let path = home.join(group).join(name).join("new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64().map(|ns| ns / 1e6)
}

fn main() {
    benches();
    let bytes = {
        let f = fixture();
        let block = f.campaign.block("cart").expect("cart block");
        f.renderer
            .render(&f.campaign, block, Format::Png, 1, &f.input)
            .map(|r| r.bytes.len())
            .unwrap_or(0)
    };
    if let (Some(ours), Some(baseline)) = (
        median_ms("cart_miss", "opentime"),
        median_ms("cart_miss", "baseline_usvg_resvg_encode_png"),
    ) {
        println!("\nsummary: demo/cart cache-miss render (600x300, Tera -> SVG -> PNG)");
        println!("  opentime:                       median {ours:.3} ms per render, {bytes} bytes");
        println!("  baseline usvg+resvg+encode_png: median {baseline:.3} ms per render");
        println!("  ratio baseline / opentime:      {:.2}x", baseline / ours);
    }
}
