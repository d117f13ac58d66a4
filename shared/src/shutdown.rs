//! Waiting for the signals that stop a process: SIGINT or SIGTERM.

/// Completes on SIGINT or SIGTERM (or only SIGINT where SIGTERM cannot be watched).
pub async fn signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
