//! Start-up, the accept loop and graceful shutdown.
//!
//! Start-up opens the configured store (saying which in the first log line), loads the
//! campaigns, starts the template watcher, then accepts connections — at most
//! `max_connections` at once, at most `max_connections_per_address` from one client address,
//! each closed when it is silent, slow to send its header or idle for too long
//! ([`connection_limits`](super::connection_limits)). On SIGTERM or Ctrl-C it stops accepting
//! and gives in-flight requests `shutdown_grace_secs` to finish.

use super::connection_limits::{Activity, AddressSlots, Guarded, Timeouts};
use super::cors::{CorsError, CorsOrigins};
use super::router::{self, Face, PeerAddr};
use super::shutdown;
use super::state::AppState;
use crate::blocks::{Catalog, TemplateWatcher};
use crate::cache::RenderCache;
use crate::clock::Clock;
use crate::config::{ConfigError, ServeArgs};
use crate::context::StoreError;
use crate::events::EventRecorder;
use crate::metrics::Metrics;
use crate::open::render_budget::RenderBudget;
use crate::open::{OpenLimits, Pipeline};
use crate::render::{RenderError, Renderer};
use crate::sources::{Sources, SourcesError};
use crate::store::EmbeddedPlace;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("context store: {0}")]
    Store(#[from] StoreError),
    #[error("assets: {0}")]
    Assets(#[from] RenderError),
    #[error("{0}")]
    Sources(#[from] SourcesError),
    #[error("{0}")]
    Cors(#[from] CorsError),
    #[error("{0}")]
    Studio(#[from] crate::studio::StudioError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server running in the background (used by `serve` and by the tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin listener's address, when `OPENTIME_ADMIN_LISTEN` is set.
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
    _watcher: Option<TemplateWatcher>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits until the server is done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.wait().await;
    }

    /// Waits until the server stops (after a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
        if let Some(admin) = self.admin_task {
            let _ = admin.await;
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    start(args).await?.wait().await;
    Ok(())
}

/// Opens the store, loads campaigns, binds and starts serving in the background.
pub async fn start(args: ServeArgs) -> Result<RunningServer, ServeError> {
    start_with_clock(args, Clock::system()).await
}

/// [`start`] with a given clock for renders (tests pin the instant with [`Clock::manual`]).
pub async fn start_with_clock(args: ServeArgs, clock: Clock) -> Result<RunningServer, ServeError> {
    args.validate()?;
    let channels = args.channel_tokens()?;
    for channel in channels.unscoped() {
        tracing::warn!(channel, "channel has no scope in OPENTIME_CHANNEL_SCOPES: it may read, write and erase every subscriber's context");
    }
    let opened = crate::store::open(
        args.redis_settings()?,
        EmbeddedPlace {
            data_dir: &args.data_dir,
            seed: &args.seed,
        },
    )?;
    let signer = args.common.signer()?;
    if signer.is_development() {
        tracing::warn!("NO SECRET CONFIGURED: tokens are signed with the public development secret; anyone can forge them. Set OPENTIME_SECRET before sending real emails.");
    }
    let sources = Arc::new(Sources::from_args(&args.sources)?);
    let cors = CorsOrigins::new(&args.cors_origins)?;
    tracing::info!(
        image_hosts = ?args.sources.image_hosts,
        feed_hosts = ?args.sources.feed_hosts,
        feed_secrets = args.sources.feed_secrets.len(),
        geoip = %args.sources.geoip_db.as_deref().map_or("none (location from the context only)".into(), |p| p.display().to_string()),
        stores = sources.stores.len(),
        trusted_proxy_hops = args.trusted_proxy_hops,
        "sources"
    );
    let renderer = Arc::new(Renderer::load_with(
        &args.common.assets,
        &args.common.font_settings(),
    )?);
    let (faces, chain) = renderer.rasterizer().font_summary();
    tracing::info!(faces, fallback = ?chain, "fonts loaded");
    let templates = args.common.templates.clone();
    let (catalog, errors) =
        tokio::task::spawn_blocking(move || Catalog::load(&templates, renderer))
            .await
            .map_err(|e| ServeError::Assets(RenderError::Assets(e.to_string())))?;
    for error in &errors {
        tracing::error!(%error, "campaign not loaded");
    }
    let catalog = Arc::new(catalog);
    tracing::info!(campaigns = ?catalog.campaigns().iter().map(|c| c.name.clone()).collect::<Vec<_>>(), "templates loaded");
    let watcher = if args.watch {
        match TemplateWatcher::start(Arc::clone(&catalog)) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "template hot reload is off");
                None
            }
        }
    } else {
        None
    };

    let (listener, addr) = bind(args.listen).await?;
    let admin = match args.admin_listen {
        Some(admin) => Some(bind(admin).await?),
        None => None,
    };
    let mut metrics = Metrics::new();
    metrics.count_missing_characters(catalog.renderer().missing_characters());
    let metrics = Arc::new(metrics);
    let events = EventRecorder::start(
        opened.events,
        args.event_queue,
        args.events_maxlen,
        Arc::clone(&metrics),
    );
    let pipeline = Pipeline {
        signer,
        contexts: opened.contexts,
        locks: opened.locks,
        tallies: opened.tallies,
        events,
        catalog,
        cache: RenderCache::new(args.cache_mb * 1024 * 1024),
        metrics,
        render_budget: Arc::new(RenderBudget::new(args.render_concurrency())),
        sources,
        clock,
        limits: OpenLimits {
            deadline: args.deadline(),
            store_timeout: args.store_timeout(),
        },
    };
    let studio = match (&admin, args.admin_studio) {
        (Some(_), true) => {
            let (studio, generated) = crate::studio::Studio::new(
                &args.common,
                &args.studio,
                Arc::clone(&pipeline.catalog),
                Arc::clone(&pipeline.sources),
                pipeline.clock.clone(),
            )?;
            if let Some(token) = generated {
                // Shown once, on the terminal, never in the logs (as Jupyter does).
                eprintln!("opentime studio on the admin listener: /studio/?token={token}");
            }
            Some(Arc::new(studio))
        }
        _ => None,
    };
    let state = Arc::new(AppState {
        pipeline,
        cors,
        channels,
        config: args,
        studio,
    });
    tracing::info!(%addr, "listening");
    let (stop, stopped) = watch::channel(false);
    let (admin_addr, admin_task) = match admin {
        Some((listener, admin_addr)) => {
            tracing::info!(%admin_addr, "admin listener: /metrics, /readyz, /healthz");
            let loop_ = accept_loop(listener, Arc::clone(&state), stopped.clone(), Face::Admin);
            (Some(admin_addr), Some(tokio::spawn(loop_)))
        }
        None => (None, None),
    };
    let task = tokio::spawn(accept_loop(
        listener,
        Arc::clone(&state),
        stopped,
        Face::Public,
    ));
    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        stop,
        task,
        admin_task,
        _watcher: watcher,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    stopped: watch::Receiver<bool>,
    face: Face,
) {
    let connections = Arc::new(Semaphore::new(state.config.max_connections));
    let per_address = AddressSlots::new(state.config.max_connections_per_address);
    let timeouts = Timeouts {
        header: state.config.header_timeout(),
        idle: state.config.keepalive_timeout(),
    };
    let graceful = GracefulShutdown::new();
    // No hyper timer, on purpose: with one, hyper's HTTP/1 header timeout (30 s by default)
    // would also run while a keep-alive connection waits for its next request. The socket
    // wrapper (`Guarded`) bounds headers and idle time instead, for both protocols.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(state.config.http2_max_streams);
    let signal = shutdown::signal_or(stopped);
    tokio::pin!(signal);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut signal => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let metrics = Arc::clone(&state.pipeline.metrics);
        let Some(address_slot) = per_address.take(peer.ip()) else {
            // Closed at once (which frees its permit): cheaper than any answer.
            metrics.connection_closed("address-cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new(timeouts);
        let stream = Guarded::new(stream, Arc::clone(&activity), metrics);
        let state = Arc::clone(&state);
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            // Counted from the call, before the future first runs: the socket's idle clock
            // must not run while a request waits to be polled.
            let in_flight = activity.request_started();
            request.extensions_mut().insert(PeerAddr(peer));
            let state = Arc::clone(&state);
            async move {
                let response = match (&state.studio, face) {
                    (Some(studio), Face::Admin) if request.uri().path().starts_with("/studio") => {
                        crate::studio::handle(Arc::clone(studio), request).await
                    }
                    _ => router::handle(state, request, face)
                        .await
                        .map(BodyExt::boxed),
                };
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _permit = permit;
            let _address_slot = address_slot;
            let _ = connection.await;
        });
    }
    drop(listener);
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the grace period");
    }
    if face == Face::Admin {
        return;
    }
    if !state.pipeline.events.flush(grace).await {
        tracing::warn!("some open and click events could not be written before stopping");
    }
    tracing::info!("stopped");
}
