//! An action's flow-control cells (in the overview's and the action page's rows): its
//! limits, usage, pause and circuit, with pause, resume and close-circuit buttons.

use maud::{html, Markup};

use docket::domain::CircuitState;

use super::{csrf_field, q};
use crate::ops::session::Session;
use crate::service::flow::ActionFlow;

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
    let closable = a.backoff_until.is_some() || a.circuit.as_ref().is_some_and(|c| c.state != CircuitState::Closed);
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
