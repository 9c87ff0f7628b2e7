//! Query parameters and the render key: a block sees only the query parameters it declares
//! (`query = [...]` in `blocks.toml`); any other parameter is ignored — invisible to the
//! template and never part of the render cache key — so random parameters cannot bust the
//! cache or make the server render again.

mod common;

use common::*;

/// A shared banner whose fill comes from the declared `color` parameter, and which also
/// tries to print the undeclared `x`.
const BANNER_TOML: &str = r#"
[blocks.banner]
kind = "image"
template = "banner.svg"
width = 40
height = 20
reads = []
cache = "shared"
max_age = 60
query = ["color"]
fallback = "fallback/transparent.png"
"#;

const BANNER_SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" viewBox="0 0 40 20">
  <rect width="40" height="20" fill="{{ query.color | default(value='black') }}"/>
  {% if query.x %}<rect width="20" height="20" fill="white"/>{% endif %}
</svg>"#;

async fn banner_server() -> TestServer {
    let templates = copy_templates();
    let demo = templates.path().join("demo");
    let manifest = std::fs::read_to_string(demo.join("blocks.toml")).expect("manifest");
    std::fs::write(demo.join("blocks.toml"), manifest + BANNER_TOML).expect("manifest");
    std::fs::write(demo.join("banner.svg"), BANNER_SVG).expect("template");
    TestServer::builder()
        .embedded_store()
        .templates(templates.path())
        .keep(templates)
        .start()
        .await
}

fn pixel(answer: &Answer, x: u32, y: u32) -> [u8; 4] {
    decode_png(&answer.body).get_pixel(x, y).0
}

#[tokio::test]
async fn declared_parameters_reach_the_template_and_split_the_key() {
    let server = banner_server().await;
    let red = get(&server.url("/img/demo/banner.png?color=red")).await;
    let blue = get(&server.url("/img/demo/banner.png?color=blue")).await;
    assert_eq!((red.status, blue.status), (200, 200));
    assert_eq!(red.header("x-opentime-fallback"), None);
    assert!(close(pixel(&red, 30, 10), [255, 0, 0, 255], 2));
    assert!(close(pixel(&blue, 30, 10), [0, 0, 255, 255], 2));
    assert_ne!(red.header("etag"), blue.header("etag"));
    server.shutdown().await;
}

#[tokio::test]
async fn undeclared_parameters_are_invisible_and_never_split_the_key() {
    let server = banner_server().await;
    let first = get(&server.url("/img/demo/banner.png?color=red")).await;
    assert_eq!(first.status, 200);
    let misses_before = metric(
        &server.metrics().await,
        "opentime_render_cache_misses_total",
    );
    for i in 0..20 {
        let url = format!("/img/demo/banner.png?color=red&x={i}&utm_source=mail{i}&z{i}=1");
        let answer = get(&server.url(&url)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("etag"), first.header("etag"), "request {i}");
        // The template asked for `query.x`: it never saw it (no white square on the left).
        assert!(close(pixel(&answer, 5, 10), [255, 0, 0, 255], 2));
    }
    let misses_after = metric(
        &server.metrics().await,
        "opentime_render_cache_misses_total",
    );
    assert_eq!(
        misses_after, misses_before,
        "random parameters rendered again"
    );
    server.shutdown().await;
}

#[test]
fn opentime_s_own_parameters_cannot_be_declared() {
    let templates = copy_templates();
    let demo = templates.path().join("demo");
    let manifest = std::fs::read_to_string(demo.join("blocks.toml")).expect("manifest");
    let bad = BANNER_TOML.replace(r#"query = ["color"]"#, r#"query = ["color", "t"]"#);
    std::fs::write(demo.join("blocks.toml"), manifest + &bad).expect("manifest");
    std::fs::write(demo.join("banner.svg"), BANNER_SVG).expect("template");
    let renderer = opentime::render::Renderer::load(&repo().join("assets")).expect("assets");
    let Err(error) = opentime::blocks::Campaign::load(&demo, &renderer) else {
        panic!("a campaign declaring `t` loaded");
    };
    let error = error.to_string();
    assert!(
        error.contains("banner") && error.contains("opentime's own"),
        "{error}"
    );
}
