//! Image bombs, crafted here, drawn by real templates: every one is refused or bounded, the
//! render still succeeds, the slot shows the grey placeholder, and the process's peak memory
//! stays under [`MAX_GROWTH_BYTES`] more than before (VmHWM from /proc/self/status).
//!
//! - `data:` images in the context (offline renders of the demo cart, as `tests/common/pixels.rs`
//!   does): a PNG and a WebP whose headers declare 16383×16383 pixels (1 GiB as RGBA), a nested
//!   SVG (percent-encoded), a PNG over the 1 MiB byte cap; a small red PNG still draws red.
//! - Remote photos through the server (a local image host on 127.0.0.1, as in
//!   `tests/live_images.rs`): an 8192×1 strip drawn `slice` into the cart's 44×44 slots (a
//!   360,448×44 intermediate before the fix; 720,896×88 at retina), and the 16383×16383 PNG.
//!
//! The tests of this file hold [`SERIAL`], so one test's allocations never show in another's
//! peak.

mod common;
mod image_server;

use base64::Engine as _;
use common::*;
use image_server::ImageServer;
use serde_json::json;
use std::io::Cursor;
use std::time::Duration;

/// The neutral grey of a placeholder tile.
const PLACEHOLDER: [u8; 4] = [229, 231, 235, 255];
const RED: [u8; 4] = [255, 0, 0, 255];
/// Most the process's peak resident memory may grow during one test. One 16383×16383 RGBA
/// buffer alone is 1 GiB; the bounded renders need a few MB.
const MAX_GROWTH_BYTES: u64 = 200 * 1024 * 1024;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// VmHWM (peak resident set) and VmRSS of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .expect("a memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[track_caller]
fn assert_peak_growth_below(before: (u64, u64), what: &str) {
    let after = memory();
    let growth = after.0.saturating_sub(before.0);
    eprintln!(
        "{what}: VmHWM {} → {} MiB (+{} MiB), VmRSS {} → {} MiB",
        before.0 >> 20,
        after.0 >> 20,
        growth >> 20,
        before.1 >> 20,
        after.1 >> 20
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "{what}: peak memory grew by {} MiB",
        growth >> 20
    );
}

