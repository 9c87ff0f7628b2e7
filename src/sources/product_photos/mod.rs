//! Images that templates pull from the shop's own servers (product photos from the CDN).
//!
//! [`ProductPhotos::get`] fetches a URL taken from subscriber context, only from allowed
//! hosts (see `allow_list`), within a deadline and a byte cap, decodes and resizes it
//! (`decode`), and caches the result by URL and size, with a TTL, and failures for a
//! shorter one. Concurrent renders asking for the same image share one fetch. Errors are
//! [`FetchError`]s: the renderer shows a placeholder in that slot and names the reason
//! in a response header — a bad photo never fails a block.
//!
//! Decoding is bounded (`decode`): dimensions are read from the header before a pixel is
//! decoded, the decoder runs under `image::Limits`, the resize never makes an intermediate
//! larger than twice the slot, and at most one decode per CPU runs at once in the whole
//! process ([`DecodeBudget`]; a fetched body waits for a permit without holding a thread).

mod allow_list;
mod decode;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use moka::future::Cache;
use reqwest::Url;

pub(crate) use allow_list::AllowList;
pub use allow_list::AllowListError;
use allow_list::GuardedResolver;
pub use decode::DecodeBudget;
pub(crate) use decode::{header_dimensions, reencode, resize_to_png, DecodeLimits};

/// Largest side, in pixels, a template may ask for (retina included).
pub const MAX_OUTPUT_DIMENSION: u32 = 4096;

/// Settings for remote images; `Default` is safe (an empty allow-list fetches nothing).
#[derive(Debug, Clone)]
pub struct ProductPhotoConfig {
    /// Hosts images may come from: exact names (`cdn.shop.com`), `*.shopcdn.net`
    /// wildcards (any subdomain, not the bare domain), or IP addresses.
    pub allowed_hosts: Vec<String>,
    /// Exact hosts (or IP addresses) that may resolve to private, loopback or link-local
    /// addresses, e.g. an internal image server. Listing one here also allows it.
    pub private_hosts: Vec<String>,
    /// Static DNS answers (host → addresses), like curl's `--resolve`. The address rules
    /// still apply to them.
    pub resolve_overrides: HashMap<String, Vec<IpAddr>>,
    /// Deadline for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Deadline for the whole fetch: connection, redirects, headers and body.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_bytes: u64,
    /// Largest source image side, in pixels, that will be decoded.
    pub max_source_dimension: u32,
    /// Most memory the decoder may allocate for one image, in bytes.
    pub max_decode_alloc: u64,
    /// Redirects followed (each one re-checked against the allow-list); 0 refuses them.
    pub max_redirects: usize,
    /// How long a fetched, resized image is kept.
    pub cache_ttl: Duration,
    /// How long a failure is remembered, so a broken URL is not hammered.
    pub failure_ttl: Duration,
    /// Cache size, in bytes of encoded images.
    pub cache_capacity_bytes: u64,
    /// User-Agent sent to image servers.
    pub user_agent: String,
}

impl Default for ProductPhotoConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            private_hosts: Vec::new(),
            resolve_overrides: HashMap::new(),
            connect_timeout: Duration::from_millis(500),
            timeout: Duration::from_millis(1500),
            max_bytes: 5 * 1024 * 1024,
            max_source_dimension: 8192,
            max_decode_alloc: 256 * 1024 * 1024,
            max_redirects: 3,
            cache_ttl: Duration::from_secs(15 * 60),
            failure_ttl: Duration::from_secs(30),
            cache_capacity_bytes: 64 * 1024 * 1024,
            user_agent: concat!("opentime/", env!("CARGO_PKG_VERSION"), " (image fetch)").into(),
        }
    }
}

/// How a source image is fitted into the size asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fit {
    /// Fill the box exactly, cropping the overflow (centred).
    #[default]
    Cover,
    /// Fit inside the box, keeping the aspect ratio; one side may come out smaller.
    Contain,
}

/// A fetched image, resized, as PNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPhoto {
    pub width: u32,
    pub height: u32,
    /// PNG bytes.
    pub png: Bytes,
}

impl ProductPhoto {
    /// A `data:image/png;base64,…` URI for an SVG `<image href>`.
    pub fn data_uri(&self) -> String {
        let mut uri = String::from("data:image/png;base64,");
        base64::engine::general_purpose::STANDARD.encode_string(&self.png, &mut uri);
        uri
    }
}

