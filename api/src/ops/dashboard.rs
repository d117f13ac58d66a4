//! The operators' dashboard: server-rendered HTML, no build step. Sign-in with an
//! admin token sets a signed session cookie (HttpOnly, SameSite=Strict, path /ops);
//! every form that changes something carries a CSRF token bound to the session.

use std::fmt::Write;

use axum::extract::{Form, FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::api::{self, ListQuery};
use super::auth::{session_cookie, session_set_cookie, Actor, SESSION_SECONDS};
use super::error::OpsError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(|| async { Redirect::to("/ops/") }))
        .route("/ops/", get(overview))
        .route("/ops/login", get(login_page).post(login))
        .route("/ops/logout", post(logout))
        .route("/ops/ui/jobs", get(jobs_page))
        .route("/ops/ui/jobs/{id}", get(job_page))
        .route("/ops/ui/jobs/{id}/retry", post(retry))
        .route("/ops/ui/jobs/{id}/cancel", post(cancel))
}

/// A signed-in operator: the session value and the CSRF token its forms carry.
pub(super) struct Session {
    pub(super) actor: Actor,
    value: String,
    csrf: String,
}

/// Pages need a session: without a valid one the request is sent to the sign-in page.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        session(state, &parts.headers).ok_or_else(to_login)
    }
}

pub(super) fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let value = session_cookie(headers)?;
    let actor = state.admin.check_session(&value, chrono::Utc::now().timestamp())?;
    let csrf = state.admin.csrf_for(&value)?;
    Some(Session { actor, value, csrf })
}

