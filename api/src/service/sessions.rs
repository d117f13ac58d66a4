//! Operators' dashboard sessions: recorded at sign-in, listed, revoked one by one, by
//! label, or at sign-out. A session is named by the SHA-256 of its id (what the
//! database stores), never by the id its cookie carries. Every revoke is written to
//! `operator_actions` in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use docket::db::{ops, sessions};
use docket::domain::AuditAction;

use super::OpsError;
use crate::state::AppState;

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

/// A label as configured in `DOCKET_ADMIN_TOKEN`: 400 if it could not be one, 404 if
/// no token carries it.
pub fn known_label(state: &AppState, label: &str) -> Result<(), OpsError> {
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
    ops::audit_record(&mut *tx, actor, AuditAction::RevokeSession, &[], Some(&detail)).await?;
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
    ops::audit_record(&mut *tx, actor, AuditAction::RevokeSessions, &[], Some(&detail)).await?;
    tx.commit().await?;
    tracing::info!(actor, session.label = %label, revoked, "operator revoked every dashboard session of a label");
    Ok(revoked)
}

/// Records a new session before its cookie is handed out (a session the database does
/// not know would be refused on its first request).
pub async fn record_sign_in(
    state: &AppState,
    digest: &[u8; 32],
    actor: &str,
    expires: DateTime<Utc>,
    client: Option<&str>,
) -> Result<(), OpsError> {
    Ok(state.db.run(async |c| sessions::create(c, digest, actor, expires, client).await).await?)
}

/// Signs out: revokes the session in the database (so a copy of the cookie is useless
/// too) and records it.
pub async fn sign_out(state: &AppState, actor: &str, digest: &[u8; 32]) -> Result<(), OpsError> {
    let mut tx = state.db.begin().await?;
    sessions::revoke(&mut *tx, digest, actor).await?;
    let detail = format!("session {}", hex::encode(digest));
    ops::audit_record(&mut *tx, actor, AuditAction::SignOut, &[], Some(&detail)).await?;
    tx.commit().await?;
    tracing::info!(actor, "operator signed out of the dashboard");
    Ok(())
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
