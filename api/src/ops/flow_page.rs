//! The dashboard's flow-control section (on the overview): every action's limits,
//! usage, pause and circuit, with pause, resume and close-circuit buttons that go
//! through the same audited functions as the ops API.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};

use super::dashboard::{after_change, checked, csrf_field, csrf_refused, esc, q, CsrfForm, Session};
use super::flow::{self, ActionFlow, PauseRequest};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/ui/actions/{action}/pause", post(pause))
        .route("/ops/ui/actions/{action}/resume", post(resume))
        .route("/ops/ui/actions/{action}/close-circuit", post(close_circuit))
}

/// The section's HTML.
pub fn section(s: &Session, actions: &[ActionFlow]) -> String {
    let mut body = String::from(
        "<h2>Actions and their targets</h2><table id=\"flow\"><tr><th>action</th><th>running / limit</th>\
         <th>rate</th><th>state</th><th>circuit</th><th></th></tr>",
    );
    for a in actions {
        let limit = match (a.max_concurrency, a.group_running) {
            (Some(max), Some(running)) => format!("{running} / {max}"),
            _ => format!("{} / no limit", a.running),
        };
        let group = match &a.limit_group {
            Some(g) if g != &a.action => format!(" <small>(group {})</small>", esc(g)),
            _ => String::new(),
        };
        let rate = match (&a.rate, a.effective_rate_per_second) {
            (Some(rate), Some(now)) => format!("{} (burst {}), now {now:.2}/s", esc(rate), a.burst.unwrap_or(1)),
            (Some(rate), None) => esc(rate),
            _ => "no limit".into(),
        };
        let state = match (&a.paused, a.backoff_until) {
            (Some(p), _) => format!(
                "<strong>paused</strong> by {} {}{}",
                esc(p.by.as_deref().unwrap_or("?")),
                p.until.map_or("until resumed".into(), |u| format!("until {}", u.format("%H:%M:%S UTC"))),
                p.note.as_deref().map(|n| format!(" — {}", esc(n))).unwrap_or_default()
            ),
            (None, Some(until)) => {
                format!("<strong>target asked to wait</strong> until {}", until.format("%H:%M:%S UTC"))
            }
            _ => "running freely".into(),
        };
        let circuit = match &a.circuit {
            None => "—".into(),
            Some(c) => format!(
                "<span class=\"circuit-{st}\">{st}</span> ({f} of {t} failures){next}",
                st = esc(&c.state),
                f = c.consecutive_failures,
                t = c.threshold,
                next =
                    c.next_probe_at.map(|n| format!(", next probe {}", n.format("%H:%M:%S UTC"))).unwrap_or_default()
            ),
        };
        let mut buttons = String::new();
        let button = |what: &str, label: &str| {
            format!(
                r#"<form method="post" action="/ops/ui/actions/{}/{what}" class="inline">{}<button>{label}</button></form> "#,
                q(&a.action),
                csrf_field(s)
            )
        };
        buttons.push_str(&if a.paused.is_some() { button("resume", "Resume") } else { button("pause", "Pause") });
        if a.backoff_until.is_some() || a.circuit.as_ref().is_some_and(|c| c.state != "closed") {
            buttons.push_str(&button("close-circuit", "Close circuit"));
        }
        let _ = write!(
            body,
            r#"<tr data-action="{id}"><td>{name}{group}</td><td>{limit}</td><td>{rate}</td><td class="flow-state">{state}</td><td>{circuit}</td><td>{buttons}</td></tr>"#,
            id = esc(&a.action),
            name = esc(&a.action),
        );
    }
    body.push_str("</table>");
    body
}

#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
    CloseCircuit,
}

async fn pause(state: State<AppState>, headers: HeaderMap, action: Path<String>, form: Form<CsrfForm>) -> Response {
    change(state, headers, action, form, Change::Pause).await
}

async fn resume(state: State<AppState>, headers: HeaderMap, action: Path<String>, form: Form<CsrfForm>) -> Response {
    change(state, headers, action, form, Change::Resume).await
}

async fn close_circuit(
    state: State<AppState>,
    headers: HeaderMap,
    action: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    change(state, headers, action, form, Change::CloseCircuit).await
}

async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<CsrfForm>,
    what: Change,
) -> Response {
    let Some(s) = checked(&state, &headers, &form) else { return csrf_refused() };
    let actor = s.actor.0.clone();
    let done = match what {
        Change::Pause => flow::pause_action(&state, &actor, &action, &PauseRequest::default()).await,
        Change::Resume => flow::resume_action(&state, &actor, &action).await,
        Change::CloseCircuit => flow::close_action_circuit(&state, &actor, &action).await,
    };
    after_change(&s, &headers, done, "/ops/")
}