/// A valid PNG signature and IHDR declaring `width`×`height` RGBA, a short IDAT, IEND: 70-odd
/// bytes that would make a naive decoder allocate width × height × 4.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let sum = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&sum.to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A lossless WebP (VP8L) header declaring `width`×`height`, then a few bytes of nothing.
fn webp_bomb(width: u32, height: u32) -> Vec<u8> {
    let bits: u32 = (width - 1) | ((height - 1) << 14) | (1 << 28);
    let mut vp8l = vec![0x2f];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0; 32]);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((4 + 8 + vp8l.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBPVP8L");
    out.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    out.extend_from_slice(&vp8l);
    out
}

fn png_of(image: &image::RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode");
    out
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The centre row of cart line `line`'s 44×44 thumbnail: (x of its left quarter, x of its
/// right quarter, y).
fn thumbnail(line: u32) -> (u32, u32, u32) {
    let top = 84 + line * 56 + 6;
    (28 + 10, 28 + 34, top + 22)
}

#[track_caller]
fn assert_slot(png: &image::RgbaImage, line: u32, expected: [u8; 4], tolerance: u8) {
    let (left, right, y) = thumbnail(line);
    for x in [left, right] {
        let pixel = png.get_pixel(x, y).0;
        assert!(
            close(pixel, expected, tolerance),
            "line {line} x {x}: {pixel:?}, expected {expected:?}"
        );
    }
}

fn render_cart(urls: &[String]) -> image::RgbaImage {
    let fields = json!({"profile": {"first_name": "Test"}, "cart": cart_with(urls)});
    decode_png(&render_offline("demo", "cart", &fields, "alice"))
}

#[test]
fn data_image_bombs_draw_the_placeholder_within_the_memory_bound() {
    let _serial = SERIAL.blocking_lock();
    let red = data_url(
        "image/png",
        &png_of(&image::RgbaImage::from_pixel(4, 4, image::Rgba(RED))),
    );
    // Warm up (fonts, assets, first render) so the measurement sees only the images.
    render_cart(std::slice::from_ref(&red));
    let before = memory();

    let png = render_cart(&[
        red.clone(),
        data_url("image/png", &png_bomb(16383, 16383)),
        data_url("image/webp", &webp_bomb(16383, 16383)),
    ]);
    assert_eq!(png.dimensions(), (600, 300));
    assert_slot(&png, 0, RED, 2);
    assert_slot(&png, 1, PLACEHOLDER, 0);
    assert_slot(&png, 2, PLACEHOLDER, 0);

    // A nested SVG (a full green square if it were drawn), as base64 and percent-encoded, and
    // a real PNG padded past the 1 MiB cap.
    let nested = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#00ff00"/></svg>"##;
    let percent: String = nested
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut padded = png_of(&image::RgbaImage::from_pixel(4, 4, image::Rgba(RED)));
    padded.resize(1024 * 1024 + 1, 0);
    let png = render_cart(&[
        data_url("image/svg+xml", nested.as_bytes()),
        format!("data:image/svg+xml,{percent}"),
        data_url("image/png", &padded),
    ]);
    for line in 0..3 {
        assert_slot(&png, line, PLACEHOLDER, 0);
    }
    assert_peak_growth_below(before, "data: bombs");
}

/// The shared test image host, also serving `/strip.png` (8192×1, red) and `/bomb.png`
/// (16383×16383 declared).
async fn image_host() -> ImageServer {
    let strip = png_of(&image::RgbaImage::from_pixel(8192, 1, image::Rgba(RED)));
    let extra = vec![("/strip.png", strip), ("/bomb.png", png_bomb(16383, 16383))];
    ImageServer::start_with(None, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_strip_and_bomb_render_within_the_memory_bound() {
    let _serial = SERIAL.lock().await;
    let host = image_host().await;
    let port = host.port();
    let redis = RedisServer::start();
    let base = format!("http://images.test:{port}");
    redis.hset("alice", "profile", &json!({"first_name": "Test"}));
    redis.hset(
        "alice",
        "cart",
        &cart_with(&[format!("{base}/strip.png"), format!("{base}/bomb.png")]),
    );
    let server = TestServer::builder()
        .redis(&redis)
        .templates(&repo().join("templates"))
        .deadline_ms(10_000)
        .store_timeout_ms(1000)
        .image_private_hosts(&["images.test"])
        .image_resolve(&["images.test=127.0.0.1"])
        .image_timeout_ms(5000)
        .start()
        .await;
    let before = memory();
    for scale in [1u32, 2] {
        let url = format!("{}&scale={scale}", server.signed("demo/cart.png", "alice"));
        let answer = tokio::time::timeout(Duration::from_secs(60), get(&url))
            .await
            .expect("answered");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-opentime-fallback"), None, "not a fallback");
        assert_eq!(
            answer.header("x-opentime-image-fallback"),
            Some("1 too-large"),
            "the strip draws, the bomb is refused"
        );
        let png = answer.png();
        assert_eq!(png.dimensions(), (600 * scale, 300 * scale));
        let (left, right, y) = thumbnail(0);
        for x in [left, right] {
            let pixel = png.get_pixel(x * scale, y * scale).0;
            assert!(close(pixel, RED, 2), "strip at x {x}: {pixel:?}");
        }
        let (left, right, y) = thumbnail(1);
        for x in [left, right] {
            let pixel = png.get_pixel(x * scale, y * scale).0;
            assert_eq!(pixel, PLACEHOLDER, "bomb at x {x}");
        }
    }
    assert_peak_growth_below(before, "remote strip and bomb");
    server.shutdown().await;
}
