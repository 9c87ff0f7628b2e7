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

/// The same banner, declared `signed`: its URLs must carry `sig` for their parameters.
fn signed_banner_toml() -> String {
    BANNER_TOML
        .replace("[blocks.banner]", "[blocks.signed_banner]")
        .replace("fallback =", "signed = true\nfallback =")
}

async fn banner_server() -> TestServer {
    let templates = copy_templates();
    let demo = templates.path().join("demo");
    let manifest = std::fs::read_to_string(demo.join("blocks.toml")).expect("manifest");
    std::fs::write(
        demo.join("blocks.toml"),
        manifest + BANNER_TOML + &signed_banner_toml(),
    )
    .expect("manifest");
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

/// `opentime url` for the signed banner with `--query` arguments, printed for `server`.
fn signed_url(server: &TestServer, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_opentime"))
        .args(["url", "demo/signed_banner"])
        .args(args)
        .env("OPENTIME_SECRET", SECRET)
        .env("OPENTIME_PUBLIC_URL", server.url(""))
        .env_remove("OPENTIME_CONFIG")
        .output()
        .expect("opentime url");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn a_signed_block_renders_only_the_parameters_its_url_was_made_with() {
    let server = banner_server().await;
    let red = signed_url(&server, &["--query", "color=red"]);
    assert!(red.contains("&sig="), "{red}");
    let answer = get(&red).await;
    assert_eq!(answer.header("x-opentime-fallback"), None, "{red}");
    assert!(close(pixel(&answer, 30, 10), [255, 0, 0, 255], 2));
    // `scale` is not signed: the same URL at twice the size.
    let double = get(&format!("{red}&scale=2")).await;
    assert_eq!(double.header("x-opentime-fallback"), None);
    assert_eq!(decode_png(&double.body).dimensions(), (80, 40));

    let tampered = red.replace("color=red", "color=blue");
    let unsigned = server.url("/img/demo/signed_banner.png?color=blue");
    let extra = format!("{red}&x=1");
    let forged = format!(
        "{}&sig=AAAA",
        server.url("/img/demo/signed_banner.png?color=blue")
    );
    for url in [&tampered, &unsigned, &extra, &forged] {
        let answer = get(url).await;
        assert_eq!(answer.status, 200, "{url}");
        assert_eq!(
            answer.header("x-opentime-fallback"),
            Some("bad-signature"),
            "{url}"
        );
        assert!(
            decode_png(&answer.body)
                .pixels()
                .all(|p| p.0[3] == 0 || p.0[2] < 128),
            "a forged URL drew blue: {url}"
        );
    }
    // No parameters at all: `--signed` signs the empty query.
    let plain = get(&signed_url(&server, &["--signed"])).await;
    assert_eq!(plain.header("x-opentime-fallback"), None);
    assert!(
        close(pixel(&plain, 30, 10), [0, 0, 0, 255], 2),
        "the default fill"
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
