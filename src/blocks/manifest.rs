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
//! request = ["location"]      # facts about the open the template sees: client, location
//! ```
//! Unknown keys are an error, so a typo in a setting is caught by `opentime check`.

use super::links::Links;
use super::suppress::Suppression;
use crate::countdown::settings::{
    CountdownSettingsText, CountdownSpec, DEFAULT_COUNTDOWN_MAX_AGE, MAX_COUNTDOWN_MAX_AGE,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest width or height a block may declare, in pixels (before `scale`).
pub const MAX_BLOCK_SIDE: u32 = 2000;

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
struct ManifestFile {
    #[serde(default)]
    blocks: BTreeMap<String, BlockSettings>,
}

/// One block as written in `blocks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSettings {
    kind: BlockKind,
    template: Option<String>,
    html: Option<String>,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    reads: Option<Vec<String>>,
    token: Option<bool>,
    fallback: Option<String>,
    fallback_html: Option<String>,
    /// "personalized" or "shared"; derived from `reads` when absent.
    cache: Option<String>,
    /// Seconds a shared answer stays right (`max-age`, `s-maxage`).
    max_age: Option<u32>,
    /// Templates see `now` rounded down to this many seconds, so renders can be cached.
    time_bucket: Option<u32>,
    /// Facts about the open the templates see: `client` and/or `location`.
    request: Option<Vec<String>>,
    /// Tera expression; when true the block shows its suppressed variant (see `suppress.rs`).
    suppress_if: Option<String>,
    suppressed_template: Option<String>,
    suppressed_image: Option<String>,
    /// `"first_open"`: keep what the first human open showed (see `crate::lock`).
    lock: Option<String>,
    /// Seconds a lock lasts (default 30 days).
    lock_ttl: Option<u64>,
    /// Click-through target of item `i`, a Tera template (see `links.rs`).
    link: Option<String>,
    link_hosts: Option<Vec<String>>,
    default_link: Option<String>,
    /// Countdown blocks only (see `countdown.rs` and the README's countdown section).
    deadline_field: Option<String>,
    deadline: Option<String>,
    tz: Option<String>,
    frames: Option<usize>,
    #[serde(rename = "loop")]
    looping: Option<String>,
    lang: Option<String>,
    labels: Option<String>,
    hide_units: Option<String>,
    expired_template: Option<String>,
    expired_image: Option<String>,
}

/// How long a lock-on-open lasts when `lock_ttl` is not given.
pub const DEFAULT_LOCK_TTL_SECS: u64 = 30 * 24 * 3600;

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
    /// When and how the block is suppressed.
    pub suppression: Option<std::sync::Arc<Suppression>>,
    /// Lock-on-open: how long the first human open's inputs are kept; `None` = not locked.
    pub lock_ttl: Option<std::time::Duration>,
    /// Click-through links.
    pub links: Option<std::sync::Arc<Links>>,
    /// A countdown block's settings (`kind = "countdown"` only).
    pub countdown: Option<std::sync::Arc<CountdownSpec>>,
}

impl Block {
    /// Whether the block reads any personal context.
    pub fn reads_context(&self) -> bool {
        self.reads.as_ref().is_none_or(|fields| !fields.is_empty())
    }

    /// Whether `field` is visible to this block's templates.
    pub fn reads_field(&self, field: &str) -> bool {
        self.reads
            .as_ref()
            .is_none_or(|fields| fields.iter().any(|f| f == field))
    }
}

/// Parses a manifest's text into its blocks, in name order.
pub fn parse(text: &str) -> Result<Vec<Block>, ManifestError> {
    let file: ManifestFile = toml::from_str(text)?;
    file.blocks
        .into_iter()
        .map(|(name, settings)| resolve(name, settings))
        .collect()
}

