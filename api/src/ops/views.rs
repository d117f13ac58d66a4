//! The dashboard's markup, written with maud: every value is escaped unless wrapped
//! in `PreEscaped`, and the templates are checked when the crate compiles. The
//! handlers in [`super::dashboard`] load the data; these functions only show it.

use chrono::SecondsFormat;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use docket::db::jobs::JobRow;
use docket::domain::JobState;

use super::api::{Detail, ListQuery, Page, Stats};
use super::dashboard::Session;

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222} header{background:#243447;color:#fff;padding:8px 16px}
header a{color:#fff;margin-right:12px} main{padding:16px} table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top} th{background:#f3f3f3}
.state-failed{color:#b00020;font-weight:bold} .state-succeeded{color:#1b5e20} .state-running{color:#0d47a1}
.explanation{background:#fff8e1;border:1px solid #ffe082;padding:8px;margin:8px 0} .inline{display:inline}
.who{margin-left:24px;opacity:.8} form.filters input,form.filters select{margin-right:8px} .error{color:#b00020}
";

/// A whole page: the header with navigation (and the operator, once signed in), the
/// title, the body.
pub fn page(title: &str, who: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Docket" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { "Docket" } " \u{a0} "
                    a href="/ops/" { "Overview" } " "
                    a href="/ops/ui/jobs" { "Jobs" }
                    @if let Some(s) = who {
                        " " span.who { "signed in as " (s.actor.0) } " "
                        form.inline method="post" action="/ops/logout" { (csrf_field(s)) button { "Sign out" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in every changing form.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf()); }
}

/// A sentence in red.
pub fn error(sentence: &str) -> Markup {
    html! { p.error { (sentence) } }
}

pub fn login_form() -> Markup {
    html! {
        form method="post" action="/ops/login" {
            label { "Admin token " input type="password" name="token" id="token" autocomplete="current-password" autofocus; }
            " " button id="sign-in" { "Sign in" }
        }
    }
}

pub fn login_refused() -> Markup {
    html! { (error("That token is not valid.")) p { a href="/ops/login" { "Try again" } } }
}

/// The overview: flow control, jobs by action and state, lag, throughput, workers.
pub fn overview(s: &Session, stats: &Stats) -> Markup {
    html! {
        (super::flow_page::section(s, &stats.actions))
        h2 { "Jobs by action and state" }
        p { "Live states exactly; final states of the last hour." }
        table {
            tr { th { "action" } th { "state" } th { "jobs" } }
            @for c in &stats.counts {
                tr {
                    td { (c.action) }
                    td class={ "state-" (c.state.as_str()) } {
                        a href={ "/ops/ui/jobs?action=" (super::dashboard::q(&c.action)) "&state=" (c.state.as_str()) } {
                            (c.state.as_str())
                        }
                    }
                    td { (c.count) }
                }
            }
        }
        h2 { "Queue lag" }
        table {
            tr { th { "action" } th { "oldest due job waiting" } }
            @for l in &stats.lag {
                tr { td { (l.action) } td { (format!("{:.1} s", l.lag_seconds)) } }
            }
        }
        h2 { "Throughput, last hour" }
        table {
            tr { th { "minute" } th { "succeeded" } th { "failed" } th { "cancelled" } }
            @for m in stats.throughput.iter().rev().take(15) {
                tr { td { (m.minute.format("%H:%M")) } td { (m.succeeded) } td { (m.failed) } td { (m.cancelled) } }
            }
        }
        h2 { "Live workers" }
        table {
            tr {
                th { "id" } th { "host" } th { "pid" } th { "version" } th { "actions" } th { "concurrency" }
                th { "started" } th { "heartbeat" }
            }
            @for w in &stats.workers {
                tr {
                    td { (w.id) } td { (w.host) } td { (w.pid) } td { (w.version) } td { (w.actions.join(", ")) }
                    td { (w.concurrency) } td { (w.started_at.format("%Y-%m-%d %H:%M:%S")) }
                    td { (w.heartbeat_at.format("%H:%M:%S")) }
                }
            }
        }
    }
}

/// The filter form of the jobs list, showing the filters in force.
fn filters(query: &ListQuery) -> Markup {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let moment = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    html! {
        form.filters method="get" action="/ops/ui/jobs" {
            select name="state" id="filter-state" {
                option value="" { "any state" }
                @for st in JobState::ALL {
                    option value=(st.as_str()) selected[query.state.as_deref() == Some(st.as_str())] { (st.as_str()) }
                }
            }
            input name="action" id="filter-action" placeholder="action" value=(text(&query.action));
            input name="documentId" id="filter-document" placeholder="document id" value=(text(&query.document_id));
            input name="requestedBy" id="filter-user" placeholder="requested by" value=(text(&query.requested_by));
            input name="createdSince" id="filter-since" placeholder="created since (2026-11-28T00:00:00Z)"
                value=(moment(query.created_since));
            input name="createdUntil" id="filter-until" placeholder="created until" value=(moment(query.created_until));
            button id="apply-filters" { "Filter" }
        }
    }
}

/// The jobs list: filters, one page of jobs (or why there is none), the next page.
pub fn jobs(query: &ListQuery, result: Result<&Page, &str>) -> Markup {
    html! {
        (filters(query))
        @match result {
            Err(sentence) => (error(sentence)),
            Ok(page) => {
                table id="jobs" {
                    tr {
                        th { "job" } th { "action" } th { "document" } th { "state" } th { "attempts" } th { "created" }
                        th { "last error" }
                    }
                    @for job in &page.jobs { (job_row(job)) }
                }
                @if let Some(cursor) = page.next_cursor {
                    p { a id="next-page" href=(next_page(query, cursor)) { "Next page →" } }
                }
            }
        }
    }
}

fn job_row(job: &JobRow) -> Markup {
    let error: String = job.last_error.as_deref().unwrap_or("").chars().take(120).collect();
    html! {
        tr {
            td { a.job-link href={ "/ops/ui/jobs/" (job.id) } { (job.id) } }
            td { (job.action) }
            td { (job.document_id) }
            td class={ "state-" (job.state.as_str()) } { (job.state.as_str()) }
            td { (job.attempts) "/" (job.max_attempts) }
            td { (job.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)) }
            td { (error) }
        }
    }
}

/// The link to the page after `cursor`, with the same filters.
fn next_page(query: &ListQuery, cursor: docket::domain::JobId) -> String {
    let q = super::dashboard::q;
    let mut link = format!("/ops/ui/jobs?cursor={cursor}");
    for (k, v) in [
        ("state", &query.state),
        ("action", &query.action),
        ("documentId", &query.document_id),
        ("requestedBy", &query.requested_by),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            link.push_str(&format!("&{k}={}", q(v)));
        }
    }
    for (k, v) in [("createdSince", query.created_since), ("createdUntil", query.created_until)] {
        if let Some(v) = v {
            link.push_str(&format!("&{k}={}", q(&v.to_rfc3339())));
        }
    }
    link
}

/// A job: its explanation, its fields, the buttons its state allows, its attempts
/// and the operator actions on it.
pub fn job(s: &Session, d: &Detail) -> Markup {
    let j = &d.job;
    let state = j.state.as_str();
    html! {
        div.explanation id="explanation" { (d.explanation) }
        table {
            tr { th { "id" } td { (j.id) } }
            tr { th { "action" } td { (j.action) } }
            tr { th { "document" } td { (j.document_id) } }
            tr { th { "version" } td { (j.document_version_id) } }
            tr { th { "requested by" } td { (j.requested_by.as_deref().unwrap_or("")) } }
            tr { th { "state" } td id="job-state" class={ "state-" (state) } { (state) } }
            tr { th { "attempts" } td { (j.attempts) " of " (j.max_attempts) } }
            tr { th { "created" } td { (j.created_at.format("%Y-%m-%d %H:%M:%S UTC")) } }
            tr { th { "last error" } td { (j.last_error.as_deref().unwrap_or("")) } }
            tr { th { "result" } td id="job-result" { code { (j.result.as_ref().map(|r| r.to_string()).unwrap_or_default()) } } }
            tr {
                th { "follow-up of" }
                td id="job-parent" {
                    @if let Some(p) = j.parent_id { a.parent-link href={ "/ops/ui/jobs/" (p) } { (p) } }
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
        @if j.state.is_retryable_by_operator() {
            form method="post" action={ "/ops/ui/jobs/" (j.id) "/retry" } { (csrf_field(s)) button id="retry" { "Retry" } }
        }
        @if j.state.is_cancellable() {
            form method="post" action={ "/ops/ui/jobs/" (j.id) "/cancel" } { (csrf_field(s)) button id="cancel" { "Cancel" } }
        }
        h2 { "Attempts" }
        table id="attempts" {
            tr { th { "#" } th { "worker" } th { "started" } th { "finished" } th { "outcome" } th { "error" } }
            @for a in &d.attempts {
                tr {
                    td { (a.attempt) }
                    td { (a.worker_id) }
                    td { (a.started_at.format("%H:%M:%S%.3f")) }
                    td { (a.finished_at.map(|f| f.format("%H:%M:%S%.3f").to_string()).unwrap_or_default()) }
                    td { (a.outcome.map(|o| o.as_str()).unwrap_or("running")) }
                    td { (a.error.as_deref().unwrap_or("")) }
                }
            }
        }
        h2 { "Operator actions" }
        table {
            tr { th { "when" } th { "who" } th { "what" } }
            @for a in &d.audit {
                tr { td { (a.at.format("%Y-%m-%d %H:%M:%S")) } td { (a.actor) } td { (a.action) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_content_and_attributes() {
        let hostile = "<script>alert('x')</script>\"&";
        let html = page(hostile, None, error(hostile)).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;"), "{html}");
        let query = ListQuery { action: Some("\"><img src=x onerror=alert(1)>".into()), ..Default::default() };
        let form = filters(&query).into_string();
        assert!(!form.contains("<img"), "{form}");
        assert!(form.contains(r#"value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;""#), "{form}");
    }
}
