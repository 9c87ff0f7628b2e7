//! `blocks.toml`: what each block of a campaign is and how it is served.
//!
//! ```toml
//! [blocks.cart]
//! kind = "image"              # image | countdown | html
//! template = "cart.svg"       # Tera template producing SVG (image, countdown)
//! html = "cart.html"          # optional Tera template for /html/{campaign}/{block}.html
//! width = 600
//! height = 300
//! reads = ["profile", "cart"] # context fields the block reads; [] = a shared block
//! fallback = "fallback/cart.svg"
//! request = ["location"]      # facts about the open the template sees: client, location, time
//! query = ["color"]           # URL query parameters the template sees as `query.NAME`
//! feeds = ["weather"]         # the campaign's live data feeds it reads (`feeds.NAME`)
//! poll = "sport"              # the campaign's poll whose live counts it shows (`poll`)
//! ```
//! A block may also list `[[blocks.NAME.variants]]` (`variants.rs`) and run a test over them
//! (`[blocks.NAME.test]`); the campaign declares `[feeds.NAME]` (`feeds.rs`) and
//! `[polls.NAME]` (`polls.rs`).
//! Unknown keys are an error, so a typo in a setting is caught by `opentime check`. Each block's
//! settings are then checked, and their defaults applied, by `validate.rs`, which also holds
//! [`parse`](super::validate::parse), the manifest's entry point.

use super::feeds::FeedSettings;
use super::links::Links;
use super::polls::PollSettings;
use super::suppress::Suppression;
use super::variants::{TestSettings, VariantSettings, Variants};
use crate::countdown::settings::CountdownSpec;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("block `{block}`: {reason}")]
    Invalid { block: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// A still image (PNG) from an SVG template.
    Image,
    /// An animated countdown (GIF).
    Countdown,
    /// An HTML fragment only.
    Html,
}

/// How a block's answer may be cached by CDNs and mail proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Reads personal context: cacheable per URL, revalidated on every open.
    Personalized,
    /// Same for everyone: `public, max-age` for this many seconds.
    Shared { max_age: u32 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestFile {
    #[serde(default)]
    pub(super) blocks: BTreeMap<String, BlockSettings>,
    #[serde(default)]
    pub(super) feeds: BTreeMap<String, FeedSettings>,
    #[serde(default)]
    pub(super) polls: BTreeMap<String, PollSettings>,
}

/// One block as written in `blocks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlockSettings {
    pub(crate) kind: BlockKind,
    pub(crate) template: Option<String>,
    pub(crate) html: Option<String>,
    #[serde(default)]
    pub(crate) width: u32,
    #[serde(default)]
    pub(crate) height: u32,
    pub(crate) reads: Option<Vec<String>>,
    pub(crate) token: Option<bool>,
    pub(crate) signed: Option<bool>,
    pub(crate) fallback: Option<String>,
    pub(crate) fallback_html: Option<String>,
    /// "personalized" or "shared"; derived from `reads` when absent.
    pub(crate) cache: Option<String>,
    /// Seconds a shared answer stays right (`max-age`, `s-maxage`).
    pub(crate) max_age: Option<u32>,
    /// Templates see `now` rounded down to this many seconds, so renders can be cached.
    pub(crate) time_bucket: Option<u32>,
    /// Facts about the open the templates see: `client` and/or `location`.
    pub(crate) request: Option<Vec<String>>,
    /// The URL query parameters the templates see (`query.NAME`); all others are ignored.
    pub(crate) query: Option<Vec<String>>,
    /// Tera expression; when true the block shows its suppressed variant (see `suppress.rs`).
    pub(crate) suppress_if: Option<String>,
    pub(crate) suppressed_template: Option<String>,
    pub(crate) suppressed_image: Option<String>,
    /// `"palette"`: an indexed PNG when it keeps every pixel close (see `render/png.rs`);
    /// `"lossless"` (the default) otherwise.
    pub(crate) png: Option<String>,
    /// `"first_open"`: keep what the first human open showed (see `crate::lock`).
    pub(crate) lock: Option<String>,
    /// Seconds a lock lasts (default 30 days).
    pub(crate) lock_ttl: Option<u64>,
    /// Click-through target of item `i`, a Tera template (see `links.rs`).
    pub(crate) link: Option<String>,
    pub(crate) link_hosts: Option<Vec<String>>,
    pub(crate) default_link: Option<String>,
    /// Countdown blocks only (see `countdown.rs` and the README's countdown section).
    pub(crate) deadline_field: Option<String>,
    pub(crate) deadline: Option<String>,
    pub(crate) tz: Option<String>,
    pub(crate) frames: Option<usize>,
    #[serde(rename = "loop")]
    pub(crate) looping: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) labels: Option<String>,
    pub(crate) hide_units: Option<String>,
    pub(crate) expired_template: Option<String>,
    pub(crate) expired_image: Option<String>,
    /// Zone for local times when `tz = "reader"` and the reader's zone is unknown.
    pub(crate) fallback_tz: Option<String>,
    /// Template of the still that says when the countdown ends (Apple's prefetch gets it).
    pub(crate) still_template: Option<String>,
    /// Which fetches get that still: `"still"` (every machine), `"animate"` (none) or a template.
    pub(crate) on_prefetch: Option<String>,
    /// The image's `alt` text in the snippets the studio writes.
    pub(crate) alt: Option<String>,
    /// Above this many kilobytes the studio warns that the answer is heavy (default 100).
    pub(crate) weight_cap_kb: Option<u32>,
    /// Variants chosen by rules, or the arms of `test` (see `variants.rs`).
    pub(crate) variants: Option<Vec<VariantSettings>>,
    pub(crate) test: Option<TestSettings>,
    /// The campaign's feeds the templates read as `feeds.NAME`.
    pub(crate) feeds: Option<Vec<String>>,
    /// The campaign's poll whose counts the templates see as `poll`.
    pub(crate) poll: Option<String>,
}

