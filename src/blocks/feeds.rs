//! A campaign's live data feeds, as declared in `blocks.toml`: the shop's price or stock API,
//! a weather API. Each names an HTTPS URL templated from the open's inputs, a method, headers
//! (a `${NAME}` in a value is a secret from the settings, `OPENTIME_FEED_SECRETS`; templates
//! never see it), a deadline, a cache TTL, how long a stale value may stand in while the feed
//! fails, and whether a block can do without it.
//!
//! ```toml
//! [feeds.weather]
//! url = "https://api.open-meteo.com/v1/forecast?latitude={{ location.lat }}&longitude={{ location.lon }}&current=temperature_2m,weather_code"
//! deadline_ms = 300     # within the open's deadline
//! ttl = 600             # seconds a value is fresh
//! stale_ttl = 3600      # seconds it may stand in while the feed fails
//! required = false      # true: no value → the block's fallback; false: `feeds.weather` is null
//! ```
//! A block reads feeds it names (`feeds = ["weather"]`) as `feeds.NAME`; what they returned
//! is part of its render input. Fetching (allow-list, caches, single flight) is
//! `crate::sources::feeds`; this module only describes and resolves requests.

use super::sandbox::{self, RenderFailure};
use super::suppress::error_chain;
use crate::sources::feeds::{FeedMethod, FeedRequest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The deadline of a feed that does not set one.
pub(crate) const DEFAULT_FEED_DEADLINE: Duration = Duration::from_millis(300);
const MAX_HEADERS: usize = 16;

/// One feed as written in `blocks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedSettings {
    pub(crate) url: String,
    pub(crate) method: Option<String>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// POST only: a Tera template for the request body (sent as JSON).
    pub(crate) body: Option<String>,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) ttl: Option<u64>,
    pub(crate) stale_ttl: Option<u64>,
    #[serde(default)]
    pub(crate) required: bool,
}

/// A feed ready to resolve.
#[derive(Debug, Clone)]
pub struct Feed {
    pub name: String,
    /// `url` and `body`, compiled.
    tera: tera::Tera,
    method: FeedMethod,
    has_body: bool,
    headers: Vec<(String, String)>,
    pub deadline: Duration,
    ttl: Duration,
    stale_ttl: Duration,
    /// Without a value, the block shows its fallback (else the template sees `null`).
    pub required: bool,
}

const URL: &str = "url";
const BODY: &str = "body";

impl Feed {
    pub(crate) fn compile(name: &str, s: FeedSettings) -> Result<Self, String> {
        let named = |reason: String| format!("feed `{name}`: {reason}");
        if !super::is_valid_name(name) {
            return Err(named("names use a-z, 0-9, - and _ only".into()));
        }
        let method = match s.method.as_deref().unwrap_or("GET") {
            "GET" => FeedMethod::Get,
            "POST" => FeedMethod::Post,
            other => return Err(named(format!("method = {other:?}: use GET or POST"))),
        };
        if s.body.is_some() && method == FeedMethod::Get {
            return Err(named("`body` needs method = \"POST\"".into()));
        }
        if !s.url.starts_with("https://") && !s.url.starts_with("http://") {
            return Err(named("url must be an absolute https URL".into()));
        }
        if s.headers.len() > MAX_HEADERS {
            return Err(named(format!("at most {MAX_HEADERS} headers")));
        }
        for (header, value) in &s.headers {
            let token = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || value.chars().any(char::is_control) {
                return Err(named(format!("header {header:?} is not a plain header")));
            }
        }
        let deadline = Duration::from_millis(
            s.deadline_ms
                .unwrap_or(DEFAULT_FEED_DEADLINE.as_millis() as u64),
        );
        if deadline.is_zero() || deadline > Duration::from_secs(5) {
            return Err(named("deadline_ms must be 1..=5000".into()));
        }
        let ttl = Duration::from_secs(s.ttl.unwrap_or(60));
        let stale_ttl = Duration::from_secs(s.stale_ttl.unwrap_or(3600));
        if ttl.is_zero() || stale_ttl < ttl {
            return Err(named(
                "ttl must be at least 1 and stale_ttl at least ttl".into(),
            ));
        }
        let mut tera = sandbox::new_tera();
        for (part, text) in [(URL, Some(&s.url)), (BODY, s.body.as_ref())] {
            let Some(text) = text else { continue };
            sandbox::check_template(part, text, |_| false, &sandbox::OFFERED)
                .map_err(|refusal| named(format!("{part}: {}", refusal.reason)))?;
            tera.add_raw_template(part, text)
                .map_err(|e| named(format!("{part} does not compile: {}", error_chain(&e))))?;
        }
        Ok(Self {
            name: name.to_owned(),
            tera,
            method,
            has_body: s.body.is_some(),
            headers: s.headers.into_iter().collect(),
            deadline,
            ttl,
            stale_ttl,
            required: s.required,
        })
    }

    /// The request of one open: URL and body filled in from the open's template inputs.
    pub fn resolve(&self, context: &tera::Context) -> Result<FeedRequest, String> {
        let render = |part| {
            sandbox::render(&self.tera, part, context).map_err(|failure| match failure {
                RenderFailure::Tera(e) => {
                    format!("feed `{}`: {part}: {}", self.name, error_chain(&e))
                }
                RenderFailure::TooLarge(bytes) => {
                    format!(
                        "feed `{}`: {part}: {}",
                        self.name,
                        RenderFailure::too_large(bytes)
                    )
                }
            })
        };
        Ok(FeedRequest {
            url: render(URL)?.trim().to_owned(),
            method: self.method,
            headers: self.headers.clone(),
            body: if self.has_body {
                Some(render(BODY)?)
            } else {
                None
            },
            ttl: self.ttl,
            stale_ttl: self.stale_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(url: &str) -> FeedSettings {
        FeedSettings {
            url: url.into(),
            method: None,
            headers: BTreeMap::new(),
            body: None,
            deadline_ms: None,
            ttl: None,
            stale_ttl: None,
            required: false,
        }
    }

    #[test]
    fn urls_are_filled_in_from_the_open() {
        let feed = Feed::compile(
            "stock",
            settings("https://api.shop.test/stock?sku={{ ctx.cart.items[0].sku | urlencode }}"),
        )
        .unwrap();
        let context =
            tera::Context::from_value(json!({"ctx": {"cart": {"items": [{"sku": "A B&1"}]}}}))
                .unwrap();
        let request = feed.resolve(&context).unwrap();
        assert_eq!(request.url, "https://api.shop.test/stock?sku=A%20B%261");
        assert_eq!(feed.deadline, DEFAULT_FEED_DEADLINE);
        assert!(feed.resolve(&tera::Context::new()).is_err());
    }

    #[test]
    fn bad_feeds_are_refused() {
        let refused = |change: fn(&mut FeedSettings), expected: &str| {
            let mut s = settings("https://a.test/");
            change(&mut s);
            let error = Feed::compile("f", s).unwrap_err();
            assert!(error.contains(expected), "{error}");
        };
        refused(|s| s.url = "ftp://a.test/".into(), "absolute https");
        refused(|s| s.method = Some("DELETE".into()), "GET or POST");
        refused(|s| s.body = Some("{}".into()), "needs method");
        refused(|s| s.deadline_ms = Some(0), "deadline_ms");
        refused(|s| s.stale_ttl = Some(1), "stale_ttl");
        refused(
            |s| {
                s.headers.insert("X-Key\r\n".into(), "v".into());
            },
            "plain header",
        );
        refused(
            |s| s.url = r#"https://a.test/{{ get_env(name="OPENTIME_SECRET") }}"#.into(),
            "not available",
        );
    }
}
