//! The operators' dashboard: server-rendered HTML (markup in [`super::views`]), no
//! build step. Sign-in with an admin token records a session (`operator_sessions`) and
//! sets a signed cookie naming it (HttpOnly, SameSite=Strict, path /ops); every
//! request checks that the session is neither revoked nor expired, sign-out revokes it,
//! and every form that changes something carries a CSRF token bound to the session.

use axum::extract::{Form, FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::api;
use docket::db::{ops, sessions};

use super::auth::{session_cookie, session_set_cookie, Actor, SessionId, SESSION_SECONDS};
use super::error::OpsError;
use super::views;
use crate::state::AppState;

/// Largest dashboard form but the bulk one (which has its own limit): a token, a CSRF
/// token, a note. Larger bodies are refused with 413 before they are read whole.
pub(super) const FORM_BYTES: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(|| async { Redirect::to("/ops/") }))
        .route("/ops/login", get(login_page).post(login))
        .route("/ops/logout", post(logout))
        .route("/ops/ui/jobs/{id}/retry", post(retry))
        .route("/ops/ui/jobs/{id}/cancel", post(cancel))
        .layer(form_limit(FORM_BYTES))
        .merge(super::pages::router())
        .merge(super::bulk::router())
}

/// Refuses a body over `bytes` with 413: at once when its Content-Length says so,
/// otherwise as soon as that much has arrived.
pub(super) fn form_limit(bytes: usize) -> tower_http::limit::RequestBodyLimitLayer {
    tower_http::limit::RequestBodyLimitLayer::new(bytes)
}

