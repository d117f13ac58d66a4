//! Operators' dashboard sessions in the ops JSON API: list the live ones, revoke one,
//! revoke every session of a label. A session is named by the SHA-256 of its id (what
//! the database stores), never by the id its cookie carries. Every revoke is written to
//! `operator_actions` in the same transaction.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::{ops, sessions};

use super::error::{OpsError, OpsErrorBody};
use super::Operator;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(revoke_one)).routes(routes!(revoke_label))
}

/// Most sessions one list shows.
pub const LIST_CAP: i64 = 500;

/// A live dashboard session (not revoked, not expired).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OperatorSession)]
pub struct SessionView {
    /// The SHA-256 of the session id, in hex: what names the session here. The id
    /// itself (and so the cookie) is never shown.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// The label of the admin token it signed in with.
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// Refreshed at most once a minute.
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The address it signed in from, if known.
    pub client: Option<String>,
}

impl From<sessions::SessionRow> for SessionView {
    fn from(row: sessions::SessionRow) -> Self {
        Self {
            id: hex::encode(&row.id_hash),
            label: row.label,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            client: row.client,
        }
    }
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

/// A label as configured in `DOCKET_ADMIN_TOKEN`: 400 if it could not be one, 404 if
/// no token carries it.
fn known_label(state: &AppState, label: &str) -> Result<(), OpsError> {
    let shaped =
        !label.is_empty() && label.len() <= 64 && label.chars().all(|c| c.is_ascii_alphanumeric() || "-_@".contains(c));
    if !shaped {
        return Err(OpsError::BadRequest(format!("{label:?} is not an admin token label")));
    }
    if !state.admin.has_label(label) {
        return Err(OpsError::Missing(format!("no admin token is labelled {label:?}")));
    }
    Ok(())
}

/// The live sessions (of one label if given), newest first.
pub async fn live_sessions(state: &AppState, label: Option<&str>) -> Result<Vec<SessionView>, OpsError> {
    let rows = state.db.run(async |c| sessions::list_live(c, label, LIST_CAP).await).await?;
    Ok(rows.into_iter().map(SessionView::from).collect())
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
        known_label(&state, label)?;
    }
    Ok(Json(SessionList { sessions: live_sessions(&state, label.as_deref()).await? }))
}

/// The digest that names a session, from its hex.
pub fn parse_session_id(text: &str) -> Result<[u8; 32], OpsError> {
    let mut digest = [0u8; 32];
    let lower = text.len() == 64 && text.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    match lower && hex::decode_to_slice(text, &mut digest).is_ok() {
        true => Ok(digest),
        false => Err(OpsError::BadRequest(format!("{text:?} is not a session id (64 lower-case hex digits)"))),
    }
}

/// Revokes one session (its cookie is refused from the next request on); records who.
pub async fn revoke_session(state: &AppState, actor: &str, digest: &[u8; 32]) -> Result<String, OpsError> {
    let id = hex::encode(digest);
    let mut tx = state.db.begin().await?;
    let label = match sessions::revoke(&mut *tx, digest, actor).await? {
        sessions::Revoked::Now(label) => label,
        sessions::Revoked::AlreadyEnded => {
            return Err(OpsError::Conflict(format!("session {id} has already been revoked or has expired")))
        }
        sessions::Revoked::Unknown => return Err(OpsError::Missing(format!("no session with id {id}"))),
    };
    let detail = format!("session {id} of {label}");
    ops::audit_record(&mut *tx, actor, "revoke_session", &[], Some(&detail)).await?;
    tx.commit().await?;
    tracing::info!(actor, session.label = %label, session.id = %id, "operator revoked a dashboard session");
    Ok(label)
}

/// Revokes every live session of `label`; records who. Returns how many.
pub async fn revoke_sessions_of(state: &AppState, actor: &str, label: &str) -> Result<u64, OpsError> {
    known_label(state, label)?;
    let mut tx = state.db.begin().await?;
    let revoked = sessions::revoke_label(&mut *tx, label, actor).await?;
    let detail = format!("all sessions of {label}: {revoked}");
    ops::audit_record(&mut *tx, actor, "revoke_sessions", &[], Some(&detail)).await?;
    tx.commit().await?;
    tracing::info!(actor, session.label = %label, revoked, "operator revoked every dashboard session of a label");
    Ok(revoked)
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
    let digest = parse_session_id(&id)?;
    let label = revoke_session(&state, &actor.0, &digest).await?;
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
    let revoked = revoke_sessions_of(&state, &actor.0, &label).await?;
    Ok(Json(SessionsRevoked { label, revoked }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_64_lower_case_hex_digits() {
        assert!(parse_session_id(&"ab".repeat(32)).is_ok());
        for bad in ["", "xyz", &"AB".repeat(32), &"ab".repeat(31), &"ab".repeat(33), &"+b".repeat(32)] {
            assert!(matches!(parse_session_id(bad), Err(OpsError::BadRequest(_))), "{bad}");
        }
    }
}