/// Why a remote image is not available. `Display` is a short reason fit for a response
/// header; [`FetchError::reason`] is a stable slug for metrics labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("invalid url")]
    InvalidUrl,
    #[error("scheme not allowed")]
    SchemeNotAllowed,
    #[error("host not allowed")]
    HostNotAllowed,
    #[error("redirect off the allow-list")]
    RedirectNotAllowed,
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("forbidden address")]
    ForbiddenAddress,
    #[error("dns failure")]
    Dns,
    #[error("connect failed")]
    Connect,
    #[error("timeout")]
    Timeout,
    #[error("http status {0}")]
    Status(u16),
    #[error("transfer failed")]
    Transfer,
    #[error("too large")]
    TooLarge,
    #[error("not an image")]
    NotAnImage,
    #[error("undecodable image")]
    Decode,
    #[error("bad size")]
    BadSize,
    #[error("internal error")]
    Internal,
}

impl FetchError {
    /// A stable, label-safe name for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl => "invalid-url",
            FetchError::SchemeNotAllowed => "scheme-not-allowed",
            FetchError::HostNotAllowed => "host-not-allowed",
            FetchError::RedirectNotAllowed => "redirect-not-allowed",
            FetchError::TooManyRedirects => "too-many-redirects",
            FetchError::ForbiddenAddress => "forbidden-address",
            FetchError::Dns => "dns",
            FetchError::Connect => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "status",
            FetchError::Transfer => "transfer",
            FetchError::TooLarge => "too-large",
            FetchError::NotAnImage => "not-an-image",
            FetchError::Decode => "decode",
            FetchError::BadSize => "bad-size",
            FetchError::Internal => "internal",
        }
    }

    /// Our own error, carried inside a reqwest error (from the resolver or the
    /// redirect policy), or the best description of a transport error.
    pub(crate) fn from_reqwest(error: &reqwest::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = source {
            if let Some(ours) = current.downcast_ref::<FetchError>() {
                return ours.clone();
            }
            source = current.source();
        }
        if error.is_timeout() {
            FetchError::Timeout
        } else if error.is_redirect() {
            FetchError::TooManyRedirects
        } else if error.is_connect() {
            FetchError::Connect
        } else if error.is_builder() {
            FetchError::InvalidUrl
        } else {
            FetchError::Transfer
        }
    }
}

/// Why the remote-image settings are not usable.
#[derive(Debug, thiserror::Error)]
pub enum ProductPhotoConfigError {
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    #[error("cannot build the image HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("product photo setting {0} must be greater than zero")]
    Zero(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    url: String,
    width: u32,
    height: u32,
    fit: Fit,
}

type Outcome = Result<Arc<ProductPhoto>, FetchError>;

/// Keeps images for `cache_ttl`, failures for `failure_ttl`.
struct OutcomeExpiry {
    ok: Duration,
    failed: Duration,
}

impl moka::Expiry<CacheKey, Outcome> for OutcomeExpiry {
    fn expire_after_create(&self, _: &CacheKey, value: &Outcome, _: Instant) -> Option<Duration> {
        Some(if value.is_ok() { self.ok } else { self.failed })
    }
}

/// The remote-image fetcher and its cache. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ProductPhotos {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    allow: Arc<AllowList>,
    cache: Cache<CacheKey, Outcome>,
    timeout: Duration,
    max_bytes: u64,
    decode_limits: DecodeLimits,
}

