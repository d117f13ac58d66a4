//! The jobs list (search, filters kept in the URL, keyset pages, selection) and the
//! bulk actions' confirmation and result.

use maud::{html, Markup};

use docket::db::jobs::JobRow;
use docket::domain::{JobId, JobState};

use super::q;
use super::{csrf_field, error, excerpt, scroll, short_id, state, when};
use crate::ops::list_query::ListQuery;
use crate::ops::session::Session;
use crate::service::jobs::{BulkOp, Page};

/// Longest error excerpt in the list (the job page shows all of it).
const ERROR_CHARS: usize = 80;

/// The filter form, showing the filters in force.
pub fn filters(query: &ListQuery) -> Markup {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let moment = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    html! {
        form.filters method="get" action="/ops/ui/jobs" role="search" {
            label for="search" { "Search" }
            input type="search" name="q" id="search" placeholder="job id, document id or user" value=(text(&query.q));
            label for="filter-state" { "State" }
            select name="state" id="filter-state" {
                option value="" { "any state" }
                @for st in JobState::ALL {
                    option value=(st.as_str()) selected[query.state.as_deref() == Some(st.as_str())] { (st.as_str()) }
                }
            }
            input name="action" id="filter-action" placeholder="action" aria-label="action" value=(text(&query.action));
            input name="documentId" id="filter-document" placeholder="document id" aria-label="document id"
                value=(text(&query.document_id));
            input name="requestedBy" id="filter-user" placeholder="requested by" aria-label="requested by"
                value=(text(&query.requested_by));
            input name="trigger" id="filter-trigger" placeholder="trigger" aria-label="trigger"
                value=(text(&query.trigger));
            input name="createdSince" id="filter-since" placeholder="created since (2026-11-28T00:00:00Z)"
                aria-label="created since" value=(moment(query.created_since));
            input name="createdUntil" id="filter-until" placeholder="created until" aria-label="created until"
                value=(moment(query.created_until));
            button id="apply-filters" { "Filter" }
        }
    }
}

/// The filters as hidden fields (for "all matching").
fn hidden_filters(query: &ListQuery) -> Markup {
    html! {
        @for (name, value) in filter_pairs(query) { input type="hidden" name=(name) value=(value); }
    }
}

/// The filters in force as query pairs, empty ones left out.
pub fn filter_pairs(query: &ListQuery) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    for (k, v) in [
        ("q", &query.q),
        ("state", &query.state),
        ("action", &query.action),
        ("documentId", &query.document_id),
        ("requestedBy", &query.requested_by),
        ("trigger", &query.trigger),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_owned()));
        }
    }
    for (k, v) in [("createdSince", query.created_since), ("createdUntil", query.created_until)] {
        if let Some(v) = v {
            pairs.push((k, v.to_rfc3339()));
        }
    }
    pairs
}

/// The jobs list: filters, one page of jobs (or why there is none) with the bulk
/// buttons, the next page.
pub fn list(s: &Session, query: &ListQuery, result: Result<&Page, &str>) -> Markup {
    html! {
        (filters(query))
        @match result {
            Err(sentence) => (error(sentence)),
            Ok(page) => {
                @if page.jobs.is_empty() {
                    p id="no-jobs" { "No job matches." }
                } @else {
                    form id="bulk" method="post" action="/ops/ui/jobs/bulk" {
                        (csrf_field(s))
                        div.bulk {
                            button name="op" value=(BulkOp::Retry.as_str()) id="bulk-retry" { "Retry selected (" span data-selected { "…" } ")" }
                            button.danger name="op" value=(BulkOp::Cancel.as_str()) id="bulk-cancel" { "Cancel selected (" span data-selected { "…" } ")" }
                            span.muted { "Only failed or cancelled jobs are retried, only waiting or running ones cancelled." }
                        }
                        (scroll(html! {
                            table id="jobs" {
                                tr {
                                    th { input type="checkbox" id="select-all" aria-label="select every job on this page"; }
                                    th { "job" } th { "action" } th { "document" } th { "state" } th.num { "attempts" }
                                    th { "created" } th { "last error" }
                                }
                                @for job in &page.jobs { (row(job)) }
                            }
                        }))
                    }
                    form.bulk method="post" action="/ops/ui/jobs/bulk" id="bulk-all" {
                        (csrf_field(s))
                        input type="hidden" name="all" value="1";
                        (hidden_filters(query))
                        span { "Every job matching these filters (not only this page): " }
                        button name="op" value=(BulkOp::Retry.as_str()) id="bulk-retry-all" { "Retry all matching…" }
                        button.danger name="op" value=(BulkOp::Cancel.as_str()) id="bulk-cancel-all" { "Cancel all matching…" }
                    }
                }
                @if let Some(cursor) = page.next_cursor {
                    p { a id="next-page" href=(next_page(query, page, cursor)) { "Next page →" } }
                }
            }
        }
    }
}

