//! Configuration: one struct per command, from flags, `OPENTIME_*` environment variables and
//! an optional `opentime.toml` (in that order of precedence), validated once at start-up.
//!
//! Secrets are only ever held here and in [`crate::signing::Signer`]; `Debug` redacts them.

use crate::signing::{Signer, SigningError};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod redis;
mod sources;
mod studio;
pub use redis::RedisArgs;
pub use sources::SourcesArgs;
pub use studio::{StudioAccessArgs, StudioArgs};

/// The file read for settings when `--config` / `OPENTIME_CONFIG` names none.
pub const DEFAULT_CONFIG_FILE: &str = "opentime.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("OPENTIME_SECRET: {0}")]
    Secret(#[from] SigningError),
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

#[derive(Debug, Parser)]
#[command(
    name = "opentime",
    version,
    about = "Renders email content at the moment an email is opened."
)]
pub struct Cli {
    /// Settings file (TOML: `setting-name = value`, e.g. `redis-url = "redis://…"`).
    #[arg(long, global = true, env = "OPENTIME_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve image, HTML and API routes over HTTP.
    Serve(Box<ServeArgs>),
    /// Render one block offline to a file.
    Render(RenderArgs),
    /// Compile every template and render it against its sample contexts.
    Check(CheckArgs),
    /// Print a signed URL for one subscriber.
    Url(UrlArgs),
    /// Add a token column to a CSV of subscribers (stdin → stdout), for upload into an ESP.
    Tokens(TokensArgs),
    /// See, edit and ship every block in a browser: the gallery, the editor and the snippets
    /// (listens on OPENTIME_STUDIO_LISTEN, admits with OPENTIME_STUDIO_TOKEN).
    Studio(StudioArgs),
    /// Read the open and click events from every event stream as a consumer group (JSON lines
    /// on stdout, acknowledged once written).
    Events(EventsArgs),
    /// Print a campaign's test results (opens, clicks, rate, probability of being best per
    /// arm) and poll counts, from Redis.
    Report(ReportArgs),
}

/// Settings every command shares.
#[derive(Clone, Args)]
pub struct CommonArgs {
    /// Directory holding one folder per campaign (`blocks.toml` and templates).
    #[arg(long, env = "OPENTIME_TEMPLATES", default_value = "templates")]
    pub templates: PathBuf,
    /// Directory holding `fonts/` and `images/`.
    #[arg(long, env = "OPENTIME_ASSETS", default_value = "assets")]
    pub assets: PathBuf,
    /// Font folders (searched recursively) and font files, comma-separated, tried after the
    /// shipped fonts and before the system's.
    #[arg(long, env = "OPENTIME_FONT_PATHS", value_delimiter = ',')]
    pub font_paths: Vec<PathBuf>,
    /// Also load the system's fonts (`/usr/share/fonts`, …) for characters the others lack.
    #[arg(long, env = "OPENTIME_SYSTEM_FONTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub system_fonts: bool,
    /// The font families characters missing from a text's own font may be drawn with, in
    /// order, comma-separated (default: every loaded family, Noto first).
    #[arg(long, env = "OPENTIME_FALLBACK_FONTS", value_delimiter = ',')]
    pub fallback_fonts: Vec<String>,
    /// Token secrets, comma-separated: the first signs, all verify (rotation). Without one, a
    /// public development secret is used and `serve` warns.
    #[arg(long, env = "OPENTIME_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Base of the URLs that `url` prints (scheme, host, optional path prefix).
    #[arg(
        long,
        env = "OPENTIME_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

impl std::fmt::Debug for CommonArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonArgs")
            .field("templates", &self.templates)
            .field("assets", &self.assets)
            .field("font_paths", &self.font_paths)
            .field("system_fonts", &self.system_fonts)
            .field("fallback_fonts", &self.fallback_fonts)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl CommonArgs {
    /// Which fonts renders use besides the shipped ones.
    pub fn font_settings(&self) -> crate::render::FontSettings {
        crate::render::FontSettings {
            paths: self.font_paths.clone(),
            system: self.system_fonts,
            fallback: self
                .fallback_fonts
                .iter()
                .map(|family| family.trim().to_owned())
                .filter(|family| !family.is_empty())
                .collect(),
        }
    }

    pub fn signer(&self) -> Result<Signer, ConfigError> {
        Ok(Signer::from_config(self.secret.as_deref())?)
    }

    /// The public base URL without a trailing slash, checked to be http(s).
    pub fn public_base(&self) -> Result<String, ConfigError> {
        let base = self.public_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "OPENTIME_PUBLIC_URL",
                reason: format!("`{base}` must start with http:// or https://"),
            });
        }
        Ok(base.to_owned())
    }
}