impl std::fmt::Debug for ProductPhotos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductPhotos")
            .field("cached", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl ProductPhotos {
    /// Builds the fetcher; fails on a bad allow-list entry or a zero limit.
    pub fn new(config: ProductPhotoConfig) -> Result<Self, ProductPhotoConfigError> {
        for (name, zero) in [
            ("timeout", config.timeout.is_zero()),
            ("connect_timeout", config.connect_timeout.is_zero()),
            ("max_bytes", config.max_bytes == 0),
            ("max_source_dimension", config.max_source_dimension == 0),
            ("max_decode_alloc", config.max_decode_alloc == 0),
        ] {
            if zero {
                return Err(ProductPhotoConfigError::Zero(name));
            }
        }
        let (allow, client) = guarded_client(GuardedClientSettings {
            allowed_hosts: &config.allowed_hosts,
            private_hosts: &config.private_hosts,
            resolve_overrides: &config.resolve_overrides,
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            max_redirects: config.max_redirects,
            user_agent: config.user_agent.clone(),
        })
        .map_err(|error| match error {
            GuardedClientError::AllowList(error) => ProductPhotoConfigError::AllowList(error),
            GuardedClientError::Client(error) => ProductPhotoConfigError::Client(error),
        })?;

        let cache = Cache::builder()
            .max_capacity(config.cache_capacity_bytes)
            .weigher(|key: &CacheKey, value: &Outcome| {
                let body = value.as_ref().map_or(0, |image| image.png.len());
                u32::try_from(body + key.url.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(OutcomeExpiry {
                ok: config.cache_ttl,
                failed: config.failure_ttl,
            })
            .build();

        Ok(Self {
            inner: Arc::new(Inner {
                client,
                allow,
                cache,
                timeout: config.timeout,
                max_bytes: config.max_bytes,
                decode_limits: DecodeLimits {
                    max_dimension: config.max_source_dimension,
                    max_alloc_bytes: config.max_decode_alloc,
                },
            }),
        })
    }

    /// The image at `url`, resized to `width`×`height` (already multiplied by the retina
    /// scale) by `fit`. URLs off the allow-list and bad sizes fail at once, without
    /// touching the network or the cache. Everything else is cached, failures briefly;
    /// concurrent calls for the same URL and size share one fetch.
    pub async fn get(
        &self,
        url: &str,
        width: u32,
        height: u32,
        fit: Fit,
    ) -> Result<Arc<ProductPhoto>, FetchError> {
        if !(1..=MAX_OUTPUT_DIMENSION).contains(&width)
            || !(1..=MAX_OUTPUT_DIMENSION).contains(&height)
        {
            return Err(FetchError::BadSize);
        }
        let mut parsed = Url::parse(url.trim()).map_err(|_| FetchError::InvalidUrl)?;
        // Never sent to the server, so it must not split the cache.
        parsed.set_fragment(None);
        self.inner.allow.check_url(&parsed)?;
        let key = CacheKey {
            url: parsed.to_string(),
            width,
            height,
            fit,
        };
        let inner = Arc::clone(&self.inner);
        let init = async move {
            let result = inner.fetch_and_prepare(parsed, width, height, fit).await;
            if let Err(error) = &result {
                tracing::debug!(%error, "product photo unavailable");
            }
            result
        };
        self.inner.cache.get_with(key, init).await
    }

    /// Number of cached entries (images and remembered failures); for metrics.
    pub fn cached_entries(&self) -> u64 {
        self.inner.cache.entry_count()
    }
}

impl Inner {
    async fn fetch_and_prepare(&self, url: Url, width: u32, height: u32, fit: Fit) -> Outcome {
        let bytes = tokio::time::timeout(self.timeout, self.fetch(url))
            .await
            .map_err(|_| FetchError::Timeout)??;
        let limits = self.decode_limits;
        // The process's decode budget: waited for here, on the async side, so the blocking
        // pool never holds more decodes (and their buffers) than there are CPUs.
        let permit = DecodeBudget::acquire().await;
        let prepared = tokio::task::spawn_blocking(move || {
            let prepared = decode::prepare(&bytes, width, height, fit, limits);
            drop(permit);
            prepared
        })
        .await
        .map_err(|_| FetchError::Internal)??;
        Ok(Arc::new(ProductPhoto {
            width: prepared.width,
            height: prepared.height,
            png: Bytes::from(prepared.png),
        }))
    }

    /// GET with the byte cap checked on `Content-Length` and again while streaming.
    async fn fetch(&self, url: Url) -> Result<Vec<u8>, FetchError> {
        let response = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "image/webp,image/png,image/jpeg,image/gif",
            )
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if let Some(content_type) = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let content_type = content_type.trim().to_ascii_lowercase();
            if content_type.starts_with("text/")
                || content_type.starts_with("application/json")
                || content_type.starts_with("image/svg")
            {
                return Err(FetchError::NotAnImage);
            }
        }
        read_capped(response, self.max_bytes).await
    }
}

/// How an HTTP client that only reaches allow-listed hosts is set up.
pub(crate) struct GuardedClientSettings<'a> {
    /// Hosts that may be fetched: exact names, `*.suffix` wildcards or IP addresses.
    pub allowed_hosts: &'a [String],
    /// Exact hosts that may be on private or loopback addresses (listing one allows it).
    pub private_hosts: &'a [String],
    /// Static DNS answers; the address rules still apply.
    pub resolve_overrides: &'a HashMap<String, Vec<IpAddr>>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_redirects: usize,
    pub user_agent: String,
}

/// Why a guarded client cannot be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuardedClientError {
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The allow-list of `settings` and an HTTP client that connects only where it says: no proxy
/// from the environment (it would bypass the resolver's address check), every resolved
/// address checked, every redirect checked against the list again. Product photos and live
/// data feeds both use it.
pub(crate) fn guarded_client(
    settings: GuardedClientSettings<'_>,
) -> Result<(Arc<AllowList>, reqwest::Client), GuardedClientError> {
    let allow = Arc::new(AllowList::new(
        settings.allowed_hosts,
        settings.private_hosts,
        settings.resolve_overrides,
    )?);
    let redirect_allow = Arc::clone(&allow);
    let max_redirects = settings.max_redirects;
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(FetchError::TooManyRedirects);
        }
        match redirect_allow.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(FetchError::HostNotAllowed) => attempt.error(FetchError::RedirectNotAllowed),
            Err(other) => attempt.error(other),
        }
    });
    let client = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow: Arc::clone(&allow),
        }))
        .redirect(redirects)
        .referer(false)
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.timeout)
        .timeout(settings.timeout)
        .user_agent(settings.user_agent)
        .build()
        .map_err(GuardedClientError::Client)?;
    Ok((allow, client))
}

