//! `docket-api`: parses its configuration and runs the api until SIGINT/SIGTERM.

use clap::Parser;
use docket_api::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    docket::telemetry::init("info,sqlx=warn");
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "docket-api cannot start");
            eprintln!("docket-api: {e}");
            std::process::exit(2);
        }
    };
    app.run_until_stopped(docket_api::startup::shutdown_signal()).await?;
    Ok(())
}
