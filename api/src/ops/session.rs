//! A signed-in operator of the dashboard: the session its cookie names (checked
//! against `operator_sessions` on every request) and the CSRF token its forms carry.

use axum::http::HeaderMap;
use serde::Deserialize;

use docket::db::sessions;

use crate::admin::{session_cookie, Actor, SessionId};
use crate::service::OpsError;
use crate::state::AppState;

/// A signed-in operator and the CSRF token its forms carry (bound to the session).
pub struct Session {
    pub actor: Actor,
    pub id: SessionId,
    csrf: String,
}

impl Session {
    /// The token this session's forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The session of a state-changing request, if its form carries this session's
    /// CSRF token (compared in constant time). The `Session` extractor has already
    /// checked the session itself, from the headers, before the body was read.
    pub fn checked(self, form: &CsrfForm) -> Option<Session> {
        bool::from(subtle::ConstantTimeEq::ct_eq(self.csrf.as_bytes(), form.csrf.as_bytes())).then_some(self)
    }
}

/// The request's session if its cookie is well signed and unexpired (checked first,
/// without the database) and its row says it is live (one primary-key lookup).
pub async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, OpsError> {
    let Some(value) = session_cookie(headers) else { return Ok(None) };
    let Some((actor, id)) = state.admin.check_session(&value, chrono::Utc::now().timestamp()) else {
        return Ok(None);
    };
    let Some(csrf) = state.admin.csrf_for(&value) else { return Ok(None) };
    let digest = id.digest();
    let live = state.db.run(async |c| sessions::check(c, &digest, &actor.0).await).await?;
    Ok(live.then_some(Session { actor, id, csrf }))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}
