//! The dashboard's pages that read: the overview (and its live part), the jobs list,
//! a job, an action, the sessions (with their revoke buttons); and the script they
//! share. Each loads its data through [`crate::service`], as the JSON API does, and
//! hands it to [`super::views`].

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;

use super::list_query::ListQuery;
use super::session::{CsrfForm, Session};
use super::ui::{after_change, csrf_refused, error_page, error_sentence, form_limit, page, FORM_BYTES};
use super::views;
use crate::service::{jobs, sessions, stats, OpsError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/", get(overview))
        .route("/ops/ui/live", get(live))
        .route("/ops/ui/jobs", get(jobs_page))
        .route("/ops/ui/jobs/{id}", get(job_page))
        .route("/ops/ui/actions/{action}", get(action_page))
        .route("/ops/ui/actions/{action}/retry-failed", post(retry_failed))
        .route("/ops/ui/sessions", get(sessions_page))
        .route("/ops/ui/sessions/{id}/revoke", post(revoke_session))
        .route("/ops/ui/sessions/revoke", post(revoke_label))
        .route(views::SCRIPT_PATH, get(script))
        .route(views::CSS_PATH, get(stylesheet))
        .layer(form_limit(FORM_BYTES))
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], views::CSS)
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], views::SCRIPT)
        .into_response()
}

async fn overview(s: Session, State(state): State<AppState>, headers: HeaderMap) -> Response {
    match stats::overview(&state).await {
        Ok(o) => page("Overview", Some(&s), views::overview::page(&s, &o)),
        Err(e) => error_page(&s, &headers, e),
    }
}

/// The overview's live part alone, for the script to swap in.
async fn live(s: Session, State(state): State<AppState>, headers: HeaderMap) -> Response {
    match stats::overview(&state).await {
        Ok(o) => views::overview::live(&s, &o).into_response(),
        Err(e) => error_page(&s, &headers, e),
    }
}

async fn jobs_page(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return error_page(&s, &headers, OpsError::BadRequest(e.body_text())),
    };
    let body = match async { jobs::list_page(&state, &query.search()?).await }.await {
        Ok(jobs) => views::jobs::list(&s, &query, Ok(&jobs)),
        Err(e) => views::jobs::list(&s, &query, Err(&error_sentence(&headers, e).1)),
    };
    page("Jobs", Some(&s), body)
}

async fn job_page(s: Session, State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let detail = match jobs::parse_id(&id) {
        Ok(id) => jobs::load_detail(&state, id).await,
        Err(e) => Err(e),
    };
    match detail {
        Ok(d) => page(&format!("Job {}", d.job.id), Some(&s), views::job::page(&s, &d, Utc::now())),
        Err(e) => error_page(&s, &headers, e),
    }
}

async fn action_page(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(action) = state.catalog.get(&name) else {
        return error_page(&s, &headers, OpsError::UnknownAction(name.chars().take(64).collect()));
    };
    match stats::action_figures(&state, &action.name).await {
        Ok(figures) => {
            let view = views::action::ActionView {
                action,
                flow: figures.flow.as_ref(),
                samples: figures.samples.iter().collect(),
                failures: &figures.failures,
                now: figures.now,
            };
            page(&format!("Action {}", action.name), Some(&s), views::action::page(&s, &view))
        }
        Err(e) => error_page(&s, &headers, e),
    }
}

/// "Retry every failed job" on an action's page: the same batched, audited retry as
/// `POST /ops/actions/{action}/retry-failed`; the answer says how many.
async fn retry_failed(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    if state.catalog.get(&name).is_none() {
        return after_change(&s, &headers, Err(OpsError::UnknownAction(name.chars().take(64).collect())), "/ops/");
    }
    match jobs::retry_failed_jobs(&state, &s.actor.0, &name).await {
        Ok(done) => {
            let n = done.retried;
            let more = if done.complete { "" } else { " More remain: retry again to continue." };
            page(
                &format!("Action {name}"),
                Some(&s),
                views::jobs::done(&format!("Retried {n} failed job{} of {name}.{more}", if n == 1 { "" } else { "s" })),
            )
        }
        Err(e) => error_page(&s, &headers, e),
    }
}

/// The live sessions, each with a revoke button.
async fn sessions_page(s: Session, State(state): State<AppState>, headers: HeaderMap) -> Response {
    match sessions::live_sessions(&state, None).await {
        Ok(list) => {
            let current = hex::encode(s.id.digest());
            page("Sessions", Some(&s), views::sessions::page(&s, &list, &current))
        }
        Err(e) => error_page(&s, &headers, e),
    }
}

/// Revokes one session (the same audited revoke as `POST /ops/sessions/{id}/revoke`).
async fn revoke_session(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    let done = match sessions::parse_session_id(&id) {
        Ok(digest) => sessions::revoke_session(&state, &s.actor.0, &digest).await.map(drop),
        Err(e) => Err(e),
    };
    after_change(&s, &headers, done, "/ops/ui/sessions")
}

#[derive(serde::Deserialize)]
struct LabelForm {
    csrf: String,
    label: String,
}

/// Revokes every session of a label (the same audited revoke as
/// `POST /ops/sessions/revoke?label=`).
async fn revoke_label(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LabelForm>,
) -> Response {
    let Some(s) = s.checked(&CsrfForm { csrf: form.csrf }) else { return csrf_refused() };
    let done = sessions::revoke_sessions_of(&state, &s.actor.0, &form.label).await.map(drop);
    after_change(&s, &headers, done, "/ops/ui/sessions")
}