/// A block, validated and with its defaults applied.
#[derive(Debug, Clone)]
pub struct Block {
    pub name: String,
    pub kind: BlockKind,
    /// The SVG template (image and countdown blocks).
    pub template: Option<String>,
    /// The HTML fragment template, when the block has one.
    pub html_template: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Context fields the template sees; `None` means the whole context.
    pub reads: Option<Vec<String>>,
    pub token_required: bool,
    /// The URL's parameters must carry a signature (`sig`; `opentime url --query`), so nobody
    /// can ask the block for values its URLs were not made with.
    pub signed_query: bool,
    pub cache: CachePolicy,
    pub time_bucket_secs: u32,
    /// Fallback image file, relative to the campaign directory.
    pub fallback: Option<String>,
    /// Fallback HTML file, relative to the campaign directory.
    pub fallback_html: Option<String>,
    /// Templates see `client` (the mail client kind): the answer varies with the User-Agent.
    pub reads_client: bool,
    /// Templates see `location` and `nearest_stores`.
    pub reads_location: bool,
    /// Templates see `local`: the reader's local date, weekday and hour.
    pub reads_time: bool,
    /// Variants by rules, or the arms of a test.
    pub variants: Option<std::sync::Arc<Variants>>,
    /// The campaign's feeds the templates read (`feeds.NAME`).
    pub feeds: Vec<String>,
    /// The campaign's poll the templates see as `poll`.
    pub poll: Option<String>,
    /// When and how the block is suppressed.
    pub suppression: Option<std::sync::Arc<Suppression>>,
    /// Lock-on-open: how long the first human open's inputs are kept; `None` = not locked.
    pub lock_ttl: Option<std::time::Duration>,
    /// Click-through links.
    pub links: Option<std::sync::Arc<Links>>,
    /// A countdown block's settings (`kind = "countdown"` only).
    pub countdown: Option<std::sync::Arc<CountdownSpec>>,
    /// The URL query parameters the templates see, and so the only ones in the render key
    /// (besides a countdown's own `until`, `tz`, `lang` and `first_frame`).
    pub query_keys: Vec<String>,
    /// How the block's PNGs are written.
    pub png: crate::render::PngMode,
    /// The `alt` text of the block's image in an email (the studio's snippets).
    pub alt: String,
    /// Answers above this many bytes are flagged as heavy in the studio.
    pub weight_cap_bytes: u64,
}

/// An email image above this weight loads slowly on a phone: the studio flags it.
pub(super) const DEFAULT_WEIGHT_CAP_KB: u32 = 100;

impl Block {
    /// Whether the block reads any personal context.
    pub fn reads_context(&self) -> bool {
        self.reads.as_ref().is_none_or(|fields| !fields.is_empty())
    }

    /// Whether the URL query parameter `key` reaches this block's render (and its cache key):
    /// the keys it declares in `query = [...]`, and a countdown's own parameters.
    pub fn reads_query_key(&self, key: &str) -> bool {
        self.query_keys.iter().any(|k| k == key)
            || (self.countdown.is_some() && crate::countdown::QUERY_KEYS.contains(&key))
    }

    /// Whether `field` is visible to this block's templates.
    pub fn reads_field(&self, field: &str) -> bool {
        self.reads
            .as_ref()
            .is_none_or(|fields| fields.iter().any(|f| f == field))
    }
}
