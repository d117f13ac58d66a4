//! `docket-api`: parses its configuration and runs the api until SIGINT/SIGTERM;
//! `docket-api workfront-subscriptions list|plan|apply` keeps Workfront's event
//! subscriptions in step with the catalog (its own settings; no database).

use clap::Parser;
use docket_api::subscriptions::{self, COMMAND};
use docket_api::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|first| first == COMMAND) {
        std::process::exit(workfront_subscriptions().await);
    }
    let config = Config::parse();
    docket::telemetry::init("info,sqlx=warn");
    if let Err(e) = docket::otlp::init("docket-api") {
        eprintln!("docket-api: {e}");
        std::process::exit(2);
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "docket-api cannot start");
            eprintln!("docket-api: {e}");
            std::process::exit(2);
        }
    };
    let stopped = app.run_until_stopped(docket_api::startup::shutdown_signal()).await;
    docket::otlp::shutdown().await;
    stopped?;
    Ok(())
}

/// Runs the subcommand; returns the exit code.
async fn workfront_subscriptions() -> i32 {
    let args = std::iter::once(format!("docket-api {COMMAND}").into()).chain(std::env::args_os().skip(2));
    let command = subscriptions::Command::parse_from::<_, std::ffi::OsString>(args);
    docket::telemetry::init("warn");
    match subscriptions::run(command, &mut std::io::stdout().lock()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("docket-api {COMMAND}: {e}");
            e.exit_code()
        }
    }
}
