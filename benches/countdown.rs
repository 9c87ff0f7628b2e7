//! The 60-frame 600×120 demo countdown: median ms per GIF and bytes, for the incremental
//! renderer, for full renders with the same encoder, and for the naive pipeline (full render +
//! per-frame NeuQuant), all in one run. `cargo bench --bench countdown`. The `cpu` column is
//! the thread's on-CPU time (`/proc/thread-self/schedstat`): the honest one-core figure on a
//! shared machine, where wall time grows with other processes' load.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use opentime::countdown::frames::render_frames;
use opentime::countdown::{
    render_countdown, CountdownSettings, FramePlan, FrameTemplate, Remaining, Strategy,
};
use resvg::usvg;
use serde_json::Map;

/// The allocator `opentime serve` runs with (`src/main.rs`), so a render costs here what it
/// costs in the server; the naive pipeline runs with it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn options() -> usvg::Options<'static> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fonts");
    let mut db = usvg::fontdb::Database::new();
    for f in ["Inter-Regular.otf", "Inter-Bold.otf"] {
        db.load_font_data(std::fs::read(format!("{dir}/{f}")).expect("font file"));
    }
    usvg::Options {
        fontdb: Arc::new(db),
        font_family: "Inter".into(),
        ..usvg::Options::default()
    }
}

fn tera() -> tera::Tera {
    let mut t = tera::Tera::default();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/demo/countdown.svg");
    t.add_template_file(path, Some("countdown.svg"))
        .expect("demo template");
    t
}

fn clock() -> (DateTime<Utc>, DateTime<Utc>) {
    let at = DateTime::parse_from_rfc3339("2026-11-25T14:32:15Z")
        .expect("literal")
        .with_timezone(&Utc);
    // 2 days 13:27:45 left: the minutes roll over inside the 60 frames.
    let deadline = at + chrono::Duration::seconds(2 * 86_400 + 13 * 3_600 + 27 * 60 + 45);
    (deadline, at)
}

/// The naive pipeline: every frame rendered in full, each quantized on its own (NeuQuant).
fn naive(t: &FrameTemplate, deadline: DateTime<Utc>, at: DateTime<Utc>) -> Vec<u8> {
    let plan = FramePlan {
        start: Remaining::between(deadline, at),
        count: 60,
        lang: Default::default(),
        style: Default::default(),
        visibility: Default::default(),
    };
    let frames = render_frames(t, &plan, Strategy::FullEachFrame).expect("renders");
    let (w, h) = (frames.width as u16, frames.height as u16);
    let mut enc = gif::Encoder::new(Vec::new(), w, h, &[]).expect("encoder");
    enc.set_repeat(gif::Repeat::Infinite).expect("repeat");
    for p in frames.patches {
        let mut rgba = p.rgba;
        let mut f = gif::Frame::from_rgba_speed(w, h, &mut rgba, 10);
        f.delay = 100;
        enc.write_frame(&f).expect("frame");
    }
    enc.into_inner().expect("gif")
}

/// This thread's on-CPU time in nanoseconds (Linux `schedstat`), if available: unlike wall
/// time it does not grow when other processes share the cores.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Median wall ms, median on-CPU ms (if known) and the last result's byte size.
fn median_ms(mut f: impl FnMut() -> usize, runs: usize) -> (f64, Option<f64>, usize) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu_ns());
        bytes = black_box(f());
        wall.push(t.elapsed());
        if let (Some(a), Some(b)) = (c, cpu_ns()) {
            cpu.push(b.saturating_sub(a));
        }
    }
    wall.sort();
    cpu.sort_unstable();
    let cpu_ms = (cpu.len() == runs).then(|| cpu[runs / 2] as f64 / 1e6);
    (wall[runs / 2].as_secs_f64() * 1e3, cpu_ms, bytes)
}

fn show(name: &str, (wall, cpu, bytes): (f64, Option<f64>, usize)) {
    let cpu = cpu.map_or_else(|| "     n/a".into(), |c| format!("{c:8.2}"));
    println!("  {name:<30}: {wall:8.2} ms wall {cpu} ms cpu {bytes:8} bytes");
}

fn main() {
    let (tera, svg, extra) = (tera(), options(), Map::new());
    let t = FrameTemplate {
        tera: &tera,
        name: "countdown.svg",
        svg: &svg,
        width: 600,
        height: 120,
        scale: 1.0,
        extra: &extra,
    };
    let (deadline, at) = clock();
    let fast = CountdownSettings::default();
    let full = CountdownSettings {
        strategy: Strategy::FullEachFrame,
        ..fast
    };
    let run = |s: &CountdownSettings| render_countdown(&t, None, deadline, at, s).expect("renders");

    // Without `--bench` (as under `cargo test --all-targets`, in debug) one run each is a smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let runs = |n: usize| if bench { n } else { 1 };
    let fast_run = median_ms(|| run(&fast).bytes.len(), runs(101));
    let full_run = median_ms(|| run(&full).bytes.len(), runs(11));
    let naive_run = median_ms(|| naive(&t, deadline, at).len(), runs(7));
    let g = run(&fast);
    println!(
        "countdown 600x120, 60 frames ({} in the GIF, {} full render), medians:",
        g.frames, g.full_renders
    );
    show("opentime (incremental)", fast_run);
    show("full render + fixed palette", full_run);
    show("naive: full + NeuQuant/frame", naive_run);
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(f64::NAN, |(a, b)| a / b);
    println!(
        "  naive / incremental: {:.1}x wall, {:.1}x cpu; size {:.2}x",
        naive_run.0 / fast_run.0,
        ratio(naive_run.1, fast_run.1),
        fast_run.2 as f64 / naive_run.2 as f64
    );
    // Retina: the same countdown at scale=2, runs alternating with scale=1.
    let retina = FrameTemplate { scale: 2.0, ..t };
    let run_retina =
        |s: &CountdownSettings| render_countdown(&retina, None, deadline, at, s).expect("renders");
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..runs(15) {
        one.push(median_ms(|| run(&fast).bytes.len(), 3));
        two.push(median_ms(|| run_retina(&fast).bytes.len(), 3));
    }
    let cpu = |runs: &[(f64, Option<f64>, usize)]| {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r.1).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "  scale=2 / scale=1: {:.2}x cpu ({:.2} against {:.2} ms), {} against {} bytes",
        cpu(&two) / cpu(&one),
        cpu(&two),
        cpu(&one),
        two[0].2,
        one[0].2
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    c.bench_function("countdown_60f_600x120_incremental", |b| {
        b.iter(|| run(&fast))
    });
    c.bench_function("countdown_60f_600x120_naive", |b| {
        b.iter(|| naive(&t, deadline, at))
    });
    c.final_summary();
}
