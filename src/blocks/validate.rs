//! A campaign's `blocks.toml` parsed ([`parse`]) and each block's settings checked feature by
//! feature and turned into a [`Block`] with its defaults applied.
//!
//! [`resolve`] runs one step per feature; the first problem found is the one reported, so the
//! steps keep their order.

use super::feeds::Feed;
use super::links::Links;
use super::manifest::{
    Block, BlockKind, BlockSettings, CachePolicy, ManifestError, ManifestFile,
    DEFAULT_WEIGHT_CAP_KB,
};
use super::polls::Poll;
use super::suppress::Suppression;
use super::variants::Variants;
use crate::countdown::settings::{
    CountdownSettingsText, CountdownSpec, DEFAULT_COUNTDOWN_MAX_AGE, MAX_COUNTDOWN_MAX_AGE,
};
use crate::render::PngMode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest width or height a block may declare, in pixels (before `scale`).
pub(crate) const MAX_BLOCK_SIDE: u32 = 2000;

/// How long a lock-on-open lasts when `lock_ttl` is not given.
pub(crate) const DEFAULT_LOCK_TTL_SECS: u64 = 30 * 24 * 3600;

/// `max_age` of a shared block (not a countdown) that does not set one.
const DEFAULT_MAX_AGE: u32 = 60;

/// `time_bucket` of a block (not a countdown) that does not set one.
const DEFAULT_TIME_BUCKET: u32 = 60;
/// A manifest, checked: the blocks in name order, the campaign's feeds and polls.
pub(super) struct Manifest {
    pub(super) blocks: Vec<Block>,
    pub(super) feeds: BTreeMap<String, Arc<Feed>>,
    pub(super) polls: BTreeMap<String, Arc<Poll>>,
}

/// Parses a manifest's text into its blocks, in name order.
#[cfg(test)]
pub(super) fn parse(text: &str) -> Result<Vec<Block>, ManifestError> {
    parse_manifest(text).map(|manifest| manifest.blocks)
}

/// Parses a manifest's text: blocks, feeds and polls, each block's references checked.
pub(super) fn parse_manifest(text: &str) -> Result<Manifest, ManifestError> {
    let file: ManifestFile = toml::from_str(text)?;
    let feeds = compile_each(file.feeds, Feed::compile)?;
    let polls = compile_each(file.polls, Poll::compile)?;
    let blocks = file
        .blocks
        .into_iter()
        .map(|(name, settings)| resolve(name, settings))
        .collect::<Result<Vec<_>, _>>()?;
    for block in &blocks {
        let invalid = |reason: String| ManifestError::Invalid {
            block: block.name.clone(),
            reason,
        };
        if let Some(feed) = block.feeds.iter().find(|f| !feeds.contains_key(*f)) {
            return Err(invalid(format!(
                "feeds = [{feed:?}]: no [feeds.{feed}] in this campaign"
            )));
        }
        if let Some(poll) = block.poll.as_ref().filter(|p| !polls.contains_key(*p)) {
            return Err(invalid(format!(
                "poll = {poll:?}: no [polls.{poll}] in this campaign"
            )));
        }
    }
    Ok(Manifest {
        blocks,
        feeds,
        polls,
    })
}

/// Compiles each of a campaign's named settings (feeds, polls); the first error is the campaign's.
fn compile_each<S, T>(
    settings: BTreeMap<String, S>,
    compile: impl Fn(&str, S) -> Result<T, String>,
) -> Result<BTreeMap<String, Arc<T>>, ManifestError> {
    settings
        .into_iter()
        .map(|(name, s)| Ok((name.clone(), Arc::new(compile(&name, s)?))))
        .collect::<Result<BTreeMap<_, _>, String>>()
        .map_err(|reason| ManifestError::Invalid {
            block: "(campaign)".into(),
            reason,
        })
}

