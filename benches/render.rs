//! Cache-miss render of `demo/cart` (Tera → SVG → PNG bytes), against a straightforward
//! usvg + resvg + tiny-skia `encode_png` pipeline measured in the same run.
//!
//! Three cases, because opentime keeps the texts it has drawn (text tiles) and the rows it has
//! deflated (PNG row bands):
//! - `campaign_stream`: every iteration a new subscriber — a first name from a list of 60, one
//!   to four items from a 1,000-product catalog, quantities 1–3 — as the opens of a campaign
//!   come in; texts repeat as often as they would (labels, names) and are drawn anew where they
//!   would (most product lines, totals). The shares of texts and of PNG row bands reused are
//!   printed with it.
//! - `cold`: the same, with every kept text, glyph and deflated band of rows forgotten before
//!   each render (the worst case: a process's very first opens; the forgetting itself is not
//!   timed).
//! - `same_context`: Alice's sample again and again (every text and row band kept; the best
//!   case).
//! - `stream_cyrillic`, `stream_cjk`, `stream_arabic`: the campaign stream with first names in
//!   another script (drawn with the fallback fonts: the system's Noto fonts, which
//!   `scripts/test` installs), to show what a name outside the shipped font costs.
//!
//! Every case starts from its subscriber's input made beforehand, untimed, as the baseline
//! starts from its Tera context: making up the bench's subscribers is not rendering.
//!
//! `cargo bench --bench render` prints criterion's medians, then a summary measured in rounds
//! that take turns between the cases and the baseline (a batch of each per round), so a machine
//! whose speed drifts (shared virtual machines do) slows every case alike: the ratios are the
//! medians of the per-round ratios. Then, the same way:
//! - **PNG**: per demo block (Alice's sample), the bytes and encode time of the previous encoder
//!   (fdeflate's fast mode, Paeth filter, RGBA; reproduced here) against today's lossless mode,
//!   and the palette mode's bytes and worst channel error (decoded, against the lossless pixels);
//! - **retina**: the cart rendered at `scale=2` against `scale=1`.

use criterion::{criterion_group, BatchSize, Criterion};
use opentime::blocks::{Block, Campaign};
use opentime::open::TemplateInput;
use opentime::render::{Format, PngMode, Renderer, PALETTE_MAX_ERROR};
use resvg::usvg;
use std::hint::black_box;
use std::path::{Path, PathBuf};

/// The allocator `opentime serve` runs with (`src/main.rs`), so a render costs here what it
/// costs in the server; the baseline runs with it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Fixture {
    renderer: Renderer,
    campaign: Campaign,
    input: TemplateInput,
}

/// Alice's sample as `block` sees it now.
fn alice_input(block: &Block) -> TemplateInput {
    let text =
        std::fs::read_to_string(repo().join("templates/demo/samples/alice.json")).expect("sample");
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("sample JSON");
    TemplateInput::for_block(
        block,
        &fields,
        Some("alice"),
        chrono::Utc::now(),
        Default::default(),
    )
}

fn fixture() -> Fixture {
    let renderer = Renderer::load(&repo().join("assets")).expect("assets");
    let campaign =
        Campaign::load(&repo().join("templates/demo"), &renderer).expect("demo campaign");
    let input = alice_input(campaign.block("cart").expect("cart block"));
    Fixture {
        renderer,
        campaign,
        input,
    }
}

const FIRST_NAMES: [&str; 60] = [
    "Alice", "Bob", "Zoë", "Liam", "Emma", "Noah", "Olivia", "Mateo", "Sofía", "Lukas", "Mia",
    "Hugo", "Léa", "Jonas", "Ana", "Jakub", "Marta", "Elias", "Chloé", "Finn", "Ines", "Ömer",
    "Nina", "Paul", "Clara", "Felix", "Sara", "Theo", "Julia", "Leon", "Eva", "Ben", "Lina", "Tom",
    "Maja", "Oscar", "Ida", "Max", "Ella", "Arthur", "Alba", "Milan", "Noor", "Louis", "Zara",
    "Adam", "Lou", "Emil", "Rosa", "Jan", "Vera", "Iker", "Lara", "Nils", "Aino", "Sam", "Irene",
    "Dario", "Mila", "Björn",
];

