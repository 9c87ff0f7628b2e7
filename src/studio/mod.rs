//! The studio: where marketers see every block as each reader and mail client would, change
//! it safely and copy its tag into their ESP. `opentime studio` serves it on its own listener
//! (`OPENTIME_STUDIO_LISTEN`); `opentime serve` can also serve it on the admin listener
//! (`OPENTIME_ADMIN_STUDIO`), never on the public one. Every page is behind [`access`].
//!
//! - [`routes`]: the studio's URLs (all under `/studio/`), the access gate, the answers;
//! - [`pages`]: the gallery, the editor and the login page, and their embedded CSS and JS;
//! - [`preview`]: one block rendered by the open pipeline's steps for a sample, a client, a
//!   location, a scale and a moment;
//! - [`staging`] and [`history`]: an edit tried on a copy of the campaign and checked like
//!   `opentime check` before it is written, and every save kept;
//! - [`snippets`]: the copy-paste tags per ESP; [`live`]: the reload event stream;
//!   [`error_view`]: an error's file, line, column and offending line.

mod access;
mod error_view;
mod history;
mod live;
mod pages;
mod preview;
mod routes;
mod server;
mod snippets;
mod staging;

pub use access::AccessError;
pub use history::HistoryError;
pub use preview::PreviewError;
pub use routes::{handle, StudioBody};
pub use server::{run_studio, start_studio, RunningStudio};
pub use snippets::SnippetError;
pub use staging::StagingError;

use crate::blocks::Catalog;
use crate::clock::Clock;
use crate::config::{CommonArgs, ConfigError, StudioAccessArgs};
use crate::signing::Signer;
use crate::sources::Sources;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("studio: {0}")]
    Access(#[from] AccessError),
    #[error("{0}")]
    Snippets(#[from] SnippetError),
    #[error("studio pages: {0}")]
    Pages(String),
    #[error("assets: {0}")]
    Assets(#[from] crate::render::RenderError),
    #[error("{0}")]
    Sources(#[from] crate::sources::SourcesError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What the studio's pages share.
pub struct Studio {
    catalog: Arc<Catalog>,
    sources: Arc<Sources>,
    /// Signs the links that open a block as a sample subscriber.
    signer: Signer,
    /// The public base of the server's URLs (`OPENTIME_PUBLIC_URL`), for snippets and links.
    public_base: String,
    access: access::Access,
    history: history::History,
    snippets: snippets::EspSnippets,
    pages: pages::Pages,
    /// "Now" for previews that do not travel in time.
    clock: Clock,
    /// One save at a time: each checks the campaign as the one before it left it.
    saving: tokio::sync::Mutex<()>,
}

impl Studio {
    /// The studio over `catalog`. Without a configured token one is made; it is returned so
    /// the caller can show it once.
    pub fn new(
        common: &CommonArgs,
        access: &StudioAccessArgs,
        catalog: Arc<Catalog>,
        sources: Arc<Sources>,
        clock: Clock,
    ) -> Result<(Self, Option<String>), StudioError> {
        let (gate, generated) = access::Access::new(access.studio_token.as_deref())?;
        let studio = Self {
            catalog,
            sources,
            signer: common.signer()?,
            public_base: common.public_base()?,
            access: gate,
            history: history::History::new(&access.studio_history),
            snippets: snippets::EspSnippets::load(&common.assets)?,
            pages: pages::Pages::new().map_err(StudioError::Pages)?,
            clock,
            saving: tokio::sync::Mutex::new(()),
        };
        Ok((studio, generated))
    }
}