#[derive(Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on.
    #[arg(long, env = "OPENTIME_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of a second listener for operators: `/metrics`, `/readyz` and `/healthz`. When
    /// set, the public listener no longer answers `/metrics` and `/readyz`.
    #[arg(long, env = "OPENTIME_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Also serve the studio's pages (`/studio/`) on the admin listener.
    #[arg(long, env = "OPENTIME_ADMIN_STUDIO", default_value_t = false, action = clap::ArgAction::Set)]
    pub admin_studio: bool,
    #[command(flatten)]
    pub studio: StudioAccessArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Replicas a context write through the API (and each event batch) waits for before it
    /// counts as written (Redis `WAIT`), at most as many as its master has online; 0 = do not
    /// wait. The API's answer says how many copies hold the write.
    #[arg(long, env = "OPENTIME_WRITE_REPLICAS", default_value_t = 1)]
    pub write_replicas: u32,
    /// Longest wait for those replicas, in ms; a write they did not all acknowledge in time
    /// gets `503 not-replicated` (retrying is safe).
    #[arg(long, env = "OPENTIME_WRITE_WAIT_MS", default_value_t = 500)]
    pub write_wait_ms: u64,
    /// Longest wait for a context lookup before the block's fallback is served, in ms.
    #[arg(long, env = "OPENTIME_STORE_TIMEOUT_MS", default_value_t = 40)]
    pub store_timeout_ms: u64,
    /// Longest time an image answer may take before the fallback is served, in ms.
    #[arg(long, env = "OPENTIME_DEADLINE_MS", default_value_t = 1000)]
    pub deadline_ms: u64,
    /// Where the embedded store keeps its file.
    #[arg(long, env = "OPENTIME_DATA_DIR", default_value = ".opentime")]
    pub data_dir: PathBuf,
    /// Sample contexts that seed the embedded store on its first start (`NAME.json` = subscriber NAME).
    #[arg(long, env = "OPENTIME_SEED", default_value = "templates/demo/samples")]
    pub seed: PathBuf,
    /// Memory for rendered answers, in MiB.
    #[arg(long, env = "OPENTIME_CACHE_MB", default_value_t = 256)]
    pub cache_mb: u64,
    /// Renders running at once (default: the number of cores). Opens beyond it wait, up to the deadline.
    #[arg(long, env = "OPENTIME_RENDER_CONCURRENCY")]
    pub render_concurrency: Option<usize>,
    /// Open connections accepted at once; more wait in the listen backlog.
    #[arg(long, env = "OPENTIME_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Milliseconds a client has to send a complete request header: from the connection's
    /// accept for its first request, from the first byte of each later one. Slower (or silent)
    /// clients are disconnected, so they cannot hold connection slots.
    #[arg(long, env = "OPENTIME_HEADER_TIMEOUT_MS", default_value_t = 5000)]
    pub header_timeout_ms: u64,
    /// Seconds a connection may stay open with no request in progress (HTTP/1.1 keep-alive,
    /// an HTTP/2 connection without streams) before the server closes it.
    #[arg(long, env = "OPENTIME_KEEPALIVE_TIMEOUT_SECS", default_value_t = 30)]
    pub keepalive_timeout_secs: u64,
    /// Connections one client address (IPv6: one /64) may hold open at once; more are closed
    /// as soon as they are accepted (0 = no cap). The address is the TCP peer: behind a proxy
    /// or CDN that is the proxy's, so set it high there (or 0).
    #[arg(
        long,
        env = "OPENTIME_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 64
    )]
    pub max_connections_per_address: usize,
    /// Requests one HTTP/2 connection may have in flight at once (the `SETTINGS` value sent to
    /// the client); with the per-address cap, this bounds what one address can ask at once.
    #[arg(long, env = "OPENTIME_HTTP2_MAX_STREAMS", default_value_t = 100)]
    pub http2_max_streams: u32,
    /// Seconds in-flight requests get to finish on SIGTERM or Ctrl-C.
    #[arg(long, env = "OPENTIME_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Reload templates when they change on disk.
    #[arg(long, env = "OPENTIME_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
    /// Ingest API tokens per channel, `CHANNEL:TOKEN,…` (e.g. `sms:…,crm:…`). Without any, the
    /// context API answers 401 to everyone.
    #[arg(long, env = "OPENTIME_CHANNEL_TOKENS", hide_env_values = true)]
    pub channel_tokens: Option<String>,
    /// What each channel may do, `CHANNEL=RIGHT,…;…` with rights `write:FIELD` (or `write:*`),
    /// `read` and `erase`, e.g. `sms=write:sms;crm=write:*,read,erase`. A channel without an
    /// entry may do everything.
    #[arg(long, env = "OPENTIME_CHANNEL_SCOPES")]
    pub channel_scopes: Option<String>,
    /// Proxies in front of opentime whose `X-Forwarded-For` entries are trusted (0 = use the
    /// TCP peer address). Decides the opener's address, hence the detection of Apple's relays
    /// and scanner networks, and location by address.
    #[arg(long, env = "OPENTIME_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
    /// Open and click events held in memory while waiting to be written; beyond it they are
    /// dropped and counted.
    #[arg(long, env = "OPENTIME_EVENT_QUEUE", default_value_t = 100_000)]
    pub event_queue: usize,
    /// Approximate cap of the `events:opens` stream (`XADD MAXLEN ~`).
    #[arg(long, env = "OPENTIME_EVENTS_MAXLEN", default_value_t = 1_000_000)]
    pub events_maxlen: u64,
    /// Origins (`https://shop.example.com`, comma-separated) whose pages may read block
    /// answers from script (CORS): they get `Access-Control-Allow-Origin` echoed.
    #[arg(long, env = "OPENTIME_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub sources: SourcesArgs,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("common", &self.common)
            .field("listen", &self.listen)
            .field("redis", &self.redis)
            .field("store_timeout_ms", &self.store_timeout_ms)
            .field("deadline_ms", &self.deadline_ms)
            .finish_non_exhaustive()
    }
}

