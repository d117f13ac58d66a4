//! The ops JSON API's dashboard-session endpoints: list the live ones, revoke one,
//! revoke every session of a label; adapters over [`crate::service::sessions`].

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{OpsError, OpsErrorBody};
use super::operator::Operator;
use crate::service::sessions::{self, SessionView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(revoke_one)).routes(routes!(revoke_label))
}

/// Live sessions, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OperatorSessions)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LabelQuery {
    /// An admin token's label (empty: any).
    #[param(pattern = "^[A-Za-z0-9_@-]{0,64}$")]
    pub label: Option<String>,
}

/// The label whose sessions to revoke (required).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequiredLabel {
    /// An admin token's label.
    #[param(pattern = "^[A-Za-z0-9_@-]{1,64}$")]
    pub label: String,
}

/// The live dashboard sessions, newest first (at most 500).
#[utoipa::path(get, path = "/ops/sessions", operation_id = "listSessions", tag = "ops", security(("adminToken" = [])),
    params(LabelQuery),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 400, description = "Bad parameter", body = OpsErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = OpsErrorBody),
        (status = 404, description = "No admin token has this label", body = OpsErrorBody)
    ))]
async fn list(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<LabelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SessionList>, OpsError> {
    let Query(query) = query.map_err(|e| OpsError::BadRequest(e.body_text()))?;
    let label = query.label.filter(|l| !l.is_empty());
    if let Some(label) = &label {
        sessions::known_label(&state, label)?;
    }
    Ok(Json(SessionList { sessions: sessions::live_sessions(&state, label.as_deref()).await? }))
}

/// The answer to revoking one session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRevoked {
    id: String,
    label: String,
}

/// Revoke one dashboard session: its cookie stops working at once.
#[utoipa::path(post, path = "/ops/sessions/{id}/revoke", operation_id = "revokeSession", tag = "ops",
    security(("adminToken" = [])),
    params(("id" = String, Path, description = "the session's id as listed (64 hex digits)", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "Revoked", body = SessionRevoked),
        (status = 400, description = "Not a session id", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such session", body = OpsErrorBody),
        (status = 409, description = "Already revoked or expired", body = OpsErrorBody)
    ))]
async fn revoke_one(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionRevoked>, OpsError> {
    let digest = sessions::parse_session_id(&id)?;
    let label = sessions::revoke_session(&state, &actor.0, &digest).await?;
    Ok(Json(SessionRevoked { id, label }))
}

/// The answer to revoking a label's sessions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsRevoked {
    label: String,
    /// How many live sessions were revoked.
    revoked: u64,
}

/// Revoke every live dashboard session of one admin token's label.
#[utoipa::path(post, path = "/ops/sessions/revoke", operation_id = "revokeSessions", tag = "ops",
    security(("adminToken" = [])),
    params(RequiredLabel),
    responses(
        (status = 200, description = "Revoked", body = SessionsRevoked),
        (status = 400, description = "No label, or not a label", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No admin token has this label", body = OpsErrorBody)
    ))]
async fn revoke_label(
    Operator(actor): Operator,
    State(state): State<AppState>,
    query: Result<Query<RequiredLabel>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SessionsRevoked>, OpsError> {
    let Query(RequiredLabel { label }) = query.map_err(|e| OpsError::BadRequest(e.body_text()))?;
    let revoked = sessions::revoke_sessions_of(&state, &actor.0, &label).await?;
    Ok(Json(SessionsRevoked { label, revoked }))
}
