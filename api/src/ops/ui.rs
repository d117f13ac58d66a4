//! What every dashboard handler shares: the page frame as a response, errors as
//! pages, the redirect to sign-in, the `Session` extractor, form size limits.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{session, Session};
use super::views;
use crate::service::OpsError;
use crate::state::AppState;

/// Largest dashboard form but the bulk one (which has its own limit): a token, a CSRF
/// token, a note. Larger bodies are refused with 413 before they are read whole.
pub const FORM_BYTES: usize = 16 * 1024;

/// Refuses a body over `bytes` with 413: at once when its Content-Length says so,
/// otherwise as soon as that much has arrived.
pub fn form_limit(bytes: usize) -> tower_http::limit::RequestBodyLimitLayer {
    tower_http::limit::RequestBodyLimitLayer::new(bytes)
}

/// Pages need a live session: without one (none, badly signed, expired or revoked)
/// the request is sent to the sign-in page. When the database cannot say, the request
/// is refused with a page saying so (never let through).
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match session(state, &parts.headers).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(to_login()),
            Err(e) => Err(signed_out_error(&parts.headers, e)),
        }
    }
}

/// A page without the signed-in frame saying why a request failed.
pub fn signed_out_error(headers: &HeaderMap, error: OpsError) -> Response {
    let (status, sentence) = error_sentence(headers, error);
    let mut response = page("Error", None, views::error(&sentence));
    *response.status_mut() = status;
    response
}

pub fn to_login() -> Response {
    Redirect::to("/ops/login").into_response()
}

/// A whole page as a response.
pub fn page(title: &str, who: Option<&Session>, body: maud::Markup) -> Response {
    views::page(title, who, body).into_response()
}

pub fn error_page(s: &Session, headers: &HeaderMap, error: OpsError) -> Response {
    let message = error_sentence(headers, error);
    let status = message.0;
    let mut response = page("Error", Some(s), views::error(&message.1));
    *response.status_mut() = status;
    response
}

/// What a page says about a failed request: the client's own mistake in words, and
/// for anything else a sentence and the request id (the cause is logged under it),
/// never the database's text.
pub fn error_sentence(headers: &HeaderMap, error: OpsError) -> (StatusCode, String) {
    let request_id = headers.get(crate::server::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let said = match &error {
        OpsError::BadRequest(_)
        | OpsError::NotFound(_)
        | OpsError::Missing(_)
        | OpsError::UnknownAction(_)
        | OpsError::Conflict(_) => Some(error.to_string()),
        _ => None,
    };
    // Logs the cause of a database error once.
    let status = error.into_response().status();
    let sentence = said.unwrap_or_else(|| {
        format!(
            "Docket could not complete this request ({status}). Try again in a moment; if it keeps failing, \
             give whoever runs Docket this request id: {request_id}."
        )
    });
    (status, sentence)
}

/// The answer to a form whose session or CSRF token does not check out.
pub fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "invalid session or CSRF token").into_response()
}

/// After a button's change: back to `page`, or the error said on a page.
pub fn after_change(s: &Session, headers: &HeaderMap, done: Result<(), OpsError>, page: &str) -> Response {
    match done {
        Ok(()) => Redirect::to(page).into_response(),
        Err(e) => error_page(s, headers, e),
    }
}
