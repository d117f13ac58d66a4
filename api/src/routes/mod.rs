//! The api's routes: Workfront's endpoints, health probes, metrics, the OpenAPI
//! document, the operators' API and dashboard, and JSON answers for anything else.

mod custom_action;
mod health;
pub mod metrics;
pub mod openapi;
mod service_info;

use std::sync::Arc;

use axum::Router;
use docket::catalog::Catalog;
use docket::db::Db;

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::inserter::Inserter;
use crate::ops::auth::AdminTokens;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub keys: ApiKeys,
    pub inserter: Inserter,
    pub admin: AdminTokens,
    pub rate_limit: Option<std::sync::Arc<crate::rate_limit::RateLimiter>>,
}

/// All routes, with their state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(service_info::router())
        .merge(custom_action::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(crate::ops::router())
        .fallback(|| async { ApiError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}
