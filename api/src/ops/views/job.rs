//! A job: why it is where it is (first), its fields, the buttons its state allows, its
//! attempts on a time line drawn to scale and as a table, its parent and follow-ups,
//! and the operator actions on it.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use docket::db::jobs::JobRow;
use docket::domain::{AttemptOutcome, JobState};

use super::charts::{self, Span};
use super::q;
use super::{csrf_field, scroll, when};
use crate::ops::session::Session;
use crate::service::jobs::Detail;

pub fn page(s: &Session, d: &Detail, now: DateTime<Utc>) -> Markup {
    html! {
        div.explanation id="explanation" role="status" { (d.explanation) }
        (buttons(s, &d.job))
        (scroll(html! { table { (facts(d)) (lineage(d)) } }))
        h2 { "Attempts" }
        (attempts(d, now))
        h2 { "Operator actions" }
        (scroll(html! {
            table {
                tr { th { "when" } th { "who" } th { "what" } }
                @for a in &d.audit {
                    tr { td { (a.at.format("%Y-%m-%d %H:%M:%S")) } td { (a.actor) } td { (a.action) } }
                }
            }
        }))
    }
}

/// Retry and cancel, where the job's state allows them.
fn buttons(s: &Session, j: &JobRow) -> Markup {
    html! {
        div.bulk {
            @if j.state.is_retryable_by_operator() {
                form method="post" action={ "/ops/ui/jobs/" (j.id) "/retry" } { (csrf_field(s)) button id="retry" { "Retry" } }
            }
            @if j.state.is_cancellable() {
                form method="post" action={ "/ops/ui/jobs/" (j.id) "/cancel" } {
                    (csrf_field(s)) button.danger id="cancel" { "Cancel" }
                }
            }
        }
    }
}

/// The job's own row, and the Workfront event that started it.
fn facts(d: &Detail) -> Markup {
    let j = &d.job;
    html! {
        tr { th { "id" } td { code { (j.id) } " " button type="button" data-copy=(j.id) { "copy" } } }
        tr { th { "action" } td { a href={ "/ops/ui/actions/" (q(&j.action)) } { (j.action) } } }
        tr { th { "document" } td { a href={ "/ops/ui/jobs?documentId=" (q(&j.document_id)) } { (j.document_id) } } }
        tr { th { "version" } td { (j.document_version_id) } }
        tr { th { "requested by" } td { (j.requested_by.as_deref().unwrap_or("")) } }
        @if let Some(trigger) = &j.trigger {
            tr { th { "trigger" } td id="job-trigger" { a href={ "/ops/ui/jobs?trigger=" (q(trigger)) } { (trigger) } } }
            tr {
                th { "event" }
                td id="job-event" {
                    @if let Some(e) = &d.event {
                        (e.event_type) " " (e.obj_code) " " code { (e.obj_id) } " at " (e.event_time)
                        " (subscription " code { (e.subscription_id) } ", received " (when(e.received_at)) ")"
                    } @else {
                        "pruned (past DOCKET_RETENTION_EVENTS)"
                    }
                }
            }
        }
        tr { th { "state" } td id="job-state" class={ "state-" (j.state.as_str()) } { (j.state.as_str()) } }
        tr { th { "attempts" } td { (j.attempts) " of " (j.max_attempts) } }
        tr { th { "created" } td { (j.created_at.format("%Y-%m-%d %H:%M:%S UTC")) } }
        @if matches!(j.state, JobState::Queued | JobState::Retrying) { tr { th { "next run" } td { (when(j.run_at)) } } }
        @if let Some(f) = j.finished_at { tr { th { "finished" } td { (when(f)) } } }
        tr { th { "last error" } td { (j.last_error.as_deref().unwrap_or("")) } }
        tr { th { "result" } td id="job-result" { code { (j.result.as_ref().map(|r| r.to_string()).unwrap_or_default()) } } }
    }
}

/// The job a follow-up follows, and the follow-ups this one queued.
fn lineage(d: &Detail) -> Markup {
    html! {
        tr {
            th { "follow-up of" }
            td id="job-parent" {
                @if let Some(p) = d.job.parent_id { a.parent-link href={ "/ops/ui/jobs/" (p) } { (p) } }
            }
        }
        tr {
            th { "follow-ups" }
            td id="job-children" {
                @for (i, c) in d.children.iter().enumerate() {
                    @if i > 0 { ", " }
                    a.child-link href={ "/ops/ui/jobs/" (c.id) } { (c.action) } " (" (c.state.as_str()) ")"
                }
            }
        }
    }
}

/// Every attempt, drawn on a timeline and listed.
fn attempts(d: &Detail, now: DateTime<Utc>) -> Markup {
    let spans: Vec<Span> = d
        .attempts
        .iter()
        .map(|a| Span {
            label: format!("attempt {}: {}", a.attempt, a.outcome.map(|o| o.as_str()).unwrap_or("running")),
            start: a.started_at,
            end: a.finished_at.unwrap_or(now),
            class: match a.outcome {
                Some(AttemptOutcome::Succeeded) => "succeeded",
                None => "running",
                Some(_) => "failed",
            },
        })
        .collect();
    html! {
        @if !spans.is_empty() { (charts::timeline(&spans)) }
        (scroll(html! {
            table id="attempts" {
                tr { th { "#" } th { "worker" } th { "started" } th { "finished" } th { "took" } th { "outcome" } th { "error" } }
                @for a in &d.attempts {
                    tr {
                        td { (a.attempt) }
                        td { (a.worker_id) }
                        td { (a.started_at.format("%H:%M:%S%.3f")) }
                        td { (a.finished_at.map(|f| f.format("%H:%M:%S%.3f").to_string()).unwrap_or_default()) }
                        td { (a.finished_at.map(|f| charts::human(f - a.started_at)).unwrap_or_default()) }
                        td { (a.outcome.map(|o| o.as_str()).unwrap_or("running")) }
                        td { (a.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }))
    }
}
