//! `opentime studio`: loads the campaigns, watches them, and serves the studio on its own
//! listener (`OPENTIME_STUDIO_LISTEN`, loopback by default) until Ctrl-C or SIGTERM. Without a
//! configured token it prints the studio's address with a fresh one, once, as Jupyter does.

use super::{Studio, StudioError};
use crate::blocks::{Catalog, TemplateWatcher};
use crate::clock::Clock;
use crate::config::StudioArgs;
use crate::render::{RenderError, Renderer};
use crate::sources::Sources;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The studio serving in the background.
pub struct RunningStudio {
    pub addr: SocketAddr,
    /// The token made at start-up when none was configured.
    pub generated_token: Option<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    _watcher: Option<TemplateWatcher>,
}

impl RunningStudio {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Runs `opentime studio` until a signal.
pub async fn run_studio(args: StudioArgs) -> Result<(), StudioError> {
    let running = start_studio(args, Clock::system()).await?;
    match &running.generated_token {
        Some(token) => println!(
            "opentime studio: http://{}/studio/?token={token}\n(no OPENTIME_STUDIO_TOKEN set: this token was made for this run)",
            running.addr
        ),
        None => println!("opentime studio: http://{}/studio/", running.addr),
    }
    running.wait().await;
    Ok(())
}

/// Loads the campaigns and starts the studio in the background.
pub async fn start_studio(args: StudioArgs, clock: Clock) -> Result<RunningStudio, StudioError> {
    let sources = Arc::new(Sources::from_args(&args.sources)?);
    let renderer = Arc::new(Renderer::load_with(
        &args.common.assets,
        &args.common.font_settings(),
    )?);
    let templates = args.common.templates.clone();
    let (catalog, errors) =
        tokio::task::spawn_blocking(move || Catalog::load(&templates, renderer))
            .await
            .map_err(|e| RenderError::Assets(e.to_string()))?;
    for error in &errors {
        tracing::error!(%error, "campaign not loaded");
    }
    let catalog = Arc::new(catalog);
    let watcher = if args.watch {
        TemplateWatcher::start(Arc::clone(&catalog))
            .inspect_err(|error| tracing::warn!(%error, "template hot reload is off"))
            .ok()
    } else {
        None
    };
    let (studio, generated_token) =
        Studio::new(&args.common, &args.access, catalog, sources, clock)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| StudioError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StudioError::Bind {
        addr: args.listen,
        source,
    })?;
    tracing::info!(%addr, "studio listening");
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::new(studio), stopped));
    Ok(RunningStudio {
        addr,
        generated_token,
        stop,
        task,
        _watcher: watcher,
    })
}

async fn accept_loop(listener: TcpListener, studio: Arc<Studio>, stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let signal = crate::http::shutdown::signal_or(stopped);
    tokio::pin!(signal);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let studio = Arc::clone(&studio);
        let service = service_fn(move |request| {
            let studio = Arc::clone(&studio);
            async move { Ok::<_, std::convert::Infallible>(super::handle(studio, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    // Event streams never end by themselves: give the rest a moment, then stop.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), graceful.shutdown()).await;
}
