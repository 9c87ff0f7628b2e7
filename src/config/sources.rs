//! Settings for live data: remote product photos, the MaxMind database, the mail-client
//! rules (with Apple's egress list and the scanner networks) and the stores file. Shared by `serve` and `render` (the offline render fetches
//! photos the same way the server does), turned into [`crate::sources::Sources`]
//! once at start-up.

use clap::Args;
use std::path::PathBuf;

/// A secret that feed header values reference as `${NAME}`; its `Debug` shows the name only.
#[derive(Clone)]
pub struct FeedSecret {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for FeedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=<redacted>", self.name)
    }
}

impl std::str::FromStr for FeedSecret {
    type Err = String;

    /// `NAME=VALUE`; the error never repeats the value.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        match entry.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() && !value.is_empty() => Ok(Self {
                name: name.trim().to_owned(),
                value: value.to_owned(),
            }),
            _ => Err("a feed secret is NAME=VALUE".into()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SourcesArgs {
    /// Hosts remote images may be fetched from, comma-separated: `cdn.shop.com`,
    /// `*.shopcdn.net` (subdomains only) or an IP address. Empty: no remote image is fetched.
    #[arg(long, env = "OPENTIME_IMAGE_HOSTS", value_delimiter = ',')]
    pub image_hosts: Vec<String>,
    /// Exact hosts (or IPs) that may resolve to private or loopback addresses, e.g. an
    /// internal image server; listing one here also allows it. Never needed for a public CDN.
    #[arg(long, env = "OPENTIME_IMAGE_PRIVATE_HOSTS", value_delimiter = ',')]
    pub image_private_hosts: Vec<String>,
    /// Static DNS answers for image hosts, `HOST=IP`, comma-separated (like curl --resolve);
    /// the address rules still apply.
    #[arg(long, env = "OPENTIME_IMAGE_RESOLVE", value_delimiter = ',')]
    pub image_resolve: Vec<String>,
    /// Largest image body accepted, in bytes.
    #[arg(long, env = "OPENTIME_IMAGE_MAX_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub image_max_bytes: u64,
    /// Deadline for connecting to an image host, in ms.
    #[arg(long, env = "OPENTIME_IMAGE_CONNECT_TIMEOUT_MS", default_value_t = 300)]
    pub image_connect_timeout_ms: u64,
    /// Deadline for a whole image fetch, in ms (a render also stops waiting at its own deadline).
    #[arg(long, env = "OPENTIME_IMAGE_TIMEOUT_MS", default_value_t = 700)]
    pub image_timeout_ms: u64,
    /// Memory for fetched images, in MiB. They are kept resized to their slots and uncompressed
    /// (a 44×44 thumbnail takes 7.9 KB, 31 KB at `scale=2`), so a render copies them in.
    #[arg(long, env = "OPENTIME_IMAGE_CACHE_MB", default_value_t = 64)]
    pub image_cache_mb: u64,
    /// How long a fetched image is kept, in seconds.
    #[arg(long, env = "OPENTIME_IMAGE_CACHE_TTL_SECS", default_value_t = 900)]
    pub image_cache_ttl_secs: u64,
    /// How long a failed fetch is remembered (so a broken URL is not hammered), in seconds.
    #[arg(long, env = "OPENTIME_IMAGE_FAILURE_TTL_SECS", default_value_t = 30)]
    pub image_failure_ttl_secs: u64,
    /// Hosts live data feeds may be fetched from, comma-separated (as for image hosts); feeds
    /// are fetched over HTTPS. Empty: no feed is fetched (blocks see `null`).
    #[arg(long, env = "OPENTIME_FEED_HOSTS", value_delimiter = ',')]
    pub feed_hosts: Vec<String>,
    /// Exact feed hosts that may resolve to private or loopback addresses (an internal API;
    /// these may also be reached over plain HTTP); listing one here also allows it.
    #[arg(long, env = "OPENTIME_FEED_PRIVATE_HOSTS", value_delimiter = ',')]
    pub feed_private_hosts: Vec<String>,
    /// Static DNS answers for feed hosts, `HOST=IP`, comma-separated; the address rules apply.
    #[arg(long, env = "OPENTIME_FEED_RESOLVE", value_delimiter = ',')]
    pub feed_resolve: Vec<String>,
    /// Secrets that feed header values reference as `${NAME}`: `NAME=VALUE`, comma-separated.
    /// Never shown to templates, never logged.
    #[arg(
        long,
        env = "OPENTIME_FEED_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub feed_secrets: Vec<FeedSecret>,
    /// MaxMind City database (`.mmdb`) for locating readers by IP. Without it, `location`
    /// comes from the context only.
    #[arg(long, env = "OPENTIME_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,
    /// Mail-client rules (the format of `assets/clients.toml`); the shipped rules by default.
    #[arg(long, env = "OPENTIME_CLIENTS_FILE")]
    pub clients_file: Option<PathBuf>,
    /// Apple's relay egress list (`egress-ip-ranges.csv`, downloaded from
    /// https://mask-api.icloud.com/egress-ip-ranges.csv): Mail Privacy Protection fetches from
    /// these addresses are told apart, and placed where Apple says their readers are.
    #[arg(long, env = "OPENTIME_APPLE_EGRESS_FILE")]
    pub apple_egress_file: Option<PathBuf>,
    /// Networks whose fetches are machines' (security scanners), comma-separated CIDRs;
    /// checked before every mail-client rule, beside the shipped scanner networks.
    #[arg(long, env = "OPENTIME_MACHINE_NETWORKS", value_delimiter = ',')]
    pub machine_networks: Vec<String>,
    /// A file of such networks, one CIDR per line (`#` comments).
    #[arg(long, env = "OPENTIME_MACHINE_NETWORKS_FILE")]
    pub machine_networks_file: Option<PathBuf>,
    /// The shop stores file (JSON, the format of `assets/demo-stores.json`); the demo stores by default.
    #[arg(long, env = "OPENTIME_STORES")]
    pub stores: Option<PathBuf>,
}

impl Default for SourcesArgs {
    fn default() -> Self {
        Self {
            image_hosts: Vec::new(),
            image_private_hosts: Vec::new(),
            image_resolve: Vec::new(),
            feed_hosts: Vec::new(),
            feed_private_hosts: Vec::new(),
            feed_resolve: Vec::new(),
            feed_secrets: Vec::new(),
            image_max_bytes: 5 * 1024 * 1024,
            image_connect_timeout_ms: 300,
            image_timeout_ms: 700,
            image_cache_mb: 64,
            image_cache_ttl_secs: 900,
            image_failure_ttl_secs: 30,
            geoip_db: None,
            clients_file: None,
            apple_egress_file: None,
            machine_networks: Vec::new(),
            machine_networks_file: None,
            stores: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply_settings, Cli, Command};
    use clap::{CommandFactory, FromArgMatches};
    use std::path::Path;

    fn serve_with(settings: &str, args: &[&str]) -> super::SourcesArgs {
        let settings: toml::Table = settings.parse().unwrap();
        let command = apply_settings(Cli::command(), &settings, Path::new("t.toml")).unwrap();
        let matches = command.get_matches_from(args);
        match Cli::from_arg_matches(&matches).unwrap().command {
            Command::Serve(args) => args.sources,
            _ => panic!("serve expected"),
        }
    }

    #[test]
    fn lists_split_on_commas_in_files_and_flags() {
        let sources = serve_with(
            "image-hosts = \"cdn.shop.test,*.img.test\"\nimage-timeout-ms = 500",
            &["opentime", "serve"],
        );
        assert_eq!(sources.image_hosts, ["cdn.shop.test", "*.img.test"]);
        assert_eq!(sources.image_timeout_ms, 500);
        let sources = serve_with(
            "",
            &[
                "opentime",
                "serve",
                "--image-hosts",
                "a.test,b.test",
                "--geoip-db",
                "x.mmdb",
            ],
        );
        assert_eq!(sources.image_hosts, ["a.test", "b.test"]);
        assert_eq!(sources.geoip_db.as_deref(), Some(Path::new("x.mmdb")));
    }

    #[test]
    fn default_matches_the_flag_defaults() {
        let parsed = serve_with("", &["opentime", "serve"]);
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", super::SourcesArgs::default())
        );
    }
}