/// A signed-in operator and the CSRF token its forms carry (bound to the session).
pub(super) struct Session {
    pub(super) actor: Actor,
    pub(super) id: SessionId,
    csrf: String,
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
fn signed_out_error(headers: &HeaderMap, error: OpsError) -> Response {
    let (status, sentence) = error_sentence(headers, error);
    let mut response = page("Error", None, views::error(&sentence));
    *response.status_mut() = status;
    response
}

impl Session {
    /// The token this session's forms carry.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The session of a state-changing request, if its form carries this session's
    /// CSRF token (compared in constant time). The `Session` extractor has already
    /// checked the session itself, from the headers, before the body was read.
    pub(super) fn checked(self, form: &CsrfForm) -> Option<Session> {
        bool::from(subtle::ConstantTimeEq::ct_eq(self.csrf.as_bytes(), form.csrf.as_bytes())).then_some(self)
    }
}

/// The request's session if its cookie is well signed and unexpired (checked first,
/// without the database) and its row says it is live (one primary-key lookup).
pub(super) async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, OpsError> {
    let Some(value) = session_cookie(headers) else { return Ok(None) };
    let Some((actor, id)) = state.admin.check_session(&value, chrono::Utc::now().timestamp()) else {
        return Ok(None);
    };
    let Some(csrf) = state.admin.csrf_for(&value) else { return Ok(None) };
    let digest = id.digest();
    let live = state.db.run(async |c| sessions::check(c, &digest, &actor.0).await).await?;
    Ok(live.then_some(Session { actor, id, csrf }))
}

pub(super) fn to_login() -> Response {
    Redirect::to("/ops/login").into_response()
}

/// Percent-encodes a query value.
pub(super) fn q(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A whole page as a response.
pub(super) fn page(title: &str, who: Option<&Session>, body: maud::Markup) -> Response {
    views::page(title, who, body).into_response()
}

async fn login_page() -> Response {
    page("Sign in", None, views::login_form())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Whether the session cookie is `Secure`: the dashboard is served over HTTPS
/// (`DOCKET_PUBLIC_URL`, or a proxy's `X-Forwarded-Proto: https`).
fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    state.https || forwarded_https
}

async fn login(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let client = super::client_address(&state, request.extensions(), request.headers());
    let headers = request.headers().clone();
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &state).await else {
        return (StatusCode::BAD_REQUEST, "expected a form with a token").into_response();
    };
    // The token first: a valid one always signs in (nobody sharing the address can
    // lock the operators out); a wrong one is refused unread while the address is
    // shut out, and counted otherwise.
    let id = SessionId::random();
    let expires = chrono::Utc::now() + chrono::Duration::seconds(SESSION_SECONDS);
    let signed_in = state
        .admin
        .check_token(form.token.trim())
        .and_then(|actor| Some((state.admin.session_for(&actor, &id, expires.timestamp())?, actor)));
    match signed_in {
        Some((value, actor)) => {
            state.sign_in_throttle.succeeded(client);
            // Recorded before the cookie is handed out: a session the database does not
            // know would be refused on its first request.
            let address = (!client.is_unspecified()).then(|| client.to_string());
            let digest = id.digest();
            let recorded =
                state.db.run(async |c| sessions::create(c, &digest, &actor.0, expires, address.as_deref()).await).await;
            if let Err(e) = recorded {
                return signed_out_error(&headers, e.into());
            }
            tracing::info!(actor = %actor.0, %client, "operator signed in to the dashboard");
            let cookie = session_set_cookie(value, secure_cookies(&state, &headers), SESSION_SECONDS);
            (CookieJar::new().add(cookie), Redirect::to("/ops/")).into_response()
        }
        None => {
            if let Err(wait) = state.sign_in_throttle.check(client) {
                return sign_in_refused(wait);
            }
            state.sign_in_throttle.failed(client);
            let mut response = page("Sign in", None, views::login_refused());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

fn sign_in_refused(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let sentence = format!("Too many failed sign-ins from your address. Try again in {seconds} s.");
    let mut response = page("Sign in", None, views::error(&sentence));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    crate::error::retry_after(response.headers_mut(), wait);
    response
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}

/// Signs out: revokes the session in the database (so a copy of the cookie is useless
/// too), records it, and clears the cookie.
async fn logout(s: Session, State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    let digest = s.id.digest();
    let revoked = async {
        let mut tx = state.db.begin().await?;
        sessions::revoke(&mut *tx, &digest, &s.actor.0).await?;
        let detail = format!("session {}", hex::encode(digest));
        ops::audit_record(&mut *tx, &s.actor.0, "sign_out", &[], Some(&detail)).await?;
        tx.commit().await
    };
    if let Err(e) = revoked.await {
        return error_page(&s, &headers, e.into());
    }
    tracing::info!(actor = %s.actor.0, "operator signed out of the dashboard");
    let cookie = session_set_cookie(String::new(), secure_cookies(&state, &headers), 0);
    (CookieJar::new().add(cookie), Redirect::to("/ops/login")).into_response()
}

pub(super) fn error_page(s: &Session, headers: &HeaderMap, error: OpsError) -> Response {
    let message = error_sentence(headers, error);
    let status = message.0;
    let mut response = page("Error", Some(s), views::error(&message.1));
    *response.status_mut() = status;
    response
}

/// What a page says about a failed request: the client's own mistake in words, and
/// for anything else a sentence and the request id (the cause is logged under it),
/// never the database's text.
pub(super) fn error_sentence(headers: &HeaderMap, error: OpsError) -> (StatusCode, String) {
    let request_id = headers.get(crate::startup::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
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

/// What a dashboard button asks for.
#[derive(Clone, Copy)]
enum Steer {
    Retry,
    Cancel,
}

async fn retry(
    s: Session,
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    steer(s, state, headers, id, form, Steer::Retry).await
}

async fn cancel(
    s: Session,
    state: State<AppState>,
    headers: HeaderMap,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    steer(s, state, headers, id, form, Steer::Cancel).await
}

/// Checks session and CSRF token, applies the operator's request (recorded in the
/// audit trail by the API functions), and shows the job again.
async fn steer(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
    what: Steer,
) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    let done = match (api::parse_id(&id), what) {
        (Ok(job), Steer::Retry) => api::retry_job(&state, &s.actor.0, job).await,
        (Ok(job), Steer::Cancel) => api::cancel_job(&state, &s.actor.0, job).await.map(drop),
        (Err(e), _) => Err(e),
    };
    after_change(&s, &headers, done, &format!("/ops/ui/jobs/{}", q(&id)))
}

/// The answer to a form whose session or CSRF token does not check out.
pub(super) fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "invalid session or CSRF token").into_response()
}

/// After a button's change: back to `page`, or the error said on a page.
pub(super) fn after_change(s: &Session, headers: &HeaderMap, done: Result<(), OpsError>, page: &str) -> Response {
    match done {
        Ok(()) => Redirect::to(page).into_response(),
        Err(e) => error_page(s, headers, e),
    }
}
