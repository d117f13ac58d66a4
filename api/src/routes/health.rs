//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and
//! carries this build's schema), for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// `{"status": …}`: "ok", "ready" or "not ready".
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    status: &'static str,
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "probes",
    responses((status = 200, description = "alive", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The database answers and carries this build's schema.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "probes",
    responses((status = 200, description = "ready", body = Status), (status = 503, description = "not ready", body = Status)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Status>) {
    match docket::db::readiness(&state.db).await {
        Ok(()) => (StatusCode::OK, Json(Status { status: "ready" })),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Status { status: "not ready" }))
        }
    }
}
