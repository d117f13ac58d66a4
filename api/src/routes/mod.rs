//! The api's routes: Workfront's endpoints, health probes, metrics, the OpenAPI
//! document, the operators' API and dashboard, and JSON answers for anything else.

mod custom_action;
mod events;
mod health;
pub mod metrics;
pub mod openapi;
mod service_info;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
pub use crate::state::AppState;

/// Every route cut at the request timeout, documented ones with their paths.
fn time_limited() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(service_info::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(crate::ops::router())
}

/// The OpenAPI document of every documented route (what `/openapi.json` serves).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = time_limited().merge(custom_action::router()).merge(events::router()).into_openapi();
    openapi::finish(&mut document);
    document
}

/// All routes, with their state applied.
pub fn router(state: AppState) -> Router {
    // /customAction keeps its own deadline (it runs out only before the job is
    // handed to a writer), and the event intake its own (Workfront's 5-second
    // budget); every other route is cut at the request timeout.
    let (routes, mut document) = time_limited()
        .layer(axum::middleware::from_fn_with_state(state.request_timeout, time_limit))
        .merge(custom_action::router())
        .merge(events::router())
        .split_for_parts();
    openapi::finish(&mut document);
    routes
        .merge(openapi::router(document))
        .fallback(|| async { ApiError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Answers 503 with the failure JSON when a request takes longer than the limit.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
