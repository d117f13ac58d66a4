//! The dashboard's flow-control cells (in the overview's and the action page's rows):
//! every action's limits, usage, pause and circuit, with pause, resume and
//! close-circuit buttons that go through the same audited functions as the ops API.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};

use maud::{html, Markup};

use super::dashboard::{after_change, csrf_refused, q, CsrfForm, Session};
use super::flow::{self, ActionFlow, PauseRequest};
use super::views::csrf_field;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/ui/actions/{action}/pause", post(pause))
        .route("/ops/ui/actions/{action}/resume", post(resume))
        .route("/ops/ui/actions/{action}/close-circuit", post(close_circuit))
        .layer(super::dashboard::form_limit(super::dashboard::FORM_BYTES))
}

/// " (group g)" when the action's limits belong to a group named otherwise.
pub fn group(a: &ActionFlow) -> Markup {
    html! {
        @if let Some(g) = a.limit_group.as_ref().filter(|g| **g != a.action) { " " small { "(group " (g) ")" } }
    }
}

/// Running jobs against the concurrency limit ("2 / 3", or "2 / no limit").
pub fn limit_cell(a: &ActionFlow) -> Markup {
    let limit = match (a.max_concurrency, a.group_running) {
        (Some(max), Some(running)) => format!("{running} / {max}"),
        _ => format!("{} / no limit", a.running),
    };
    html! { td data-count="running" { (limit) } }
}

/// The rate, the state (paused, target asked to wait, running freely), the circuit
/// and the buttons that change them.
pub fn cells(s: &Session, a: &ActionFlow) -> Markup {
    let rate = match (&a.rate, a.effective_rate_per_second) {
        (Some(rate), Some(now)) => format!("{rate} (burst {}), now {now:.2}/s", a.burst.unwrap_or(1)),
        (Some(rate), None) => rate.clone(),
        _ => "no limit".into(),
    };
    let moment = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S UTC").to_string();
    let button = |what: &str, label: &str| {
        html! {
            form.inline method="post" action={ "/ops/ui/actions/" (q(&a.action)) "/" (what) } {
                (csrf_field(s)) button { (label) }
            }
            " "
        }
    };
    let closable = a.backoff_until.is_some() || a.circuit.as_ref().is_some_and(|c| c.state != "closed");
    html! {
        td { (rate) }
        td.flow-state {
            @if let Some(p) = &a.paused {
                strong { "paused" } " by " (p.by.as_deref().unwrap_or("?")) " "
                (p.until.map_or("until resumed".into(), |u| format!("until {}", moment(u))))
                @if let Some(n) = &p.note { " — " (n) }
            } @else if let Some(until) = a.backoff_until {
                strong { "target asked to wait" } " until " (moment(until))
            } @else {
                "running freely"
            }
        }
        td {
            @if let Some(c) = &a.circuit {
                span class={ "circuit-" (c.state) } { (c.state) }
                " (" (c.consecutive_failures) " of " (c.threshold) " failures)"
                @if let Some(next) = c.next_probe_at { ", next probe " (moment(next)) }
            } @else {
                "—"
            }
        }
        td {
            @if a.paused.is_some() { (button("resume", "Resume")) } @else { (button("pause", "Pause")) }
            @if closable { (button("close-circuit", "Close circuit")) }
        }
    }
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
