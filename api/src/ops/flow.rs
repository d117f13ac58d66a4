//! The ops JSON API's flow-control endpoints: every action's limits, usage, pause and
//! circuit (`GET /ops/actions`), pause, resume, close a circuit; adapters over
//! [`crate::service::flow`].

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::domain::CircuitState;

use super::error::{OpsError, OpsErrorBody};
use super::operator::Operator;
use crate::service::flow::{self, ActionFlow, PauseRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(close_circuit))
}

/// Every action of the catalog with its flow control.
#[derive(Serialize, ToSchema)]
#[schema(as = ActionFlows)]
pub struct ActionList {
    actions: Vec<ActionFlow>,
}

/// Every action's limits, usage, pause and circuit.
#[utoipa::path(get, path = "/ops/actions", operation_id = "listActions", tag = "ops", security(("adminToken" = [])),
    responses(
        (status = 200, description = "Every action", body = ActionList),
        (status = 401, description = "Unauthorized", body = OpsErrorBody)
    ))]
async fn list(_: Operator, State(state): State<AppState>) -> Result<Json<ActionList>, OpsError> {
    let actions = flow::load(&state.db, &state.catalog).await?;
    Ok(Json(ActionList { actions }))
}

/// The answer to a pause or a resume.
#[derive(Serialize, ToSchema)]
pub struct Paused {
    action: String,
    paused: bool,
    /// When the pause ends by itself (null: when resumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<DateTime<Utc>>,
}

/// The answer to closing a circuit.
#[derive(Serialize, ToSchema)]
pub struct CircuitClosed {
    action: String,
    /// Always "closed".
    circuit: CircuitState,
}

/// Pause an action: triggers are still accepted, no job of it starts.
#[utoipa::path(post, path = "/ops/actions/{action}/pause", operation_id = "pauseAction", tag = "ops",
    security(("adminToken" = [])),
    params(("action" = String, Path, description = "the action")),
    request_body(content = Option<PauseRequest>, description = "optional; an empty body pauses until resumed"),
    responses(
        (status = 200, description = "Paused", body = Paused),
        (status = 400, description = "Bad body: not a JSON object, unknown field, note too long or with control characters",
            body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such action", body = OpsErrorBody),
        (status = 409, description = "`until` has already passed", body = OpsErrorBody)
    ))]
async fn pause(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Json<Paused>, OpsError> {
    let request = PauseRequest::parse(&body, Utc::now())?;
    flow::pause_action(&state, &actor.0, &action, &request).await?;
    Ok(Json(Paused { action, paused: true, until: request.until }))
}

/// End an operator's pause.
#[utoipa::path(post, path = "/ops/actions/{action}/resume", operation_id = "resumeAction", tag = "ops",
    security(("adminToken" = [])),
    params(("action" = String, Path, description = "the action")),
    responses(
        (status = 200, description = "Resumed", body = Paused),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such action", body = OpsErrorBody),
        (status = 409, description = "Not paused", body = OpsErrorBody)
    ))]
async fn resume(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(action): Path<String>,
) -> Result<Json<Paused>, OpsError> {
    flow::resume_action(&state, &actor.0, &action).await?;
    Ok(Json(Paused { action, paused: false, until: None }))
}

/// Close an action's circuit by hand (and end a back-pressure wait).
#[utoipa::path(post, path = "/ops/actions/{action}/close-circuit", operation_id = "closeCircuit", tag = "ops",
    security(("adminToken" = [])),
    params(("action" = String, Path, description = "the action")),
    responses(
        (status = 200, description = "Closed", body = CircuitClosed),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such action", body = OpsErrorBody),
        (status = 409, description = "Already closed", body = OpsErrorBody)
    ))]
async fn close_circuit(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(action): Path<String>,
) -> Result<Json<CircuitClosed>, OpsError> {
    flow::close_action_circuit(&state, &actor.0, &action).await?;
    Ok(Json(CircuitClosed { action, circuit: CircuitState::Closed }))
}
