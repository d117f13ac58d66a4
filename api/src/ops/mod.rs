//! Everything for operators, under `/ops/`: the JSON API ([`api`]), the dashboard
//! ([`dashboard`]), their credentials ([`auth`]) and the job explanations
//! ([`explain`]). Authenticated with admin tokens, never with Workfront's API keys.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod explain;

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;

use crate::routes::AppState;
use auth::Actor;
use error::OpsError;

/// Statement timeout of every operator query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most jobs in one page of the list.
pub const PAGE_CAP: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new().merge(api::router()).merge(dashboard::router())
}

/// An operator authenticated with `Authorization: Bearer <admin token>`.
pub struct Operator(pub Actor);

impl FromRequestParts<AppState> for Operator {
    type Rejection = OpsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.admin.check_bearer(&parts.headers).map(Operator).ok_or(OpsError::Unauthorized)
    }
}

/// The attempt budget a retried job gets: its action's `max_attempts`.
pub fn retry_budget(state: &AppState, action: &str) -> i32 {
    state.catalog.get(action).map(|a| a.retry.max_attempts).unwrap_or(docket::catalog::DEFAULT_MAX_ATTEMPTS) as i32
}
