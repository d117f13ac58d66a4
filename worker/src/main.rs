//! `docket-worker`: parses its configuration and runs a worker until SIGINT/SIGTERM.

use clap::Parser;
use docket_worker::{config::Config, Worker};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    docket::telemetry::init("info,sqlx=warn");
    if let Err(e) = docket::otlp::init("docket-worker") {
        eprintln!("docket-worker: {e}");
        std::process::exit(2);
    }
    let worker = match Worker::build(config).await {
        Ok(worker) => worker,
        Err(e) => {
            tracing::error!(error = %e, "docket-worker cannot start");
            eprintln!("docket-worker: {e}");
            std::process::exit(2);
        }
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        docket::shutdown::signal().await;
        trigger.cancel();
        tracing::info!("shutdown signal received: no new claims; finishing running jobs");
    });
    worker.run_until_stopped(shutdown).await;
    docket::otlp::shutdown().await;
    Ok(())
}
