//! Builds the api from its configuration and runs it: `Application::build` then
//! `run_until_stopped`, so tests start exactly what the binary starts.

use std::sync::Arc;

use axum::extract::Request;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use docket::catalog::{Catalog, CatalogError};
use docket::db::{self, PoolSettings, SetupError};

use crate::admin::{AdminTokenError, AdminTokens};
use crate::auth::{ApiKeys, KeyConfigError};
use crate::config::Config;
use crate::inserter::Inserter;
use crate::notifier::Notifier;
use crate::rate_limit::RateLimiter;
use crate::routes;
use crate::state::AppState;

/// Why the api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    AdminTokens(#[from] AdminTokenError),
    #[error(transparent)]
    EventTokens(#[from] crate::event_tokens::EventTokenError),
    #[error(transparent)]
    Database(#[from] SetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

/// A built, bound, not yet serving api.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: crate::server::Limits,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let catalog = Catalog::load(&config.actions)?;
        let keys = ApiKeys::from_config(&config.api_keys, config.insecure_disable_auth)?;
        let admin = AdminTokens::from_config(&config.admin_tokens, &config.api_keys)?;
        let event_tokens = crate::event_tokens::EventTokens::from_config(&config.event_tokens)?;
        if event_tokens.is_none() && !catalog.triggers().is_empty() {
            tracing::warn!(
                "the catalog has triggers but DOCKET_EVENT_TOKENS is not set: POST /workfront/events answers 404"
            );
        }
        if admin.is_empty() {
            tracing::warn!("DOCKET_ADMIN_TOKEN is not set: the ops API and dashboard refuse every request");
        }
        publish_zero_metrics(&catalog);
        if matches!(keys, ApiKeys::Disabled) {
            tracing::warn!(
                "DOCKET_INSECURE_DISABLE_AUTH is set: /customAction accepts requests WITHOUT an API key. \
                 Never run this in production."
            );
        }
        // Requests are told at once that the database is away, rather than each
        // waiting out the acquire timeout.
        let settings = PoolSettings {
            acquire_timeout: config.db_acquire_timeout,
            fail_fast: true,
            ..config.db.pool_settings(config.db_connections)
        };
        let db = db::connect_and_migrate(config.database_url.expose(), &settings).await?;
        let notifier = Notifier::spawn(db.clone());
        crate::sampler::spawn(db.clone(), config.sample_interval);
        let inserter = Inserter::spawn(
            db.clone(),
            notifier.clone(),
            crate::inserter::writers(config.insert_batch, config.db_connections),
            config.insert_batch,
            config.commit_wait,
        );
        let event_writer = crate::event_writer::EventWriter::spawn(db.clone(), notifier.clone(), config.insert_batch);
        let rate_limit = config.rate_limit.map(|rate| Arc::new(RateLimiter::new(rate)));
        let state = AppState {
            db,
            catalog: Arc::new(catalog),
            keys,
            event_tokens,
            inserter,
            event_writer,
            notifier,
            admin,
            rate_limit,
            request_timeout: config.request_timeout,
            sign_in_throttle: Default::default(),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            https: config.public_url.as_ref().is_none_or(|url| url.scheme() == "https"),
        };
        let router = routes::router(state)
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(crate::server::REQUEST_ID))
            .layer(SetRequestIdLayer::new(crate::server::REQUEST_ID, MakeRequestUuid));
        let listener =
            TcpListener::bind(config.addr).await.map_err(|source| StartError::Bind { addr: config.addr, source })?;
        let limits =
            crate::server::Limits { max_connections: config.max_connections, header_timeout: config.header_timeout };
        Ok(Self { listener, router, limits })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "docket-api listening");
        crate::server::serve(self.listener, self.router, self.limits, shutdown).await
    }
}

/// The span every request's log lines carry: its id, method and path (never the
/// query string or headers, which may hold keys).
fn request_span(request: &Request) -> tracing::Span {
    let request_id =
        request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", request.id = %request_id, method = %request.method(), path = %request.uri().path())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    docket::shutdown::signal().await;
    tracing::info!("shutdown signal received");
}

/// The api's own series with their starting values, so that they exist from the
/// first scrape (the job figures of `/metrics` are read from the database then).
fn publish_zero_metrics(catalog: &Catalog) {
    docket::metrics::handle();
    docket::metrics::publish_build_info();
    for action in catalog.names() {
        metrics::counter!("docket_jobs_enqueued_total", "action" => action.clone()).absolute(0);
        metrics::counter!("docket_jobs_deduplicated_total", "action" => action).absolute(0);
    }
    for trigger in catalog.triggers() {
        for outcome in ["matched", "duplicate"] {
            metrics::counter!("docket_workfront_events_total", "trigger" => trigger.name.clone(), "outcome" => outcome)
                .absolute(0);
        }
    }
    for outcome in ["unmatched", "rejected"] {
        metrics::counter!("docket_workfront_events_total", "trigger" => "", "outcome" => outcome).absolute(0);
    }
}
