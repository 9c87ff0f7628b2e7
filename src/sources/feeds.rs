//! Live data feeds: JSON from the shop's APIs or a public one (prices, stock, weather),
//! fetched per open through the same guarded HTTP client as product photos (allow-listed
//! hosts, public addresses only unless a host is listed as private, every redirect checked,
//! a byte cap). HTTPS only, except for an operator's listed private hosts.
//!
//! Each resolved request (method, URL, headers as written, body) is one cache entry:
//! - fresh for its `ttl`: opens get it without a fetch;
//! - concurrent opens that miss share one fetch (single flight);
//! - the fetch runs in its own task, so an open that stops waiting at its deadline does not
//!   cancel it: it fills the cache for the next open;
//! - the last good value stays for `stale_ttl` and stands in while the feed fails or is slow
//!   (stale-while-error); a failure is remembered briefly so a broken API is not hammered.
//!
//! `${NAME}` in a header value is replaced by the secret NAME from the settings
//! (`OPENTIME_FEED_SECRETS`), here and nowhere else; secrets never reach a template or a log.

use super::product_photos::{
    guarded_client, read_capped, AllowList, FetchError, GuardedClientError, GuardedClientSettings,
};
use moka::future::Cache;
use reqwest::Url;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedMethod {
    Get,
    Post,
}

/// One open's request to a feed, resolved from its inputs.
#[derive(Debug, Clone)]
pub struct FeedRequest {
    pub url: String,
    pub method: FeedMethod,
    /// Header values as written (with `${NAME}` secret references, not their values).
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub ttl: Duration,
    pub stale_ttl: Duration,
}

/// A feed's value as an open gets it.
#[derive(Debug, Clone)]
pub struct FeedValue {
    pub value: Arc<Value>,
    /// The last good value, served while the feed fails.
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("feeds are fetched over https only (plain http only from a listed private host)")]
    PlainHttp,
    #[error("header secret `{0}` is not in OPENTIME_FEED_SECRETS")]
    MissingSecret(String),
    #[error("the answer is not JSON")]
    NotJson,
    #[error("no answer before the open's deadline")]
    Deadline,
}

impl FeedError {
    /// A stable, label-safe name for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            FeedError::Fetch(error) => error.reason(),
            FeedError::PlainHttp => "plain-http",
            FeedError::MissingSecret(_) => "missing-secret",
            FeedError::NotJson => "not-json",
            FeedError::Deadline => "deadline",
        }
    }
}

/// Why the feed settings are not usable.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FeedConfigError(#[from] GuardedClientError);

/// Feed settings; `Default` is safe (an empty allow-list fetches nothing).
#[derive(Clone, Default)]
pub struct FeedConfig {
    /// Hosts feeds may be fetched from (exact names, `*.suffix`, IP addresses).
    pub allowed_hosts: Vec<String>,
    /// Exact hosts that may be on private or loopback addresses (and use plain http).
    pub private_hosts: Vec<String>,
    /// Static DNS answers (host → addresses); the address rules still apply.
    pub resolve_overrides: HashMap<String, Vec<IpAddr>>,
    /// `NAME=VALUE` pairs that header values reference as `${NAME}`.
    pub secrets: HashMap<String, String>,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("private_hosts", &self.private_hosts)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Largest feed answer accepted.
const MAX_BYTES: u64 = 512 * 1024;
/// A fetch's own limit, however long an open waits (a slow answer still fills the cache).
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a failure is remembered before the feed is asked again.
const FAILURE_TTL: Duration = Duration::from_secs(2);
const CACHE_ENTRIES: u64 = 100_000;

#[derive(Clone)]
struct Fetched {
    value: Arc<Value>,
    ttl: Duration,
    stale_ttl: Duration,
}

struct FreshFor;
impl moka::Expiry<String, Fetched> for FreshFor {
    fn expire_after_create(&self, _: &String, v: &Fetched, _: StdInstant) -> Option<Duration> {
        Some(v.ttl)
    }
}

struct StaleFor;
impl moka::Expiry<String, Fetched> for StaleFor {
    fn expire_after_create(&self, _: &String, v: &Fetched, _: StdInstant) -> Option<Duration> {
        Some(v.stale_ttl)
    }
}

/// The feed fetcher and its caches. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Feeds {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    allow: Arc<AllowList>,
    secrets: HashMap<String, String>,
    fresh: Cache<String, Fetched>,
    stale: Cache<String, Fetched>,
    failed: Cache<String, FeedError>,
}