/// Checks block `name`'s settings and applies their defaults.
pub(crate) fn resolve(name: String, s: BlockSettings) -> Result<Block, ManifestError> {
    let invalid = |reason: String| ManifestError::Invalid {
        block: name.clone(),
        reason,
    };
    block_name(&name).map_err(invalid)?;
    templates_and_size(&s).map_err(invalid)?;
    let countdown = countdown(&s).map_err(invalid)?;
    let max_age = shared_max_age(s.max_age, countdown.as_ref()).map_err(invalid)?;
    let reads = reads(s.reads, countdown.as_ref()).map_err(invalid)?;
    let reads_context = reads.as_ref().is_none_or(|fields| !fields.is_empty());
    let cache = cache_policy(s.cache.as_deref(), reads_context, max_age).map_err(invalid)?;
    let (reads_client, reads_location, reads_time) =
        request(s.request.as_deref()).map_err(invalid)?;
    let token_required = token_required(&name, s.token, reads_context);
    let suppression = suppression(
        s.suppress_if.as_deref(),
        s.suppressed_template,
        s.suppressed_image,
    )
    .map_err(invalid)?;
    let lock_ttl = lock_ttl(s.lock.as_deref(), s.lock_ttl, reads_context).map_err(invalid)?;
    let links = links(s.link.as_deref(), s.link_hosts, s.default_link).map_err(invalid)?;
    let variants =
        variants(&s.kind, s.variants, s.test, links.as_deref(), reads_context).map_err(invalid)?;
    let query_keys = query_keys(s.query).map_err(invalid)?;
    let png = png_mode(s.png.as_deref(), s.kind).map_err(invalid)?;
    Ok(Block {
        query_keys,
        png,
        suppression,
        lock_ttl,
        links,
        time_bucket_secs: time_bucket(s.time_bucket, countdown.is_some()),
        countdown: countdown.map(Arc::new),
        kind: s.kind,
        template: s.template,
        html_template: s.html,
        width: s.width,
        height: s.height,
        reads,
        token_required,
        signed_query: s.signed.unwrap_or(false),
        cache,
        fallback: s.fallback,
        fallback_html: s.fallback_html,
        reads_client,
        reads_location,
        alt: s.alt.unwrap_or_else(|| name.replace(['_', '-'], " ")),
        weight_cap_bytes: u64::from(s.weight_cap_kb.unwrap_or(DEFAULT_WEIGHT_CAP_KB)) * 1000,
        reads_time,
        variants,
        feeds: s.feeds.unwrap_or_default(),
        poll: s.poll,
        name,
    })
}

/// `png = "lossless" | "palette"`, for image blocks only.
fn png_mode(png: Option<&str>, kind: BlockKind) -> Result<PngMode, String> {
    match (png, kind) {
        (None, _) => Ok(PngMode::Lossless),
        (Some(_), BlockKind::Countdown | BlockKind::Html) => {
            Err("`png` is for image blocks (a countdown is a GIF)".into())
        }
        (Some("lossless"), BlockKind::Image) => Ok(PngMode::Lossless),
        (Some("palette"), BlockKind::Image) => Ok(PngMode::Palette),
        (Some(other), BlockKind::Image) => {
            Err(format!("png = {other:?}: use \"lossless\" or \"palette\""))
        }
    }
}

/// The block's name must be usable in URLs and file names.
fn block_name(name: &str) -> Result<(), String> {
    if !super::is_valid_name(name) {
        return Err("names use a-z, 0-9, - and _ only".into());
    }
    Ok(())
}

/// Image and countdown blocks need an SVG template and a size; html blocks an HTML template.
fn templates_and_size(s: &BlockSettings) -> Result<(), String> {
    match s.kind {
        BlockKind::Image | BlockKind::Countdown => {
            if s.template.is_none() {
                return Err("needs `template` (the SVG template)".into());
            }
            size(s.width, s.height)
        }
        BlockKind::Html => {
            if s.html.is_none() {
                return Err("an html block needs `html` (the HTML template)".into());
            }
            Ok(())
        }
    }
}

/// Width and height must each be 1..=[`MAX_BLOCK_SIDE`].
fn size(width: u32, height: u32) -> Result<(), String> {
    for (side, value) in [("width", width), ("height", height)] {
        if value == 0 || value > MAX_BLOCK_SIDE {
            return Err(format!("{side} must be 1..={MAX_BLOCK_SIDE}"));
        }
    }
    Ok(())
}

/// The countdown settings of a countdown block; an error if another kind carries them.
fn countdown(s: &BlockSettings) -> Result<Option<CountdownSpec>, String> {
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
        fallback_tz: s.fallback_tz.as_deref(),
        still_template: s.still_template.as_deref(),
        on_prefetch: s.on_prefetch.as_deref(),
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
        text.fallback_tz,
        text.still_template,
        text.on_prefetch,
    ];
    if given.iter().any(Option::is_some) || text.frames.is_some() {
        return Err("countdown settings need `kind = \"countdown\"`".into());
    }
    Ok(None)
}

/// Seconds a shared answer stays right: `max_age`, else a default; a countdown's picture is right
/// only for a few seconds, so its `max_age` is capped.
fn shared_max_age(max_age: Option<u32>, countdown: Option<&CountdownSpec>) -> Result<u32, String> {
    if countdown.is_none() {
        return Ok(max_age.unwrap_or(DEFAULT_MAX_AGE));
    }
    if max_age.is_some_and(|age| age > MAX_COUNTDOWN_MAX_AGE) {
        return Err(format!(
            "max_age of a countdown must be at most {MAX_COUNTDOWN_MAX_AGE} seconds (its first frame is that late by then)"
        ));
    }
    Ok(max_age.unwrap_or(DEFAULT_COUNTDOWN_MAX_AGE))
}

