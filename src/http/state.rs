//! What every request handler shares: the open pipeline, and what only the HTTP face needs
//! (settings, CORS, the ingest API's channel tokens).

use super::cors::CorsOrigins;
use crate::channels::ChannelTokens;
use crate::config::ServeArgs;
use crate::open::Pipeline;

pub struct AppState {
    pub config: ServeArgs,
    /// Everything an open needs: stores, catalog, cache, sources, metrics, events.
    pub pipeline: Pipeline,
    /// Origins allowed to read block answers from script.
    pub cors: CorsOrigins,
    /// Who may write context through the ingest API.
    pub channels: ChannelTokens,
    /// The studio's pages, served on the admin listener when `OPENTIME_ADMIN_STUDIO` is on.
    pub studio: Option<std::sync::Arc<crate::studio::Studio>>,
}