/// First names in scripts the shipped font does not have.
const CYRILLIC_NAMES: [&str; 12] = [
    "Мария",
    "Иван",
    "Анна",
    "Дмитрий",
    "Ольга",
    "Сергей",
    "Елена",
    "Алексей",
    "Наталья",
    "Михаил",
    "Татьяна",
    "Андрей",
];
const CJK_NAMES: [&str; 12] = [
    "张伟",
    "王芳",
    "李娜",
    "刘洋",
    "陈静",
    "杨磊",
    "佐藤 さくら",
    "鈴木 一郎",
    "高橋 陽子",
    "김민준",
    "이서연",
    "박지훈",
];
const ARABIC_NAMES: [&str; 12] = [
    "محمد",
    "فاطمة",
    "أحمد",
    "ليلى",
    "علي",
    "مريم",
    "عمر",
    "نور",
    "خالد",
    "سارة",
    "يوسف",
    "عبد الله",
];

/// A new subscriber's context, from a deterministic stream of numbers, with a first name
/// from `names`.
fn stream_context_named(n: u64, names: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let products = [
        "sneaker",
        "mug",
        "backpack",
        "headphones",
        "tshirt",
        "plant",
        "cafe-set",
    ];
    let items: Vec<serde_json::Value> = (0..1 + next(4))
        .map(|_| {
            let product = next(1000);
            serde_json::json!({
                "name": format!("Product {product} — {}", products[(product % 7) as usize]),
                "quantity": 1 + next(3),
                "price": 9.5 + (product as f64) * 3.25,
                "image_url": format!("asset:products/{}.png", products[(product % 7) as usize]),
            })
        })
        .collect();
    let first_name = names[next(names.len() as u64) as usize];
    serde_json::json!({
        "profile": {"first_name": first_name},
        "cart": {"currency": "EUR", "items": items},
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// A new subscriber's input for `block` (`n` picks the subscriber).
fn stream_input(block: &Block, n: u64) -> TemplateInput {
    stream_input_named(block, n, &FIRST_NAMES)
}

/// [`stream_input`] with first names from `names`.
fn stream_input_named(block: &Block, n: u64, names: &[&str]) -> TemplateInput {
    TemplateInput::for_block(
        block,
        &stream_context_named(n, names),
        Some("stream"),
        chrono::Utc::now(),
        Default::default(),
    )
}

/// The name lists of the other scripts' streams, with their labels.
const SCRIPT_STREAMS: [(&str, &[&str]); 3] = [
    ("cyrillic", &CYRILLIC_NAMES),
    ("cjk", &CJK_NAMES),
    ("arabic", &ARABIC_NAMES),
];

/// opentime's cache-miss render of `input`, to PNG bytes (their count).
fn render_opentime(f: &Fixture, block: &Block, input: &TemplateInput) -> usize {
    opentime::open::render_block(
        &f.renderer,
        &f.campaign,
        block,
        Format::Png,
        1,
        black_box(input),
    )
    .expect("render")
    .bytes
    .len()
}

/// The baseline: Tera, then usvg, resvg and tiny-skia's `encode_png`, nothing kept.
fn render_baseline(f: &Fixture, context: &tera::Context, options: &usvg::Options) -> usize {
    let svg = f
        .campaign
        .render_template("cart.svg", black_box(context))
        .expect("tera");
    let tree = usvg::Tree::from_str(&svg, options).expect("svg");
    let mut pixmap = resvg::tiny_skia::Pixmap::new(600, 300).expect("pixmap");
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().expect("png").len()
}

fn cart(c: &mut Criterion) {
    let f = fixture();
    let block = f.campaign.block("cart").expect("cart block");
    let mut group = c.benchmark_group("cart_miss");
    let mut n = 0u64;
    let counts_before = f.renderer.rasterizer().text_tile_counts();
    let bands_before = f.renderer.png_band_counts();
    // Each subscriber's input is made untimed, as the baseline's is: both start from it.
    group.bench_function("opentime_campaign_stream", |b| {
        b.iter_batched(
            || {
                n += 1;
                stream_input(block, n)
            },
            |input| black_box(render_opentime(&f, block, &input)),
            BatchSize::SmallInput,
        )
    });
    let (reused, drawn) = f.renderer.rasterizer().text_tile_counts();
    let (reused, drawn) = (reused - counts_before.0, drawn - counts_before.1);
    let (bands_reused, bands_deflated) = f.renderer.png_band_counts();
    let (bands_reused, bands_deflated) = (
        bands_reused - bands_before.0,
        bands_deflated - bands_before.1,
    );
    let _ = std::fs::write(
        stream_share_path(),
        format!(
            "{:.1}% of its texts and {:.1}% of its PNG rows' deflated bands",
            100.0 * reused as f64 / (reused + drawn).max(1) as f64,
            100.0 * bands_reused as f64 / (bands_reused + bands_deflated).max(1) as f64
        ),
    );
    // Forgetting happens in the untimed setup: a process's first opens pay no such step.
    group.bench_function("opentime_cold", |b| {
        b.iter_batched(
            || {
                n += 1;
                f.renderer.forget_kept();
                stream_input(block, n)
            },
            |input| black_box(render_opentime(&f, block, &input)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("opentime_same_context", |b| {
        b.iter(|| black_box(render_opentime(&f, block, &f.input)))
    });
    // `cargo test --all-targets` runs each case once, without `--bench`: no warm-up then.
    let warm_up = if measuring() { 500 } else { 0 };
    for (script, names) in SCRIPT_STREAMS {
        for _ in 0..warm_up {
            n += 1;
            render_opentime(&f, block, &stream_input_named(block, n, names));
        }
        group.bench_function(format!("opentime_stream_{script}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    stream_input_named(block, n, names)
                },
                |input| black_box(render_opentime(&f, block, &input)),
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("baseline_usvg_resvg_encode_png", |b| {
        let context = f.input.to_tera_context(block);
        let options = f.renderer.rasterizer().options();
        b.iter(|| black_box(render_baseline(&f, &context, &options)))
    });
    group.finish();
}

criterion_group!(benches, cart);

/// Where the stream case leaves the shares of texts and PNG row bands it reused, for the summary.
fn stream_share_path() -> std::path::PathBuf {
    std::env::temp_dir().join("opentime-bench-text-reuse.txt")
}

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

/// Renders `count` times and returns the mean milliseconds per render.
fn batch(count: u32, mut render: impl FnMut()) -> f64 {
    batch_after(count, || {}, |()| render())
}

/// Like [`batch`], timing only `render`, each time of what an untimed `setup` made.
fn batch_after<T>(count: u32, mut setup: impl FnMut() -> T, mut render: impl FnMut(T)) -> f64 {
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..count {
        let made = setup();
        let start = std::time::Instant::now();
        render(made);
        spent += start.elapsed();
    }
    spent.as_secs_f64() * 1e3 / f64::from(count)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The cases in turns: per round a batch of the baseline and of each case.
fn interleaved_summary() {
    const ROUNDS: usize = 31;
    let f = fixture();
    let block = f.campaign.block("cart").expect("cart block");
    let context = f.input.to_tera_context(block);
    let options = f.renderer.rasterizer().options();
    let baseline = || {
        black_box(render_baseline(&f, &context, &options));
    };
    let mut n = 1_000_000u64;
    // Inputs are made untimed, as the baseline's context is: every case starts from its input.
    let input_named = |n: u64, names: &[&str]| stream_input_named(block, n, names);
    let input = |n: u64| input_named(n, &FIRST_NAMES);
    let render_input = |input: TemplateInput| {
        black_box(render_opentime(&f, block, &input));
    };
    let render_named = |n: u64, names: &[&str]| render_input(input_named(n, names));
    let render = |n: u64| render_input(input(n));
    // Warm up the streams as a campaign would be (and as criterion's run did).
    for _ in 0..2_000 {
        n += 1;
        render(n);
    }
    for (_, names) in SCRIPT_STREAMS {
        for _ in 0..500 {
            n += 1;
            render_named(n, names);
        }
    }
    let mut rows: [Vec<f64>; 4] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    // Per script stream: ms per render, and its ratio to the Latin stream of the same round.
    let mut script_rows: [Vec<f64>; 3] = Default::default();
    let mut script_ratios: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let base = batch(8, baseline);
        let stream = batch_after(
            40,
            || {
                n += 1;
                input(n)
            },
            render_input,
        );
        let same = batch(40, || {
            black_box(render_opentime(&f, block, &f.input));
        });
        // Forgetting is not timed: a process's first opens pay no such step.
        let cold = batch_after(
            8,
            || {
                f.renderer.forget_kept();
                n += 1;
                input(n)
            },
            render_input,
        );
        for (i, (_, names)) in SCRIPT_STREAMS.iter().enumerate() {
            let ms = batch_after(
                40,
                || {
                    n += 1;
                    input_named(n, names)
                },
                render_input,
            );
            script_rows[i].push(ms);
            script_ratios[i].push(ms / stream);
        }
        // Leave the stream warm again for the next round.
        for _ in 0..300 {
            n += 1;
            render(n);
        }
        for (row, value) in rows.iter_mut().zip([base, stream, cold, same]) {
            row.push(value);
        }
        for (row, value) in ratios.iter_mut().zip([stream, cold, same]) {
            row.push(base / value);
        }
    }
    let [base, stream, cold, same] = rows.map(median);
    let [stream_x, cold_x, same_x] = ratios.map(median);
    println!("\nsummary in {ROUNDS} interleaved rounds (median ms per render; median of per-round ratios):");
    println!("  baseline usvg+resvg+encode_png:      {base:.3} ms");
    println!("  opentime, campaign stream:           {stream:.3} ms  ({stream_x:.2}x faster than the baseline)");
    println!("  opentime, cold (nothing kept):       {cold:.3} ms  ({cold_x:.2}x faster than the baseline)");
    println!("  opentime, same context again:        {same:.3} ms  ({same_x:.2}x faster than the baseline)");
    let script_rows = script_rows.map(median);
    let script_ratios = script_ratios.map(median);
    for (i, (script, _)) in SCRIPT_STREAMS.iter().enumerate() {
        println!(
            "  opentime, stream of {script:<8} names: {:.3} ms  ({:.2}x the Latin stream's time)",
            script_rows[i], script_ratios[i]
        );
    }
}

/// The previous encoder, reproduced as the reference: fdeflate's fast mode with the Paeth
/// filter, straight RGBA.
fn encode_previous(pixmap: &resvg::tiny_skia::Pixmap) -> Vec<u8> {
    let mut straight = pixmap.data().to_vec();
    for (pixel, bytes) in pixmap.pixels().iter().zip(straight.chunks_exact_mut(4)) {
        let c = pixel.demultiply();
        bytes.copy_from_slice(&[c.red(), c.green(), c.blue(), c.alpha()]);
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_deflate_compression(png::DeflateCompression::FdeflateUltraFast);
    encoder.set_filter(png::Filter::Paeth);
    let mut writer = encoder.write_header().expect("header");
    writer.write_image_data(&straight).expect("data");
    writer.finish().expect("finish");
    out
}

fn decode_rgba(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .expect("png")
        .to_rgba8()
}

/// Bytes and encode time of each demo image block, previous encoder against today's modes.
fn png_summary() {
    const ROUNDS: usize = 31;
    let f = fixture();
    println!(
        "
PNG per demo block (Alice's sample; median of {ROUNDS} interleaved rounds of encode time):"
    );
    println!("  block      size      previous B   lossless B  ratio   previous ms  lossless ms  extra ms   palette B  ratio  worst error  palette ms");
    for name in ["cart", "points", "store", "welcome", "upgrade"] {
        let block = f.campaign.block(name).expect("demo block");
        let Some(template) = block.template.as_deref() else {
            continue;
        };
        let input = alice_input(block);
        let svg = f
            .campaign
            .render_template(template, &input.to_tera_context(block))
            .expect("template");
        let pixmap = f
            .renderer
            .rasterizer()
            .rasterize(&svg, block.width, block.height, 1)
            .expect("raster");
        let previous = encode_previous(&pixmap);
        let lossless = Renderer::encode_png(&pixmap, PngMode::Lossless).expect("png");
        let palette = Renderer::encode_png(&pixmap, PngMode::Palette).expect("png");
        assert_eq!(
            decode_rgba(&lossless),
            decode_rgba(&previous),
            "{name}: the lossless mode keeps every pixel"
        );
        let (exact, indexed) = (decode_rgba(&lossless), decode_rgba(&palette));
        let worst = exact
            .as_raw()
            .iter()
            .zip(indexed.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            before.push(batch(10, || {
                black_box(encode_previous(black_box(&pixmap)));
            }));
            after.push(batch(10, || {
                black_box(Renderer::encode_png(black_box(&pixmap), PngMode::Lossless).ok());
            }));
        }
        let palette_ms = median(
            (0..7)
                .map(|_| {
                    batch(1, || {
                        black_box(Renderer::encode_png(black_box(&pixmap), PngMode::Palette).ok());
                    })
                })
                .collect(),
        );
        let extra: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let (before, after, extra) = (median(before), median(after), median(extra));
        println!(
            "  {name:9} {:>3}x{:<4} {:>11} {:>12}  {:.2}x  {before:>11.3}  {after:>11.3}  {extra:>+8.3}  {:>10}  {:.2}x  {worst:>11}  {palette_ms:>10.3}",
            block.width,
            block.height,
            previous.len(),
            lossless.len(),
            lossless.len() as f64 / previous.len() as f64,
            palette.len(),
            palette.len() as f64 / previous.len() as f64,
        );
    }
    println!("  (palette: every channel of every pixel within {PALETTE_MAX_ERROR} levels, else written losslessly; its ms is one encode, median of 7)");
}

/// `scale=2` against `scale=1` for the cart, in turns (the countdown's is in
/// `cargo bench --bench countdown`).
fn retina_summary() {
    const ROUNDS: usize = 21;
    let f = fixture();
    let cart = f.campaign.block("cart").expect("cart block");
    let render = |scale: u8| {
        opentime::open::render_block(
            &f.renderer,
            &f.campaign,
            cart,
            Format::Png,
            scale,
            black_box(&f.input),
        )
        .expect("render")
        .bytes
        .len()
    };
    let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let a = batch(6, || {
            black_box(render(1));
        });
        let b = batch(6, || {
            black_box(render(2));
        });
        one.push(a);
        two.push(b);
        ratio.push(b / a);
    }
    println!(
        "\nretina, cart (Alice, every text kept; median of {ROUNDS} interleaved rounds): scale=1 {:.3} ms, scale=2 {:.3} ms, {:.2}x",
        median(one),
        median(two),
        median(ratio)
    );
}

/// Whether this is a measuring run (`cargo bench`), not `cargo test`'s smoke run.
fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn main() {
    benches();
    // `cargo test --all-targets` runs this once as a smoke test (without `--bench`): no summary.
    if !measuring() {
        return;
    }
    let bytes = {
        let f = fixture();
        let block = f.campaign.block("cart").expect("cart block");
        opentime::open::render_block(&f.renderer, &f.campaign, block, Format::Png, 1, &f.input)
            .map(|r| r.bytes.len())
            .unwrap_or(0)
    };
    let Some(baseline) = median_ms("cart_miss", "baseline_usvg_resvg_encode_png") else {
        return;
    };
    println!("\ncriterion: demo/cart cache-miss render (600x300, Tera -> SVG -> PNG), {bytes} bytes for alice");
    println!("  baseline usvg+resvg+encode_png:            median {baseline:.3} ms per render");
    if let Ok(share) = std::fs::read_to_string(stream_share_path()) {
        println!("  campaign stream reused {share} from earlier renders");
    }
    for (case, label) in [
        (
            "opentime_campaign_stream",
            "opentime, campaign stream:     ",
        ),
        ("opentime_cold", "opentime, cold (nothing kept): "),
        ("opentime_same_context", "opentime, same context again:  "),
        (
            "opentime_stream_cyrillic",
            "opentime, Cyrillic names:      ",
        ),
        ("opentime_stream_cjk", "opentime, CJK names:           "),
        ("opentime_stream_arabic", "opentime, Arabic names:        "),
    ] {
        if let Some(ours) = median_ms("cart_miss", case) {
            println!("  {label}            median {ours:.3} ms per render  ({:.2}x faster than the baseline)", baseline / ours);
        }
    }
    interleaved_summary();
    png_summary();
    retina_summary();
}
