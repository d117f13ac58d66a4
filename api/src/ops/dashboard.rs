//! The operators' dashboard: server-rendered HTML (markup in [`super::views`], the
//! shared frame in [`super::ui`]), no build step; sign-in, sign-out and the job buttons here,
//! the pages in [`super::pages`], [`super::bulk`] and [`super::flow_page`]. Sign-in with an admin token records a session (`operator_sessions`) and
//! sets a signed cookie naming it (HttpOnly, SameSite=Strict, path /ops); every
//! request checks that the session is neither revoked nor expired, sign-out revokes it,
//! and every form that changes something carries a CSRF token bound to the session.

use axum::extract::{Form, FromRequest, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::operator::client_address;
use super::session::{CsrfForm, Session};
use super::ui::{after_change, csrf_refused, error_page, form_limit, page, signed_out_error, FORM_BYTES};
use super::views::{self, q};
use crate::admin::{session_set_cookie, SessionId, SESSION_SECONDS};
use crate::service::{jobs, sessions};
use crate::state::AppState;

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
        .merge(super::flow_page::router())
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
    let client = client_address(&state, request.extensions(), request.headers());
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
            let recorded = sessions::record_sign_in(&state, &id.digest(), &actor.0, expires, address.as_deref()).await;
            if let Err(e) = recorded {
                return signed_out_error(&headers, e);
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

/// Signs out: revokes the session in the database (so a copy of the cookie is useless
/// too), records it, and clears the cookie.
async fn logout(s: Session, State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    if let Err(e) = sessions::sign_out(&state, &s.actor.0, &s.id.digest()).await {
        return error_page(&s, &headers, e);
    }
    let cookie = session_set_cookie(String::new(), secure_cookies(&state, &headers), 0);
    (CookieJar::new().add(cookie), Redirect::to("/ops/login")).into_response()
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
    let done = match (jobs::parse_id(&id), what) {
        (Ok(job), Steer::Retry) => jobs::retry_job(&state, &s.actor.0, job).await,
        (Ok(job), Steer::Cancel) => jobs::cancel_job(&state, &s.actor.0, job).await.map(drop),
        (Err(e), _) => Err(e),
    };
    after_change(&s, &headers, done, &format!("/ops/ui/jobs/{}", q(&id)))
}
