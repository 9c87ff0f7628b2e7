//! What every request handler shares: configuration, store, catalog, cache, metrics.

use super::cors::CorsOrigins;
use crate::blocks::Catalog;
use crate::cache::RenderCache;
use crate::channels::ChannelTokens;
use crate::clock::Clock;
use crate::config::ServeArgs;
use crate::context::SharedStore;
use crate::events::EventRecorder;
use crate::lock::SharedLocks;
use crate::metrics::Metrics;
use crate::signing::Signer;
use crate::sources::Sources;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct AppState {
    pub config: ServeArgs,
    pub signer: Signer,
    pub store: SharedStore,
    pub catalog: Arc<Catalog>,
    pub cache: RenderCache,
    pub metrics: Arc<Metrics>,
    /// Bounds renders running at once, so a burst of cache misses queues (up to the deadline,
    /// then falls back) instead of stalling every other request.
    pub render_permits: Arc<Semaphore>,
    /// Remote photos, GeoIP, mail-client rules and stores.
    pub sources: Arc<Sources>,
    /// Origins allowed to read block answers from script.
    pub cors: CorsOrigins,
    /// Lock-on-open storage (the same backend as `store`).
    pub locks: SharedLocks,
    /// Open and click events, written in the background.
    pub events: EventRecorder,
    /// Who may write context through the ingest API.
    pub channels: ChannelTokens,
    /// "Now" for renders (the system clock; tests pin it).
    pub clock: Clock,
}
