//! Shared test harness, defined once for every integration test file: a real `redis-server`
//! per test (`redis.rs`), a real Redis Cluster or Sentinel set-up (`cluster.rs`), the real
//! opentime server built by one `ServerBuilder` (`server.rs`), HTTP helpers (`http.rs`) and
//! picture helpers (`pixels.rs`).
#![allow(dead_code, unused_imports)]

mod browser;
mod cluster;
mod colour_blocks;
mod http;
mod pixels;
mod redis;
mod server;
mod studio;

pub use self::browser::*;
pub use self::cluster::*;
pub use self::colour_blocks::*;
pub use self::http::*;
pub use self::pixels::*;
pub use self::redis::*;
pub use self::server::*;
pub use self::studio::*;

use opentime::signing::Signer;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const SECRET: &str = "integration-test-secret-0123456789";

/// The channel tokens the ingest API tests give the SMS and CRM channels.
pub const SMS_TOKEN: &str = "sms-channel-token-0123456789";
pub const CRM_TOKEN: &str = "crm-channel-token-0123456789";

/// The repository root (where `templates/` and `assets/` live).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A demo sample context file (`templates/demo/samples/{name}.json`).
pub fn sample_path(name: &str) -> PathBuf {
    repo()
        .join("templates/demo/samples")
        .join(format!("{name}.json"))
}

/// A demo sample context, parsed.
pub fn sample(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(sample_path(name)).expect("sample");
    serde_json::from_str(&text).expect("sample JSON")
}

/// The fonts picture tests render with: the shipped ones and a fixed set of Debian's Noto files
/// (`FontSettings::debian_noto`), so what they draw does not depend on what else is installed.
/// A missing file fails the test, saying how to install it.
pub fn test_fonts() -> opentime::render::FontSettings {
    let settings = opentime::render::FontSettings::debian_noto();
    for path in &settings.paths {
        assert!(
            path.exists(),
            "{} is missing: run scripts/test, which installs fonts-noto-core, fonts-noto-cjk \
             and fonts-noto-color-emoji",
            path.display()
        );
    }
    settings
}

/// The test GeoIP database (`tests/fixtures/geo-test.mmdb`).
pub fn geo_fixture() -> PathBuf {
    repo().join("tests/fixtures/geo-test.mmdb")
}

/// The test Apple relay egress list (`tests/fixtures/apple-egress-test.csv`).
pub fn apple_egress_fixture() -> PathBuf {
    repo().join("tests/fixtures/apple-egress-test.csv")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// The signed token of a subscriber under the test secret.
pub fn token(subscriber: &str) -> String {
    Signer::from_secrets(SECRET)
        .expect("secret")
        .token(subscriber)
}

/// An RFC 3339 test literal as a UTC time.
pub fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("test literal")
        .to_utc()
}

/// A copy of the repository's templates that a test may change.
pub fn copy_templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo().join("templates"), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Polls `check` until it is true or `limit` passes; returns whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A `cart` context field with one line per photo URL (`image_url`), for product-photo tests.
pub fn cart_with(urls: &[String]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            serde_json::json!({"sku": format!("SKU-{i}"), "name": format!("Product {i}"), "quantity": 1, "price": 10.0, "image_url": url})
        })
        .collect();
    serde_json::json!({"currency": "EUR", "items": items})
}
