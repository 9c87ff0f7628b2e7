//! The studio's settings: where `opentime studio` listens, the token that admits a person, and
//! where every save is kept. The server shares the access settings for the studio it can serve
//! on its admin listener.

use super::{CommonArgs, SourcesArgs};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Who the studio admits and where it keeps saved versions (`serve` and `studio`).
#[derive(Clone, Args)]
pub struct StudioAccessArgs {
    /// The token that admits a person to the studio (login page, or `?token=` once). Without
    /// one, a random token is made at start-up and the studio's address with it is printed once.
    #[arg(
        long = "studio-token",
        env = "OPENTIME_STUDIO_TOKEN",
        hide_env_values = true
    )]
    pub studio_token: Option<String>,
    /// Where the studio keeps every saved version of a file (one folder per campaign).
    #[arg(
        long = "studio-history",
        env = "OPENTIME_STUDIO_HISTORY",
        default_value = ".opentime/studio-history"
    )]
    pub studio_history: PathBuf,
}

impl std::fmt::Debug for StudioAccessArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudioAccessArgs")
            .field(
                "studio_token",
                &self.studio_token.as_ref().map(|_| "<redacted>"),
            )
            .field("studio_history", &self.studio_history)
            .finish()
    }
}

/// `opentime studio`.
#[derive(Debug, Clone, Args)]
pub struct StudioArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address the studio listens on (keep it on loopback, or behind HTTPS).
    #[arg(long, env = "OPENTIME_STUDIO_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: StudioAccessArgs,
    /// Reload templates when they change on disk (open pages follow within a second).
    #[arg(long, env = "OPENTIME_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch: bool,
    #[command(flatten)]
    pub sources: SourcesArgs,
}

impl StudioArgs {
    /// Settings for a given templates/assets location (tests and tools).
    pub fn with_dirs(templates: &std::path::Path, assets: &std::path::Path) -> Self {
        let mut args = <super::Cli as clap::Parser>::try_parse_from(["opentime", "studio"])
            .ok()
            .and_then(|cli| match cli.command {
                super::Command::Studio(args) => Some(args),
                _ => None,
            })
            .unwrap_or_else(|| unreachable!("`studio` parses with its defaults"));
        args.common.templates = templates.to_owned();
        args.common.assets = assets.to_owned();
        args
    }
}