/// The context fields the block reads (`None`: all of them). A countdown that does not say reads
/// only its deadline field (none: it is shared), and its `reads` must include that field.
fn reads(
    reads: Option<Vec<String>>,
    countdown: Option<&CountdownSpec>,
) -> Result<Option<Vec<String>>, String> {
    let Some(spec) = countdown else {
        return Ok(reads);
    };
    let reads = reads.or_else(|| {
        Some(
            spec.context_field()
                .map(str::to_owned)
                .into_iter()
                .collect(),
        )
    });
    if let Some(field) = spec.context_field() {
        if !reads.as_ref().is_none_or(|r| r.iter().any(|f| f == field)) {
            return Err(format!("deadline_field needs `{field}` in `reads`"));
        }
    }
    Ok(reads)
}

/// `cache`: personalized or shared, derived from whether the block reads context when absent; a
/// block that reads context cannot be shared.
fn cache_policy(
    cache: Option<&str>,
    reads_context: bool,
    max_age: u32,
) -> Result<CachePolicy, String> {
    match cache {
        None if reads_context => Ok(CachePolicy::Personalized),
        None => Ok(CachePolicy::Shared { max_age }),
        Some("personalized") => Ok(CachePolicy::Personalized),
        Some("shared") if reads_context => {
            Err("a block that reads context cannot be cached as shared; set `reads = []`".into())
        }
        Some("shared") => Ok(CachePolicy::Shared { max_age }),
        Some(other) => Err(format!("cache = {other:?}: use personalized or shared")),
    }
}

/// `request`: which facts about the open the templates see, as (`client`, `location`,
/// `time`: the reader's local time).
fn request(request: Option<&[String]>) -> Result<(bool, bool, bool), String> {
    let request = request.unwrap_or_default();
    if let Some(unknown) = request
        .iter()
        .find(|fact| !matches!(fact.as_str(), "client" | "location" | "time"))
    {
        return Err(format!(
            "request = [{unknown:?}]: use \"client\", \"location\" and/or \"time\""
        ));
    }
    let has = |name: &str| request.iter().any(|fact| fact == name);
    Ok((has("client"), has("location"), has("time")))
}

/// `variants` and `test`: rules or a test over the block's variants; their links must be on
/// the block's link hosts. Countdowns have none (their picture is the timer); a test needs the
/// verified subscriber, so a block that reads context.
fn variants(
    kind: &BlockKind,
    variants: Option<Vec<super::variants::VariantSettings>>,
    test: Option<super::variants::TestSettings>,
    links: Option<&Links>,
    reads_context: bool,
) -> Result<Option<Arc<Variants>>, String> {
    let Some(list) = variants else {
        return match test {
            Some(_) => Err("a test needs `variants` (its arms)".into()),
            None => Ok(None),
        };
    };
    if test.is_some() && !reads_context {
        return Err(
            "a test keeps each subscriber's arm, so it needs the subscriber: give `reads` (and a token)"
                .into(),
        );
    }
    if *kind == BlockKind::Countdown {
        return Err("countdown blocks have no variants".into());
    }
    let allowed = |link: &str| links.is_some_and(|links| links.allows(link));
    Variants::compile(list, test, allowed).map(|v| Some(Arc::new(v)))
}

/// `query`: the URL query parameters the templates may read. Names are short and plain;
/// `s`, `t` and `scale` are opentime's own and cannot be declared.
fn query_keys(query: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let keys = query.unwrap_or_default();
    for key in &keys {
        let plain = !key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !plain {
            return Err(format!(
                "query = [{key:?}]: parameter names use a-z, A-Z, 0-9, _, - and . (at most 64)"
            ));
        }
        if matches!(key.as_str(), "s" | "t" | "scale" | "sig") {
            return Err(format!(
                "query = [{key:?}]: `s`, `t`, `scale` and `sig` are opentime's own parameters"
            ));
        }
    }
    Ok(keys)
}

/// `token`: required by default when the block reads context; a warning when turned off there.
fn token_required(name: &str, token: Option<bool>, reads_context: bool) -> bool {
    let token_required = token.unwrap_or(reads_context);
    if reads_context && !token_required {
        tracing::warn!(block = %name, "block reads personal context without a token: anyone who guesses an id sees it");
    }
    token_required
}

/// `suppress_if` and its suppressed variant; the `suppressed_*` settings need `suppress_if`.
fn suppression(
    suppress_if: Option<&str>,
    suppressed_template: Option<String>,
    suppressed_image: Option<String>,
) -> Result<Option<Arc<Suppression>>, String> {
    match suppress_if {
        Some(condition) => Ok(Some(Arc::new(Suppression::compile(
            condition,
            suppressed_template,
            suppressed_image,
        )?))),
        None if suppressed_template.is_some() || suppressed_image.is_some() => {
            Err("suppressed_* settings need `suppress_if`".into())
        }
        None => Ok(None),
    }
}

