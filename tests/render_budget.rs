//! The render budget under runaway templates: two blocks whose renders take long (loops at the
//! template sandbox's bounds) are opened again and again, while another block must still render
//! in normal time — slow blocks share a lane of the render permits instead of taking them all.

mod common;

use common::*;
use std::time::{Duration, Instant};

const BLOCKS_TOML: &str = r#"
[blocks.slow_one]
kind = "image"
template = "slow.svg"
width = 40
height = 20
reads = []
cache = "shared"
query = ["n"]
fallback = "fallback/transparent.png"

[blocks.slow_two]
kind = "image"
template = "slow.svg"
width = 40
height = 20
reads = []
cache = "shared"
query = ["n"]
fallback = "fallback/transparent.png"

[blocks.quick]
kind = "image"
template = "quick.svg"
width = 40
height = 20
reads = []
cache = "shared"
query = ["n"]
fallback = "fallback/transparent.png"
"#;

/// 99,000 loop turns with a few filters each: about the most the sandbox allows one render.
const SLOW_SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><desc>{% for i in range(end=9000) %}{% for j in range(end=10) %}{{ i ~ j ~ "ab" | upper | replace(from="A", to="B") | lower | replace(from="b", to="c") | upper | length }}{% endfor %}{% endfor %}</desc><rect width="40" height="20" fill="red"/></svg>"#;
const QUICK_SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="green"/><desc>{{ query.n }}</desc></svg>"#;

#[tokio::test]
async fn two_runaway_blocks_leave_another_block_rendering_in_normal_time() {
    let templates = copy_templates();
    let demo = templates.path().join("demo");
    let manifest = std::fs::read_to_string(demo.join("blocks.toml")).expect("manifest");
    std::fs::write(demo.join("blocks.toml"), manifest + BLOCKS_TOML).expect("manifest");
    std::fs::write(demo.join("slow.svg"), SLOW_SVG).expect("template");
    std::fs::write(demo.join("quick.svg"), QUICK_SVG).expect("template");
    let server = TestServer::builder()
        .embedded_store()
        .templates(templates.path())
        .keep(templates)
        .render_concurrency(2)
        .deadline_ms(20_000)
        .start()
        .await;

    // One render of each slow block: long enough to mark it heavy.
    let started = Instant::now();
    for block in ["slow_one", "slow_two"] {
        let answer = get(&server.url(&format!("/img/demo/{block}.png?n=warm"))).await;
        assert_eq!(
            (answer.status, answer.header("x-opentime-fallback")),
            (200, None)
        );
    }
    let slow_render = started.elapsed() / 2;
    assert!(
        slow_render > Duration::from_millis(300),
        "the slow template must be slow to test anything: {slow_render:?}"
    );

    // Both slow blocks opened again and again, all cache misses: four opens keep their lane
    // busy for four slow renders, far longer than the quick block's checks below. They render
    // one after the other in that lane, so the last waits for the other three: a patient
    // client (a debug build on a slow machine takes seconds per render).
    let patient = reqwest::Client::builder()
        .user_agent(PERSON_USER_AGENT)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let hammer: Vec<_> = (0..4)
        .map(|n| {
            let block = if n % 2 == 0 { "slow_one" } else { "slow_two" };
            let url = server.url(&format!("/img/demo/{block}.png?n={n}"));
            let request = patient.get(url);
            tokio::spawn(async move { send(request).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Meanwhile the quick block renders (cache misses too) in normal time.
    for n in 0..3 {
        let started = Instant::now();
        let answer = get(&server.url(&format!("/img/demo/quick.png?n={n}"))).await;
        let took = started.elapsed();
        assert_eq!(
            (answer.status, answer.header("x-opentime-fallback")),
            (200, None)
        );
        assert!(
            took < slow_render.max(Duration::from_millis(500)),
            "the quick block waited {took:?} behind runaway renders of {slow_render:?} each"
        );
    }
    for task in hammer {
        assert_eq!(task.await.expect("open"), 200);
    }
    server.shutdown().await;
}