pub(super) fn to_login() -> Response {
    Redirect::to("/ops/login").into_response()
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub(super) fn q(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) fn page(title: &str, who: Option<&Session>, body: &str) -> Response {
    let mut nav = String::from(r#"<a href="/ops/">Overview</a> <a href="/ops/ui/jobs">Jobs</a>"#);
    if let Some(s) = who {
        let _ = write!(
            nav,
            r#" <span class="who">signed in as {}</span> <form method="post" action="/ops/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button>Sign out</button></form>"#,
            esc(&s.actor.0),
            esc(&s.csrf)
        );
    }
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{} · Docket</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}} header{{background:#243447;color:#fff;padding:8px 16px}}
header a{{color:#fff;margin-right:12px}} main{{padding:16px}} table{{border-collapse:collapse;margin:8px 0 16px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}} th{{background:#f3f3f3}}
.state-failed{{color:#b00020;font-weight:bold}} .state-succeeded{{color:#1b5e20}} .state-running{{color:#0d47a1}}
.explanation{{background:#fff8e1;border:1px solid #ffe082;padding:8px;margin:8px 0}} .inline{{display:inline}}
.who{{margin-left:24px;opacity:.8}} form.filters input,form.filters select{{margin-right:8px}} .error{{color:#b00020}}
</style></head><body><header><strong>Docket</strong> &nbsp; {nav}</header><main><h1>{}</h1>{body}</main></body></html>"#,
        esc(title),
        esc(title)
    );
    Html(html).into_response()
}

pub(super) fn csrf_field(s: &Session) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(&s.csrf))
}

async fn login_page() -> Response {
    page(
        "Sign in",
        None,
        r#"<form method="post" action="/ops/login"><label>Admin token <input type="password" name="token" id="token" autocomplete="current-password" autofocus></label> <button id="sign-in">Sign in</button></form>"#,
    )
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
    let client = super::client_address(request.extensions());
    let headers = request.headers().clone();
    if let Err(wait) = state.sign_in_throttle.check(client) {
        return sign_in_refused(wait);
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &state).await else {
        return (StatusCode::BAD_REQUEST, "expected a form with a token").into_response();
    };
    let now = chrono::Utc::now().timestamp();
    match state.admin.check_token(form.token.trim()).and_then(|actor| state.admin.session_for(&actor, now)) {
        Some(value) => {
            state.sign_in_throttle.succeeded(client);
            let cookie = session_set_cookie(value, secure_cookies(&state, &headers), SESSION_SECONDS);
            (CookieJar::new().add(cookie), Redirect::to("/ops/")).into_response()
        }
        None => {
            state.sign_in_throttle.failed(client);
            let mut response = page(
                "Sign in",
                None,
                r#"<p class="error">That token is not valid.</p><p><a href="/ops/login">Try again</a></p>"#,
            );
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
        }
    }
}

fn sign_in_refused(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let body = format!(r#"<p class="error">Too many failed sign-ins from your address. Try again in {seconds} s.</p>"#);
    let mut response = page("Sign in", None, &body);
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}

/// The session of a state-changing request, if its CSRF token matches.
pub(super) fn checked(state: &AppState, headers: &HeaderMap, form: &CsrfForm) -> Option<Session> {
    let s = session(state, headers)?;
    state.admin.check_csrf(&s.value, &form.csrf).then_some(s)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if checked(&state, &headers, &form).is_none() {
        return csrf_refused();
    }
    let cookie = session_set_cookie(String::new(), secure_cookies(&state, &headers), 0);
    (CookieJar::new().add(cookie), Redirect::to("/ops/login")).into_response()
}

pub(super) fn error_page(s: &Session, headers: &HeaderMap, error: OpsError) -> Response {
    let message = error_sentence(headers, error);
    let status = message.0;
    let mut response = page("Error", Some(s), &format!("<p class=\"error\">{}</p>", esc(&message.1)));
    *response.status_mut() = status;
    response
}

/// What a page says about a failed request: the client's own mistake in words, and
/// for anything else a sentence and the request id (the cause is logged under it),
/// never the database's text.
fn error_sentence(headers: &HeaderMap, error: OpsError) -> (StatusCode, String) {
    let request_id = headers.get(crate::startup::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let said = match &error {
        OpsError::BadRequest(_) | OpsError::NotFound(_) | OpsError::UnknownAction(_) | OpsError::Conflict(_) => {
            Some(error.to_string())
        }
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

async fn overview(s: Session, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let stats = match api::load_stats(&state).await {
        Ok(stats) => stats,
        Err(e) => return error_page(&s, &headers, e),
    };
    let mut body = super::flow_page::section(&s, &stats.actions);
    body.push_str("<h2>Jobs by action and state</h2><p>Live states exactly; final states of the last hour.</p><table><tr><th>action</th><th>state</th><th>jobs</th></tr>");
    for c in &stats.counts {
        let _ = write!(
            body,
            r#"<tr><td>{a}</td><td class="state-{s}"><a href="/ops/ui/jobs?action={qa}&state={s}">{s}</a></td><td>{n}</td></tr>"#,
            a = esc(&c.action),
            qa = q(&c.action),
            s = c.state.as_str(),
            n = c.count
        );
    }
    body.push_str("</table><h2>Queue lag</h2><table><tr><th>action</th><th>oldest due job waiting</th></tr>");
    for l in &stats.lag {
        let _ = write!(body, "<tr><td>{}</td><td>{:.1} s</td></tr>", esc(&l.action), l.lag_seconds);
    }
    body.push_str("</table><h2>Throughput, last hour</h2><table><tr><th>minute</th><th>succeeded</th><th>failed</th><th>cancelled</th></tr>");
    for m in stats.throughput.iter().rev().take(15) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.minute.format("%H:%M"),
            m.succeeded,
            m.failed,
            m.cancelled
        );
    }
    body.push_str("</table><h2>Live workers</h2><table><tr><th>id</th><th>host</th><th>pid</th><th>version</th><th>actions</th><th>concurrency</th><th>started</th><th>heartbeat</th></tr>");
    for w in &stats.workers {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.id),
            esc(&w.host),
            w.pid,
            esc(&w.version),
            esc(&w.actions.join(", ")),
            w.concurrency,
            w.started_at.format("%Y-%m-%d %H:%M:%S"),
            w.heartbeat_at.format("%H:%M:%S")
        );
    }
    body.push_str("</table>");
    page("Overview", Some(&s), &body)
}

async fn jobs_page(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let result = api::list_page(&state, &query).await;
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let mut body = format!(
        r#"<form class="filters" method="get" action="/ops/ui/jobs">
<select name="state" id="filter-state"><option value="">any state</option>{options}</select>
<input name="action" id="filter-action" placeholder="action" value="{action}">
<input name="documentId" id="filter-document" placeholder="document id" value="{document}">
<input name="requestedBy" id="filter-user" placeholder="requested by" value="{user}">
<input name="createdSince" id="filter-since" placeholder="created since (2026-11-28T00:00:00Z)" value="{since}">
<input name="createdUntil" id="filter-until" placeholder="created until" value="{until}">
<button id="apply-filters">Filter</button></form>"#,
        options = docket::domain::JobState::ALL
            .iter()
            .map(|st| {
                let st = st.as_str();
                let selected = if query.state.as_deref() == Some(st) { " selected" } else { "" };
                format!(r#"<option value="{st}"{selected}>{st}</option>"#)
            })
            .collect::<String>(),
        action = value(&query.action),
        document = value(&query.document_id),
        user = value(&query.requested_by),
        since = query.created_since.map(|t| t.to_rfc3339()).unwrap_or_default(),
        until = query.created_until.map(|t| t.to_rfc3339()).unwrap_or_default(),
    );
    match result {
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&error_sentence(&headers, e).1));
        }
        Ok(page_of_jobs) => {
            body.push_str("<table id=\"jobs\"><tr><th>job</th><th>action</th><th>document</th><th>state</th><th>attempts</th><th>created</th><th>last error</th></tr>");
            for job in &page_of_jobs.jobs {
                let j = serde_json::to_value(job).unwrap_or_default();
                let text = |k: &str| j[k].as_str().unwrap_or("").to_owned();
                let _ = write!(
                    body,
                    r#"<tr><td><a class="job-link" href="/ops/ui/jobs/{id}">{id}</a></td><td>{action}</td><td>{doc}</td><td class="state-{state}">{state}</td><td>{attempts}/{max}</td><td>{created}</td><td>{error}</td></tr>"#,
                    id = esc(&text("id")),
                    action = esc(&text("action")),
                    doc = esc(&text("documentId")),
                    state = esc(&text("state")),
                    attempts = j["attempts"],
                    max = j["maxAttempts"],
                    created = esc(&text("createdAt")),
                    error = esc(&text("lastError").chars().take(120).collect::<String>()),
                );
            }
            body.push_str("</table>");
            if let Some(cursor) = page_of_jobs.next_cursor {
                let mut link = format!("/ops/ui/jobs?cursor={cursor}");
                for (k, v) in [
                    ("state", &query.state),
                    ("action", &query.action),
                    ("documentId", &query.document_id),
                    ("requestedBy", &query.requested_by),
                ] {
                    if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                        let _ = write!(link, "&{k}={}", q(v));
                    }
                }
                for (k, v) in [("createdSince", query.created_since), ("createdUntil", query.created_until)] {
                    if let Some(v) = v {
                        let _ = write!(link, "&{k}={}", q(&v.to_rfc3339()));
                    }
                }
                let _ = write!(body, r#"<p><a id="next-page" href="{}">Next page →</a></p>"#, esc(&link));
            }
        }
    }
    page("Jobs", Some(&s), &body)
}

async fn job_page(s: Session, State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let detail = match api::parse_id(&id) {
        Ok(id) => api::load_detail(&state, id).await,
        Err(e) => Err(e),
    };
    let d = match detail {
        Ok(d) => d,
        Err(e) => return error_page(&s, &headers, e),
    };
    let j = &d.job;
    let mut body = format!(
        r#"<div class="explanation" id="explanation">{}</div><table>
<tr><th>id</th><td>{}</td></tr><tr><th>action</th><td>{}</td></tr><tr><th>document</th><td>{}</td></tr>
<tr><th>version</th><td>{}</td></tr><tr><th>requested by</th><td>{}</td></tr>
<tr><th>state</th><td id="job-state" class="state-{st}">{st}</td></tr><tr><th>attempts</th><td>{} of {}</td></tr>
<tr><th>created</th><td>{}</td></tr><tr><th>last error</th><td>{}</td></tr>
<tr><th>result</th><td id="job-result"><code>{}</code></td></tr>
<tr><th>follow-up of</th><td id="job-parent">{}</td></tr><tr><th>follow-ups</th><td id="job-children">{}</td></tr></table>"#,
        esc(&d.explanation),
        j.id,
        esc(&j.action),
        esc(&j.document_id),
        esc(&j.document_version_id),
        esc(j.requested_by.as_deref().unwrap_or("")),
        j.attempts,
        j.max_attempts,
        j.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        esc(j.last_error.as_deref().unwrap_or("")),
        esc(&j.result.as_ref().map(|r| r.to_string()).unwrap_or_default()),
        j.parent_id.map(|p| format!(r#"<a class="parent-link" href="/ops/ui/jobs/{p}">{p}</a>"#)).unwrap_or_default(),
        d.children
            .iter()
            .map(|c| format!(
                r#"<a class="child-link" href="/ops/ui/jobs/{id}">{action}</a> ({state})"#,
                id = c.id,
                action = esc(&c.action),
                state = c.state.as_str()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        st = j.state.as_str(),
    );
    let csrf = csrf_field(&s);
    if j.state.is_retryable_by_operator() {
        let _ = write!(
            body,
            r#"<form method="post" action="/ops/ui/jobs/{}/retry">{csrf}<button id="retry">Retry</button></form>"#,
            j.id
        );
    }
    if j.state.is_cancellable() {
        let _ = write!(
            body,
            r#"<form method="post" action="/ops/ui/jobs/{}/cancel">{csrf}<button id="cancel">Cancel</button></form>"#,
            j.id
        );
    }
    body.push_str("<h2>Attempts</h2><table id=\"attempts\"><tr><th>#</th><th>worker</th><th>started</th><th>finished</th><th>outcome</th><th>error</th></tr>");
    for a in &d.attempts {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.attempt,
            esc(&a.worker_id),
            a.started_at.format("%H:%M:%S%.3f"),
            a.finished_at.map(|f| f.format("%H:%M:%S%.3f").to_string()).unwrap_or_default(),
            a.outcome.map(|o| o.as_str()).unwrap_or("running"),
            esc(a.error.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</table><h2>Operator actions</h2><table><tr><th>when</th><th>who</th><th>what</th></tr>");
    for a in &d.audit {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.at.format("%Y-%m-%d %H:%M:%S"),
            esc(&a.actor),
            esc(&a.action)
        );
    }
    body.push_str("</table>");
    page(&format!("Job {}", j.id), Some(&s), &body)
}

/// What a dashboard button asks for.
#[derive(Clone, Copy)]
enum Steer {
    Retry,
    Cancel,
}

async fn retry(state: State<AppState>, headers: HeaderMap, id: Path<String>, form: Form<CsrfForm>) -> Response {
    steer(state, headers, id, form, Steer::Retry).await
}

async fn cancel(state: State<AppState>, headers: HeaderMap, id: Path<String>, form: Form<CsrfForm>) -> Response {
    steer(state, headers, id, form, Steer::Cancel).await
}

/// Checks session and CSRF token, applies the operator's request (recorded in the
/// audit trail by the API functions), and shows the job again.
async fn steer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
    what: Steer,
) -> Response {
    let Some(s) = checked(&state, &headers, &form) else { return csrf_refused() };
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