/// `lock = "first_open"` and `lock_ttl`: how long a locked block keeps the first human open's
/// inputs (at least a second); only a block that reads context can be locked.
fn lock_ttl(
    lock: Option<&str>,
    lock_ttl: Option<u64>,
    reads_context: bool,
) -> Result<Option<Duration>, String> {
    match (lock, lock_ttl) {
        (Some("first_open"), ttl) if reads_context => Ok(Some(Duration::from_secs(
            ttl.unwrap_or(DEFAULT_LOCK_TTL_SECS).max(1),
        ))),
        (Some("first_open"), _) => {
            Err("lock needs a block that reads context (locks are per subscriber)".into())
        }
        (Some(other), _) => Err(format!("lock = {other:?}: use \"first_open\"")),
        (None, Some(_)) => Err("lock_ttl needs `lock = \"first_open\"`".into()),
        (None, None) => Ok(None),
    }
}

/// `link`, `link_hosts` and `default_link`: the click-through targets; `link` needs
/// `default_link`.
fn links(
    link: Option<&str>,
    link_hosts: Option<Vec<String>>,
    default_link: Option<String>,
) -> Result<Option<Arc<Links>>, String> {
    match (link, default_link) {
        (link, Some(default)) => Ok(Some(Arc::new(Links::compile(
            link,
            link_hosts.unwrap_or_default(),
            default,
        )?))),
        (Some(_), None) => Err("`link` needs `default_link`".into()),
        (None, None) => Ok(None),
    }
}

/// Templates see `now` rounded down to this many seconds (at least one); a countdown renders per
/// second.
fn time_bucket(time_bucket: Option<u32>, countdown: bool) -> u32 {
    if countdown {
        return 1;
    }
    time_bucket.unwrap_or(DEFAULT_TIME_BUCKET).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::manifest::CachePolicy;
    use super::parse;

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
    fn variants_feeds_and_polls_are_checked_against_the_block_and_the_campaign() {
        let manifest = |extra: &str| {
            super::parse_manifest(&format!(
                "[blocks.x]\nkind = \"image\"\ntemplate = \"a.svg\"\nwidth = 9\nheight = 9\n\
                 link_hosts = [\"a.example\"]\ndefault_link = \"https://a.example/\"\n{extra}"
            ))
        };
        let arms = "[[blocks.x.variants]]\nname = \"a\"\n[[blocks.x.variants]]\nname = \"b\"\n";
        let ok = manifest(&format!(
            "reads = [\"profile\"]\n[blocks.x.test]\nmode = \"split\"\n{arms}"
        ))
        .unwrap();
        assert!(ok.blocks[0].variants.as_ref().is_some_and(|v| v.is_test()));
        for (extra, expected) in [
            (
                format!("reads = []\n[blocks.x.test]\nmode = \"split\"\n{arms}"),
                "needs the subscriber",
            ),
            (
                "[blocks.x.test]\nmode = \"split\"\n".to_owned(),
                "needs `variants`",
            ),
            ("feeds = [\"weather\"]".to_owned(), "no [feeds.weather]"),
            ("poll = \"sport\"".to_owned(), "no [polls.sport]"),
            ("request = [\"weather\"]".to_owned(), "\"time\""),
        ] {
            let error = manifest(&extra).err().expect("an error").to_string();
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

#[cfg(test)]
mod manifest_errors {
    use super::*;

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

    proptest::proptest! {
        /// Any manifest text: parsed into valid blocks or refused with an error, never a panic.
        #[test]
        fn any_manifest_is_parsed_or_refused(
            text in "(\\[blocks\\.[a-z_]{1,8}\\]\n(kind = \"(image|countdown|html|x)\"\n)?(template = \"[a-z./]{0,12}\"\n)?(width = [0-9]{1,6}\n)?(height = [0-9]{1,6}\n)?(reads = \\[(\"[a-z]{1,6}\",? ?){0,3}\\]\n)?(cache = \"(shared|personalized|x)\"\n)?(lock = \"first_open\"\n)?(deadline = \"\\PC{0,20}\"\n)?(query = \\[(\"[a-z]{0,3}\",? ?){0,2}\\]\n)?){0,3}|\\PC{0,200}",
        ) {
            if let Ok(blocks) = parse(&text) {
                for block in blocks {
                    proptest::prop_assert!(crate::names::is_valid_name(&block.name));
                    proptest::prop_assert!(block.time_bucket_secs >= 1);
                    if block.reads_context() {
                        proptest::prop_assert_eq!(block.cache, CachePolicy::Personalized);
                    }
                }
            }
        }
    }
}
