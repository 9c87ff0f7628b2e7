//! Waits for the signal to stop: SIGTERM (orchestrators) or Ctrl-C (a person), or a call to
//! [`crate::http::server::RunningServer::shutdown`] (tests).

use tokio::sync::watch;

pub(crate) async fn signal_or(mut stop: watch::Receiver<bool>) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let requested = async {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; finishing in-flight requests"),
        _ = terminate => tracing::info!("SIGTERM received; finishing in-flight requests"),
        _ = requested => tracing::info!("shutdown requested; finishing in-flight requests"),
    }
}