impl ServeArgs {
    /// Reasonable settings for a given templates/assets location (tests and tools).
    pub fn with_dirs(templates: &Path, assets: &Path) -> Self {
        let mut args = Cli::try_parse_from(["opentime", "serve"])
            .ok()
            .and_then(|cli| match cli.command {
                Command::Serve(args) => Some(*args),
                _ => None,
            })
            .unwrap_or_else(|| unreachable!("`serve` parses with its defaults"));
        args.common.templates = templates.to_owned();
        args.common.assets = assets.to_owned();
        args
    }

    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.store_timeout_ms)
    }

    /// The Redis store's settings, or `None` for the embedded store.
    pub(crate) fn redis_settings(
        &self,
    ) -> Result<Option<crate::store::redis::RedisSettings>, ConfigError> {
        let Some(target) = self.redis.target()? else {
            return Ok(None);
        };
        Ok(Some(crate::store::redis::RedisSettings {
            streams: self.redis.streams(&target)?,
            target,
            command_timeout: self.store_timeout(),
            writes: crate::store::redis::replication::WritePolicy {
                replicas: self.write_replicas,
                wait: Duration::from_millis(self.write_wait_ms),
            },
        }))
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.keepalive_timeout_secs)
    }

    pub fn render_concurrency(&self) -> usize {
        self.render_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::Invalid {
            setting,
            reason: reason.to_owned(),
        };
        if self.store_timeout_ms == 0 || self.store_timeout_ms >= self.deadline_ms {
            return Err(invalid(
                "OPENTIME_STORE_TIMEOUT_MS",
                "must be above 0 and below OPENTIME_DEADLINE_MS",
            ));
        }
        if self.cache_mb == 0 {
            return Err(invalid("OPENTIME_CACHE_MB", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(invalid("OPENTIME_MAX_CONNECTIONS", "must be at least 1"));
        }
        if !(100..=300_000).contains(&self.header_timeout_ms) {
            return Err(invalid(
                "OPENTIME_HEADER_TIMEOUT_MS",
                "must be between 100 and 300000 (5 minutes)",
            ));
        }
        if !(1..=1000).contains(&self.http2_max_streams) {
            return Err(invalid(
                "OPENTIME_HTTP2_MAX_STREAMS",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=3600).contains(&self.keepalive_timeout_secs) {
            return Err(invalid(
                "OPENTIME_KEEPALIVE_TIMEOUT_SECS",
                "must be between 1 and 3600 (an hour)",
            ));
        }
        if self.event_queue == 0 || self.events_maxlen == 0 {
            return Err(invalid(
                "OPENTIME_EVENT_QUEUE / OPENTIME_EVENTS_MAXLEN",
                "must be at least 1",
            ));
        }
        if !(1..=1500).contains(&self.write_wait_ms) {
            return Err(invalid(
                "OPENTIME_WRITE_WAIT_MS",
                "must be between 1 and 1500 (the context API waits 2 s for the store)",
            ));
        }
        if self.write_replicas > 16 {
            return Err(invalid(
                "OPENTIME_WRITE_REPLICAS",
                "must be between 0 and 16",
            ));
        }
        self.redis.validate()?;
        self.common.public_base()?;
        let signer = self.common.signer()?;
        if signer.is_development() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "OPENTIME_SECRET",
                "not set: tokens would be signed with the public development secret, so \
                 anyone could forge them; a server on a non-loopback address needs a secret \
                 (32+ random bytes), or listen on 127.0.0.1",
            ));
        }
        self.channel_tokens()?;
        if self.admin_studio && self.admin_listen.is_none() {
            return Err(invalid(
                "OPENTIME_ADMIN_STUDIO",
                "needs OPENTIME_ADMIN_LISTEN: the studio is never served on the public listener",
            ));
        }
        Ok(())
    }

    /// The ingest API's channel tokens, parsed.
    pub fn channel_tokens(&self) -> Result<crate::channels::ChannelTokens, ConfigError> {
        crate::channels::ChannelTokens::parse_with_scopes(
            self.channel_tokens.as_deref().unwrap_or_default(),
            self.channel_scopes.as_deref().unwrap_or_default(),
        )
        .map_err(|e| ConfigError::Invalid {
            setting: "OPENTIME_CHANNEL_TOKENS",
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The block, as CAMPAIGN/BLOCK.
    pub block: String,
    /// A JSON file of context fields (like `templates/demo/samples/alice.json`).
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// Render as of this instant (RFC 3339), instead of now.
    #[arg(long)]
    pub at: Option<String>,
    /// Subscriber id the template sees.
    #[arg(long, default_value = "preview")]
    pub subscriber: String,
    /// Pixel density: 1, 2 (retina) or 3.
    #[arg(long, default_value_t = 1)]
    pub scale: u8,
    /// Query parameters the template sees as `query`, as KEY=VALUE (repeatable).
    #[arg(long = "query", value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// Output file; its extension (.png, .gif, .html) picks the format.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// The client kind the open is rendered for, as templates see `client.kind` (apple-mpp,
    /// gmail-proxy, yahoo-proxy, machine, outlook-word, outlook, mail-app, browser, unknown);
    /// `apple-mpp` draws a countdown as the still Apple's prefetch gets.
    #[arg(long, default_value = "unknown")]
    pub client: String,
    /// Show this variant of the block (a rule's or a test arm's) instead of the one its rules
    /// pick.
    #[arg(long)]
    pub variant: Option<String>,
    #[command(flatten)]
    pub sources: SourcesArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UrlArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The block, as CAMPAIGN/BLOCK (add `.gif` or `.html` to pick the route; PNG by default).
    pub block: String,
    /// The subscriber id the URL is for (with its token); leave it out for a shared block.
    #[arg(long)]
    pub subscriber: Option<String>,
    /// A query parameter, `KEY=VALUE` (repeatable), e.g. `--query until=2026-12-24T18:00:00+01:00`.
    /// With any, or with `--signed`, the URL carries `sig`, the signature a block declared
    /// `signed = true` requires.
    #[arg(long = "query", value_name = "KEY=VALUE")]
    pub query: Vec<String>,
    /// Add `sig` even without `--query`.
    #[arg(long)]
    pub signed: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Name of the input column holding subscriber ids (default: `subscriber`, `id`, or the first column).
    #[arg(long)]
    pub column: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The campaign.
    pub campaign: String,
    /// Print JSON (the API's answer) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The consumer group (created on every stream that lacks it).
    #[arg(long)]
    pub group: String,
    /// This consumer's name within the group (keep it stable: what it read and did not
    /// acknowledge is delivered to it again).
    #[arg(long, default_value = "opentime-events")]
    pub consumer: String,
    /// A new group starts from the oldest event kept, instead of the next one.
    #[arg(long)]
    pub from_start: bool,
    /// Keep reading as events arrive (until Ctrl-C), instead of stopping when all is read.
    #[arg(long)]
    pub follow: bool,
    /// Most entries read from one stream at a time.
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Do not acknowledge what was printed: it stays pending for this consumer, and its next
    /// run prints it again.
    #[arg(long)]
    pub no_ack: bool,
}

/// Parses the command line, applying an `opentime.toml` (or `--config` file) as defaults
/// beneath flags and environment variables.
pub fn parse_cli() -> Result<Cli, ConfigError> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let file = config_file_from(&args);
    let mut command = Cli::command();
    if let Some(path) = file {
        let settings = read_settings(&path)?;
        command = apply_settings(command, &settings, &path)?;
    }
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).map_err(|e| ConfigError::Invalid {
        setting: "command line",
        reason: e.to_string(),
    })
}

/// The settings file named by `--config`, `OPENTIME_CONFIG`, or `./opentime.toml` if present.
fn config_file_from(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    if let Some(path) = std::env::var_os("OPENTIME_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(DEFAULT_CONFIG_FILE);
    default.is_file().then_some(default)
}

fn read_settings(path: &Path) -> Result<toml::Table, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    text.parse::<toml::Table>()
        .map_err(|e| file_error(e.to_string()))
}

/// Makes each file setting the default of the argument with the same name, in every
/// subcommand that has it. A setting no subcommand knows is an error (a typo, most likely).
fn apply_settings(
    mut command: clap::Command,
    settings: &toml::Table,
    path: &Path,
) -> Result<clap::Command, ConfigError> {
    for (key, value) in settings {
        let id = key.replace('-', "_");
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    reason: format!("`{key}` must be a string, number or boolean"),
                })
            }
        };
        let mut known = false;
        let names: Vec<String> = command
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        for name in names {
            let has_arg = command
                .find_subcommand(&name)
                .is_some_and(|sub| sub.get_arguments().any(|a| a.get_id() == id.as_str()));
            if has_arg {
                known = true;
                let (id, text) = (id.clone(), text.clone());
                command = command.mut_subcommand(name, move |sub| {
                    sub.mut_arg(id, move |arg| {
                        // A secret from the file is a default like any other, but `--help`
                        // must never print it.
                        let secret = arg.is_hide_env_values_set();
                        arg.default_value(text).hide_default_value(secret)
                    })
                });
            }
        }
        if !known {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                reason: format!("unknown setting `{key}`"),
            });
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_become_defaults_below_flags() {
        let settings: toml::Table = "deadline-ms = 900\ntemplates = \"elsewhere\""
            .parse()
            .unwrap();
        let command = apply_settings(Cli::command(), &settings, Path::new("t.toml")).unwrap();
        let matches =
            command
                .clone()
                .get_matches_from(["opentime", "serve", "--templates", "cli-wins"]);
        let Command::Serve(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("serve expected")
        };
        assert_eq!(args.deadline_ms, 900);
        assert_eq!(args.common.templates, PathBuf::from("cli-wins"));
    }

    #[test]
    fn unknown_file_settings_are_errors() {
        let settings: toml::Table = "dedline-ms = 900".parse().unwrap();
        let error = apply_settings(Cli::command(), &settings, Path::new("t.toml")).unwrap_err();
        assert_eq!(error.to_string(), "t.toml: unknown setting `dedline-ms`");
    }

    #[test]
    fn validation_catches_inconsistent_timeouts() {
        let mut args = ServeArgs::with_dirs(Path::new("templates"), Path::new("assets"));
        assert!(args.validate().is_ok());
        args.store_timeout_ms = 5000;
        assert!(args.validate().is_err());
    }

    #[test]
    fn connection_limits_have_safe_defaults_and_are_checked() {
        let mut args = ServeArgs::with_dirs(Path::new("templates"), Path::new("assets"));
        assert_eq!(args.header_timeout(), Duration::from_secs(5));
        assert_eq!(args.keepalive_timeout(), Duration::from_secs(30));
        assert_eq!(args.max_connections_per_address, 64);
        assert_eq!(args.http2_max_streams, 100);
        for bad in [0, 1001] {
            args.http2_max_streams = bad;
            assert!(args.validate().is_err(), "{bad} streams");
        }
        args.http2_max_streams = 100;
        args.max_connections_per_address = 0;
        assert!(args.validate().is_ok(), "0 turns the per-address cap off");
        for bad in [0, 99, 300_001] {
            args.header_timeout_ms = bad;
            let error = args.validate().unwrap_err().to_string();
            assert!(error.starts_with("OPENTIME_HEADER_TIMEOUT_MS:"), "{error}");
        }
        args.header_timeout_ms = 300;
        for bad in [0, 3601] {
            args.keepalive_timeout_secs = bad;
            let error = args.validate().unwrap_err().to_string();
            assert!(
                error.starts_with("OPENTIME_KEEPALIVE_TIMEOUT_SECS:"),
                "{error}"
            );
        }
    }

    #[test]
    fn channel_tokens_are_checked_at_start_up() {
        let mut args = ServeArgs::with_dirs(Path::new("templates"), Path::new("assets"));
        assert!(args.channel_tokens().unwrap().is_empty());
        args.channel_tokens = Some("sms:0123456789abcdef".into());
        assert!(args.validate().is_ok());
        args.channel_tokens = Some("sms:tiny-tok".into());
        let error = args.validate().unwrap_err().to_string();
        assert!(error.starts_with("OPENTIME_CHANNEL_TOKENS:"), "{error}");
        assert!(
            !error.contains("tiny-tok"),
            "the token is not echoed: {error}"
        );
    }

    #[test]
    fn a_public_listener_needs_a_secret() {
        let mut args = ServeArgs::with_dirs(Path::new("templates"), Path::new("assets"));
        assert!(
            args.validate().is_ok(),
            "loopback without a secret is for development"
        );
        args.listen = "0.0.0.0:8080".parse().unwrap();
        let error = args.validate().unwrap_err().to_string();
        assert!(error.starts_with("OPENTIME_SECRET:"), "{error}");
        args.common.secret = Some("a-real-secret-of-thirty-two-bytes-or-more".into());
        assert!(args.validate().is_ok());
    }

    #[test]
    fn help_never_prints_a_secret_from_the_file() {
        let settings: toml::Table =
            "secret = \"file-secret-0123456789abcdef0123456789\"\ndeadline-ms = 900"
                .parse()
                .unwrap();
        let mut command = apply_settings(Cli::command(), &settings, Path::new("t.toml")).unwrap();
        let help = command
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("file-secret"), "{help}");
        assert!(help.contains("900"), "other file defaults are still shown");
        let matches = command.get_matches_from(["opentime", "serve"]);
        let Command::Serve(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("serve");
        };
        assert_eq!(
            args.common.secret.as_deref(),
            Some("file-secret-0123456789abcdef0123456789"),
            "the file's secret is still used"
        );
    }
}