fn row(job: &JobRow) -> Markup {
    let error = job.last_error.as_deref().map(|e| excerpt(e, ERROR_CHARS)).unwrap_or_default();
    html! {
        tr {
            td { input type="checkbox" name="id" value=(job.id) aria-label={ "select job " (job.id) }; }
            td {
                a.job-link href={ "/ops/ui/jobs/" (job.id) } { (short_id(job.id)) }
                " " button.copy type="button" data-copy=(job.id) title="copy the whole id" aria-label={ "copy id " (job.id) } { "⧉" }
            }
            td { (job.action) @if let Some(t) = &job.trigger { br; small.trigger { "⚡ " (t) } } }
            td { (job.document_id) }
            td { (state(job.state)) }
            td.num { (job.attempts) "/" (job.max_attempts) }
            td { (when(job.created_at)) }
            td title=(job.last_error.as_deref().unwrap_or("")) { (error) }
        }
    }
}

/// The link to the page after `cursor`, with the same filters (a search that matched
/// who asked goes on as that filter).
fn next_page(query: &ListQuery, page: &Page, cursor: JobId) -> String {
    let mut link = format!("/ops/ui/jobs?cursor={cursor}");
    for (k, v) in filter_pairs(query) {
        let k = if k == "q" && page.searched_requester { "requestedBy" } else { k };
        link.push_str(&format!("&{k}={}", q(&v)));
    }
    link
}

/// What a bulk action will do, before it does it.
pub struct Plan<'a> {
    pub op: BulkOp,
    /// The jobs, or for "all matching" the newest ones found (at most the cap).
    pub ids: &'a [JobId],
    /// "All matching" found more jobs than the cap.
    pub more: bool,
}

/// "Retry 20 jobs?" with a button that does it.
pub fn confirm(s: &Session, plan: &Plan) -> Markup {
    let verb = match plan.op {
        BulkOp::Retry => "Retry",
        BulkOp::Cancel => "Cancel",
    };
    html! {
        p id="bulk-question" { (verb) " " strong { (plan.ids.len()) } " job" @if plan.ids.len() != 1 { "s" } "?" }
        @if plan.more {
            p.error { "More jobs match; one bulk action takes the " (plan.ids.len()) " newest. Run it again for the rest." }
        }
        @if plan.ids.is_empty() {
            p { "Nothing to do." } p { a href="/ops/ui/jobs" { "Back to the jobs" } }
        } @else {
            form method="post" action="/ops/ui/jobs/bulk" {
                (csrf_field(s))
                input type="hidden" name="op" value=(plan.op.as_str());
                input type="hidden" name="confirmed" value="1";
                @for id in plan.ids { input type="hidden" name="id" value=(id); }
                button id="bulk-confirm" class=(if plan.op == BulkOp::Cancel { "danger" } else { "" }) { (verb) " " (plan.ids.len()) " jobs" }
                " " a href="/ops/ui/jobs" { "Back" }
            }
            details { summary { "The jobs" } p { @for id in plan.ids.iter().take(200) { (short_id(*id)) " " } } }
        }
    }
}

/// What a bulk action did, in one sentence.
pub fn done(sentence: &str) -> Markup {
    html! {
        p.done id="bulk-result" role="status" { (sentence) }
        p { a href="/ops/ui/jobs" { "Back to the jobs" } }
    }
}