fn resolve(name: String, s: BlockSettings) -> Result<Block, ManifestError> {
    let invalid = |reason: String| ManifestError::Invalid {
        block: name.clone(),
        reason,
    };
    if !super::is_valid_name(&name) {
        return Err(invalid("names use a-z, 0-9, - and _ only".into()));
    }
    match s.kind {
        BlockKind::Image | BlockKind::Countdown => {
            if s.template.is_none() {
                return Err(invalid("needs `template` (the SVG template)".into()));
            }
            for (side, value) in [("width", s.width), ("height", s.height)] {
                if value == 0 || value > MAX_BLOCK_SIDE {
                    return Err(invalid(format!("{side} must be 1..={MAX_BLOCK_SIDE}")));
                }
            }
        }
        BlockKind::Html => {
            if s.html.is_none() {
                return Err(invalid(
                    "an html block needs `html` (the HTML template)".into(),
                ));
            }
        }
    }
    let countdown = countdown_spec(&s).map_err(invalid)?;
    let mut s = s;
    let mut default_max_age = 60;
    if let Some(spec) = &countdown {
        // A countdown reads only its deadline field (none: it is shared), and its picture is
        // right for a few seconds, rendered per second.
        s.reads = s.reads.take().or_else(|| {
            Some(
                spec.context_field()
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
            )
        });
        s.time_bucket = Some(1);
        default_max_age = DEFAULT_COUNTDOWN_MAX_AGE;
        if s.max_age.is_some_and(|age| age > MAX_COUNTDOWN_MAX_AGE) {
            return Err(invalid(format!(
                "max_age of a countdown must be at most {MAX_COUNTDOWN_MAX_AGE} seconds (its first frame is that late by then)"
            )));
        }
        if let Some(field) = spec.context_field() {
            if !s
                .reads
                .as_ref()
                .is_none_or(|r| r.iter().any(|f| f == field))
            {
                return Err(invalid(format!(
                    "deadline_field needs `{field}` in `reads`"
                )));
            }
        }
    }
    let reads_context = s.reads.as_ref().is_none_or(|fields| !fields.is_empty());
    let cache = match s.cache.as_deref() {
        None if reads_context => CachePolicy::Personalized,
        None => CachePolicy::Shared {
            max_age: s.max_age.unwrap_or(default_max_age),
        },
        Some("personalized") => CachePolicy::Personalized,
        Some("shared") if reads_context => {
            return Err(invalid(
                "a block that reads context cannot be cached as shared; set `reads = []`".into(),
            ))
        }
        Some("shared") => CachePolicy::Shared {
            max_age: s.max_age.unwrap_or(default_max_age),
        },
        Some(other) => {
            return Err(invalid(format!(
                "cache = {other:?}: use personalized or shared"
            )))
        }
    };
    let request = s.request.clone().unwrap_or_default();
    if let Some(unknown) = request
        .iter()
        .find(|fact| !matches!(fact.as_str(), "client" | "location"))
    {
        return Err(invalid(format!(
            "request = [{unknown:?}]: use \"client\" and/or \"location\""
        )));
    }
    let token_required = s.token.unwrap_or(reads_context);
    if reads_context && !token_required {
        tracing::warn!(block = %name, "block reads personal context without a token: anyone who guesses an id sees it");
    }
    let suppression = match &s.suppress_if {
        Some(condition) => Some(std::sync::Arc::new(
            Suppression::compile(
                condition,
                s.suppressed_template.clone(),
                s.suppressed_image.clone(),
            )
            .map_err(invalid)?,
        )),
        None if s.suppressed_template.is_some() || s.suppressed_image.is_some() => {
            return Err(invalid("suppressed_* settings need `suppress_if`".into()))
        }
        None => None,
    };
    let lock_ttl = match (s.lock.as_deref(), s.lock_ttl) {
        (Some("first_open"), ttl) if reads_context => Some(std::time::Duration::from_secs(
            ttl.unwrap_or(DEFAULT_LOCK_TTL_SECS).max(1),
        )),
        (Some("first_open"), _) => {
            return Err(invalid(
                "lock needs a block that reads context (locks are per subscriber)".into(),
            ))
        }
        (Some(other), _) => return Err(invalid(format!("lock = {other:?}: use \"first_open\""))),
        (None, Some(_)) => return Err(invalid("lock_ttl needs `lock = \"first_open\"`".into())),
        (None, None) => None,
    };
    let links = match (&s.link, s.default_link.clone()) {
        (link, Some(default)) => Some(std::sync::Arc::new(
            Links::compile(
                link.as_deref(),
                s.link_hosts.clone().unwrap_or_default(),
                default,
            )
            .map_err(invalid)?,
        )),
        (Some(_), None) => return Err(invalid("`link` needs `default_link`".into())),
        (None, None) => None,
    };
    Ok(Block {
        suppression,
        lock_ttl,
        links,
        countdown: countdown.map(std::sync::Arc::new),
        kind: s.kind,
        template: s.template,
        html_template: s.html,
        width: s.width,
        height: s.height,
        reads: s.reads,
        token_required,
        cache,
        time_bucket_secs: s.time_bucket.unwrap_or(60).max(1),
        fallback: s.fallback,
        fallback_html: s.fallback_html,
        reads_client: request.iter().any(|fact| fact == "client"),
        reads_location: request.iter().any(|fact| fact == "location"),
        name,
    })
}