/// A response's body, refused when it is larger than `max_bytes` (by `Content-Length`, and
/// again while streaming).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(FetchError::TooLarge);
    }
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(64 * 1024)
            .min(cap),
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::from_reqwest(&e))?
    {
        if body.len().saturating_add(chunk.len()) > cap {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_a_short_header_safe_reason() {
        for error in [
            FetchError::HostNotAllowed,
            FetchError::Status(404),
            FetchError::Timeout,
            FetchError::TooLarge,
        ] {
            let text = error.to_string();
            assert!(text.len() < 40 && text.is_ascii(), "{text}");
            assert!(!error.reason().contains(' '));
        }
        assert_eq!(FetchError::Status(404).to_string(), "http status 404");
    }

    #[test]
    fn data_uri_is_base64_png() {
        let image = ProductPhoto {
            width: 1,
            height: 1,
            png: Bytes::from_static(b"\x89PNG"),
        };
        assert_eq!(image.data_uri(), "data:image/png;base64,iVBORw==");
    }

    #[test]
    fn zero_limits_and_bad_hosts_are_config_errors() {
        let config = ProductPhotoConfig {
            timeout: Duration::ZERO,
            ..ProductPhotoConfig::default()
        };
        assert!(matches!(
            ProductPhotos::new(config),
            Err(ProductPhotoConfigError::Zero("timeout"))
        ));
        let config = ProductPhotoConfig {
            allowed_hosts: vec!["http://x".into()],
            ..ProductPhotoConfig::default()
        };
        assert!(matches!(
            ProductPhotos::new(config),
            Err(ProductPhotoConfigError::AllowList(_))
        ));
    }

    #[tokio::test]
    async fn refusals_before_the_network() {
        let images = ProductPhotos::new(ProductPhotoConfig {
            allowed_hosts: vec!["cdn.shop.test".into()],
            ..ProductPhotoConfig::default()
        })
        .unwrap();
        let get = |url: &'static str, w, h| {
            let images = images.clone();
            async move { images.get(url, w, h, Fit::Cover).await }
        };
        assert_eq!(get("not a url", 10, 10).await, Err(FetchError::InvalidUrl));
        assert_eq!(
            get("gopher://cdn.shop.test/a", 10, 10).await,
            Err(FetchError::SchemeNotAllowed)
        );
        assert_eq!(
            get("http://other.test/a.png", 10, 10).await,
            Err(FetchError::HostNotAllowed)
        );
        assert_eq!(
            get("http://cdn.shop.test/a.png", 0, 10).await,
            Err(FetchError::BadSize)
        );
        assert_eq!(
            get("http://cdn.shop.test/a.png", 10, 99_999).await,
            Err(FetchError::BadSize)
        );
        assert_eq!(images.cached_entries(), 0);
    }
}