impl Feeds {
    pub fn new(config: FeedConfig) -> Result<Self, FeedConfigError> {
        let (allow, client) = guarded_client(GuardedClientSettings {
            allowed_hosts: &config.allowed_hosts,
            private_hosts: &config.private_hosts,
            resolve_overrides: &config.resolve_overrides,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: FETCH_TIMEOUT,
            max_redirects: 3,
            user_agent: concat!("opentime/", env!("CARGO_PKG_VERSION"), " (feed)").into(),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                allow,
                secrets: config.secrets,
                fresh: Cache::builder()
                    .max_capacity(CACHE_ENTRIES)
                    .expire_after(FreshFor)
                    .build(),
                stale: Cache::builder()
                    .max_capacity(CACHE_ENTRIES)
                    .expire_after(StaleFor)
                    .build(),
                failed: Cache::builder()
                    .max_capacity(CACHE_ENTRIES)
                    .time_to_live(FAILURE_TTL)
                    .build(),
            }),
        })
    }

    /// The feed's value for `request`, waiting at most until `deadline`: fresh from the cache,
    /// else fetched (one fetch for every open asking at once), else the last good value while
    /// it is younger than `stale_ttl`. URLs off the allow-list fail at once.
    pub async fn get(
        &self,
        request: &FeedRequest,
        deadline: Instant,
    ) -> Result<FeedValue, FeedError> {
        let url = Url::parse(&request.url).map_err(|_| FetchError::InvalidUrl)?;
        self.inner.allow.check_url(&url)?;
        if url.scheme() != "https" && !self.inner.allow.is_private_host(&url) {
            return Err(FeedError::PlainHttp);
        }
        let key = cache_key(request, &url);
        if let Some(fresh) = self.inner.fresh.get(&key).await {
            return Ok(FeedValue {
                value: fresh.value,
                stale: false,
            });
        }
        let outcome = match self.inner.failed.get(&key).await {
            Some(error) => Err(error),
            None => {
                let inner = Arc::clone(&self.inner);
                let (task_key, task_request) = (key.clone(), request.clone());
                let fetch = async move {
                    tokio::spawn(inner.fetch_and_keep(task_key, task_request, url))
                        .await
                        .unwrap_or(Err(FeedError::Fetch(FetchError::Internal)))
                };
                match tokio::time::timeout_at(
                    deadline,
                    self.inner.fresh.try_get_with(key.clone(), fetch),
                )
                .await
                {
                    Ok(Ok(fetched)) => Ok(fetched),
                    Ok(Err(error)) => Err((*error).clone()),
                    Err(_) => Err(FeedError::Deadline),
                }
            }
        };
        match outcome {
            Ok(fetched) => Ok(FeedValue {
                value: fetched.value,
                stale: false,
            }),
            Err(error) => match self.inner.stale.get(&key).await {
                Some(stale) => {
                    tracing::debug!(
                        reason = error.reason(),
                        "feed failing; serving its last good value"
                    );
                    Ok(FeedValue {
                        value: stale.value,
                        stale: true,
                    })
                }
                None => Err(error),
            },
        }
    }
}

impl Inner {
    /// Fetches, and keeps the outcome: a value fresh and as the stale stand-in, a failure
    /// for a moment.
    async fn fetch_and_keep(
        self: Arc<Self>,
        key: String,
        request: FeedRequest,
        url: Url,
    ) -> Result<Fetched, FeedError> {
        match self.fetch(&request, url).await {
            Ok(value) => {
                let fetched = Fetched {
                    value: Arc::new(value),
                    ttl: request.ttl,
                    stale_ttl: request.stale_ttl,
                };
                self.stale.insert(key.clone(), fetched.clone()).await;
                self.fresh.insert(key, fetched.clone()).await;
                Ok(fetched)
            }
            Err(error) => {
                tracing::debug!(reason = error.reason(), "feed fetch failed");
                self.failed.insert(key, error.clone()).await;
                Err(error)
            }
        }
    }

    async fn fetch(&self, request: &FeedRequest, url: Url) -> Result<Value, FeedError> {
        let mut builder = match request.method {
            FeedMethod::Get => self.client.get(url),
            FeedMethod::Post => self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(request.body.clone().unwrap_or_default()),
        };
        builder = builder.header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), self.with_secrets(value)?);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()).into());
        }
        let body = read_capped(response, MAX_BYTES).await?;
        serde_json::from_slice(&body).map_err(|_| FeedError::NotJson)
    }

    /// `value` with every `${NAME}` replaced by its secret.
    fn with_secrets(&self, value: &str) -> Result<String, FeedError> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            let secret = self
                .secrets
                .get(name)
                .ok_or_else(|| FeedError::MissingSecret(name.to_owned()))?;
            out.push_str(secret);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// One cache entry per resolved request: method, URL (without fragment), headers as written
/// and body.
fn cache_key(request: &FeedRequest, url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    let headers: Vec<String> = request
        .headers
        .iter()
        .map(|(name, value)| format!("{}:{value}", name.to_ascii_lowercase()))
        .collect();
    format!(
        "{:?} {url}\n{}\n{}",
        request.method,
        headers.join("\n"),
        request.body.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> FeedRequest {
        FeedRequest {
            url: url.into(),
            method: FeedMethod::Get,
            headers: Vec::new(),
            body: None,
            ttl: Duration::from_secs(60),
            stale_ttl: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn refusals_come_before_the_network() {
        let feeds = Feeds::new(FeedConfig {
            allowed_hosts: vec!["api.shop.test".into()],
            ..FeedConfig::default()
        })
        .unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        let get = |url: &'static str| {
            let feeds = feeds.clone();
            async move { feeds.get(&request(url), soon).await.map(|_| ()) }
        };
        assert_eq!(
            get("https://other.test/x").await,
            Err(FeedError::Fetch(FetchError::HostNotAllowed))
        );
        assert_eq!(
            get("http://api.shop.test/x").await,
            Err(FeedError::PlainHttp)
        );
        assert_eq!(
            get("file:///etc/passwd").await,
            Err(FeedError::Fetch(FetchError::SchemeNotAllowed))
        );
        assert_eq!(
            get("not a url").await,
            Err(FeedError::Fetch(FetchError::InvalidUrl))
        );
    }

    #[test]
    fn secrets_fill_header_values_and_stay_out_of_errors() {
        let secrets = HashMap::from([("shop".to_owned(), "s3cret".to_owned())]);
        let feeds = Feeds::new(FeedConfig {
            secrets: secrets.clone(),
            ..FeedConfig::default()
        })
        .unwrap();
        assert_eq!(
            feeds.inner.with_secrets("Bearer ${shop}").unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(
            feeds.inner.with_secrets("${other}"),
            Err(FeedError::MissingSecret("other".into()))
        );
        let debug = format!(
            "{:?}",
            FeedConfig {
                secrets,
                ..FeedConfig::default()
            }
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