/// The countdown settings of a countdown block; an error if another kind carries them.
fn countdown_spec(s: &BlockSettings) -> Result<Option<CountdownSpec>, String> {
    let text = CountdownSettingsText {
        deadline_field: s.deadline_field.as_deref(),
        deadline: s.deadline.as_deref(),
        tz: s.tz.as_deref(),
        frames: s.frames,
        looping: s.looping.as_deref(),
        lang: s.lang.as_deref(),
        labels: s.labels.as_deref(),
        hide_units: s.hide_units.as_deref(),
        expired_template: s.expired_template.as_deref(),
        expired_image: s.expired_image.as_deref(),
    };
    if s.kind == BlockKind::Countdown {
        return CountdownSpec::parse(&text).map(Some);
    }
    let given = [
        text.deadline_field,
        text.deadline,
        text.tz,
        text.looping,
        text.lang,
        text.labels,
        text.hide_units,
        text.expired_template,
        text.expired_image,
    ];
    if given.iter().any(Option::is_some) || text.frames.is_some() {
        return Err("countdown settings need `kind = \"countdown\"`".into());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_what_the_block_reads() {
        let blocks = parse(
            r#"
            [blocks.cart]
            kind = "image"
            template = "cart.svg"
            width = 600
            height = 300
            reads = ["cart"]

            [blocks.banner]
            kind = "image"
            template = "banner.svg"
            width = 600
            height = 100
            reads = []
            max_age = 30
            "#,
        )
        .unwrap();
        let banner = &blocks[0];
        assert_eq!(banner.name, "banner");
        assert!(!banner.token_required);
        assert_eq!(banner.cache, CachePolicy::Shared { max_age: 30 });
        let cart = &blocks[1];
        assert!(cart.token_required);
        assert_eq!(cart.cache, CachePolicy::Personalized);
        assert!(cart.reads_field("cart") && !cart.reads_field("profile"));
    }

    #[test]
    fn errors_name_the_block_and_the_problem() {
        let error = parse("[blocks.x]\nkind = \"image\"\nwidth = 10\nheight = 10\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "block `x`: needs `template` (the SVG template)"
        );
        let error =
            parse("[blocks.x]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidht = 1\n").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `widht`"),
            "{error}"
        );
        let error =
            parse("[blocks.x]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 9000\nheight = 1\n")
                .unwrap_err();
        assert!(error.to_string().contains("width must be"), "{error}");
        let error = parse(
            "[blocks.x]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 9\nheight = 1\ncache = \"shared\"\n",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("cannot be cached as shared"),
            "{error}"
        );
    }

    #[test]
    fn omnichannel_settings_are_checked() {
        let block = |extra: &str| {
            parse(&format!(
                "[blocks.x]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 9\nheight = 9\n{extra}"
            ))
        };
        let ok = block(
            "lock = \"first_open\"\nlock_ttl = 60\nsuppress_if = 'ctx.sms.intent == \"x\"'\nlink = \"{{ ctx.a[i] }}\"\nlink_hosts = [\"a.example\"]\ndefault_link = \"https://a.example/\"",
        )
        .unwrap();
        assert_eq!(ok[0].lock_ttl, Some(std::time::Duration::from_secs(60)));
        assert!(ok[0].suppression.is_some() && ok[0].links.is_some());
        for (extra, expected) in [
            ("lock = \"always\"", "use \"first_open\""),
            ("lock_ttl = 5", "lock_ttl needs"),
            ("reads = []\nlock = \"first_open\"", "reads context"),
            ("suppressed_image = \"a.png\"", "need `suppress_if`"),
            ("link = \"{{ x }}\"", "needs `default_link`"),
            (
                "link = \"{{ x }}\"\ndefault_link = \"https://a.example/\"",
                "link_hosts",
            ),
            ("default_link = \"/cart\"", "absolute http(s) URL"),
            ("suppress_if = \"ctx.a ==\"", "suppress_if does not compile"),
        ] {
            let error = block(extra).unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }

    #[test]
    fn countdown_blocks_are_shared_unless_their_deadline_is_personal() {
        let blocks = parse(
            r#"
            [blocks.sale]
            kind = "countdown"
            template = "c.svg"
            width = 600
            height = 120
            deadline = "2027-01-01T00:00:00Z"

            [blocks.reservation]
            kind = "countdown"
            template = "c.svg"
            width = 600
            height = 120
            deadline_field = "cart.reserved_until"
            frames = 30
            loop = "once"
            "#,
        )
        .unwrap();
        let (reservation, sale) = (&blocks[0], &blocks[1]);
        assert_eq!(sale.cache, CachePolicy::Shared { max_age: 5 });
        assert!(!sale.token_required && !sale.reads_context());
        assert_eq!(sale.time_bucket_secs, 1);
        assert_eq!(reservation.cache, CachePolicy::Personalized);
        assert!(reservation.token_required && reservation.reads_field("cart"));
        assert!(!reservation.reads_field("profile"));
        let spec = reservation.countdown.as_ref().unwrap();
        assert_eq!(spec.settings.frames, 30);
        let block = |kind: &str, extra: &str| {
            parse(&format!(
                "[blocks.x]\nkind = \"{kind}\"\ntemplate = \"a.svg\"\nwidth = 9\nheight = 9\n{extra}"
            ))
        };
        for (kind, extra, expected) in [
            ("image", "frames = 10", "need `kind = \"countdown\"`"),
            ("countdown", "max_age = 300", "at most 60"),
            ("countdown", "frames = 500", "frames must be"),
            (
                "countdown",
                "deadline_field = \"cart.until\"\nreads = [\"profile\"]",
                "needs `cart` in `reads`",
            ),
        ] {
            let error = block(kind, extra).unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }
}
