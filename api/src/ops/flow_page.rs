//! The dashboard's flow-control buttons (pause, resume, close a circuit, drawn by
//! [`super::views::flow`]): the same audited operations as the ops API.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};

use super::session::{CsrfForm, Session};
use super::ui::{after_change, csrf_refused, form_limit, FORM_BYTES};
use crate::service::flow::{self, PauseRequest};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/ui/actions/{action}/pause", post(pause))
        .route("/ops/ui/actions/{action}/resume", post(resume))
        .route("/ops/ui/actions/{action}/close-circuit", post(close_circuit))
        .layer(form_limit(FORM_BYTES))
}

#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
    CloseCircuit,
}

async fn pause(
    s: Session,
    state: State<AppState>,
    headers: HeaderMap,
    action: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    change(s, state, headers, action, form, Change::Pause).await
}

async fn resume(
    s: Session,
    state: State<AppState>,
    headers: HeaderMap,
    action: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    change(s, state, headers, action, form, Change::Resume).await
}

async fn close_circuit(
    s: Session,
    state: State<AppState>,
    headers: HeaderMap,
    action: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    change(s, state, headers, action, form, Change::CloseCircuit).await
}

async fn change(
    s: Session,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<CsrfForm>,
    what: Change,
) -> Response {
    let Some(s) = s.checked(&form) else { return csrf_refused() };
    let actor = s.actor.0.clone();
    let done = match what {
        Change::Pause => flow::pause_action(&state, &actor, &action, &PauseRequest::default()).await,
        Change::Resume => flow::resume_action(&state, &actor, &action).await,
        Change::CloseCircuit => flow::close_action_circuit(&state, &actor, &action).await,
    };
    after_change(&s, &headers, done, "/ops/")
}
