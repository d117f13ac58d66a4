//! One action: its catalog settings (never a secret: credentials are named by their
//! environment variable, and a target URL is shown without user info or query), its
//! flow control with the buttons, the last hour, and its recent failures grouped by
//! error with "retry all failed".

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use docket::catalog::{Action, ActionKind, Auth};
use docket::db::ops::FailureGroup;
use docket::db::samples::Sample;

use super::charts::{self, Series};
use super::flow as flow_cells;
use super::q;
use super::{csrf_field, excerpt, scroll, when};
use crate::ops::session::Session;
use crate::service::flow::ActionFlow;

pub struct ActionView<'a> {
    pub action: &'a Action,
    pub flow: Option<&'a ActionFlow>,
    pub samples: Vec<&'a Sample>,
    pub failures: &'a [FailureGroup],
    pub now: DateTime<Utc>,
}

/// A URL without user info, query or fragment: where, never with what.
fn safe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or(""), u.path()),
        Err(_) => "(a template)".into(),
    }
}

fn auth(a: &Auth) -> String {
    match a {
        Auth::Bearer { token_env } => format!("bearer token from ${token_env}"),
        Auth::Basic { username, password_env } => format!("basic, user {username}, password from ${password_env}"),
        Auth::Header { name, value_env } => format!("header {name} from ${value_env}"),
        Auth::OAuth2ClientCredentials { token_url, client_id, client_secret_env, .. } => format!(
            "OAuth 2 client credentials at {}, client {client_id}, secret from ${client_secret_env}",
            safe_url(token_url)
        ),
    }
}

pub fn page(s: &Session, v: &ActionView) -> Markup {
    let a = v.action;
    let ok = charts::last_hour(&v.samples, v.now, |x| x.succeeded);
    let bad = charts::last_hour(&v.samples, v.now, |x| x.failed);
    html! {
        p { a href={ "/ops/ui/jobs?action=" (q(&a.name)) } { "Its jobs" } " · "
            a href={ "/ops/ui/jobs?action=" (q(&a.name)) "&state=failed" } { "its failed jobs" } }
        @if let Some(flow) = v.flow {
            (scroll(html! {
                table id="flow" {
                    tr { th { "running / limit" } th { "rate" } th { "state" } th { "circuit" } th {} }
                    tr data-action=(a.name) { (flow_cells::limit_cell(flow)) (flow_cells::cells(s, flow)) }
                }
            }))
        }
        h2 { "The last hour" }
        div.wide {
            (charts::sparkline(
                &format!("{} succeeded and {} failed in the last hour", ok.iter().sum::<f64>() as i64, bad.iter().sum::<f64>() as i64),
                &[Series { class: "ok-line", values: ok.clone() }, Series { class: "bad-line", values: bad.clone() }],
            ))
        }
        p.legend { span.ok { "— succeeded per minute" } span.bad { "— failed per minute" } }
        h2 { "Failures of the last 24 hours, by error" }
        (failures(s, v))
        h2 { "Settings (from the catalog)" }
        (settings(a))
    }
}

/// The last 24 hours' failures grouped by error, and "retry every failed job".
fn failures(s: &Session, v: &ActionView) -> Markup {
    let a = v.action;
    html! {
        @if v.failures.is_empty() {
            p id="no-failures" { "No job of this action failed in the last 24 hours." }
        } @else {
            (scroll(html! {
                table id="failures" {
                    tr { th.num { "jobs" } th { "error" } th { "last" } }
                    @for f in v.failures {
                        tr {
                            td.num { (f.jobs) }
                            td title=(f.error.as_deref().unwrap_or("")) { (excerpt(f.error.as_deref().unwrap_or("(no error text)"), 160)) }
                            td { (when(f.last_at)) }
                        }
                    }
                }
            }))
        }
        form method="post" action={ "/ops/ui/actions/" (q(&a.name)) "/retry-failed" } {
            (csrf_field(s)) button id="retry-failed" { "Retry every failed job of " (a.name) }
        }
    }
}

/// The action's settings from the catalog (credentials named by their variable only).
fn settings(a: &Action) -> Markup {
    let retry = &a.retry;
    html! {
        dl.settings id="settings" {
            dt { "display name" } dd { (a.display_name) }
            @match &a.kind {
                ActionKind::Noop => { dt { "kind" } dd { "noop (succeeds at once)" } }
                ActionKind::Http(http) => {
                    dt { "kind" } dd { "http" }
                    dt { "target" } dd {
                        (http.request.as_ref().map(|r| r.method.as_str()).unwrap_or("POST")) " " (safe_url(&http.url))
                    }
                    dt { "credentials" } dd { (http.auth.as_ref().map(auth).unwrap_or_else(|| "none".into())) }
                    dt { "signed" } dd { (http.signing_secret_env.as_ref().map(|e| format!("Standard Webhooks, secret from ${e}")).unwrap_or_else(|| "no".into())) }
                    dt { "success" } dd { (http.success_status.as_ref().map(|s| format!("{s:?}")).unwrap_or_else(|| "any 2xx".into())) }
                }
            }
            dt { "timeout" } dd { (charts::human_std(a.timeout)) }
            dt { "attempts" } dd {
                (retry.max_attempts) ", backoff from " (charts::human_std(retry.base))
                " up to " (charts::human_std(retry.cap))
            }
            dt { "duplicate triggers" } dd { (if a.dedupe { "join the waiting or running job" } else { "each makes a job" }) }
            (flow_settings(a))
        }
    }
}

/// Follow-ups, limits and circuit, as the catalog sets them.
fn flow_settings(a: &Action) -> Markup {
    html! {
            dt { "follow-ups" } dd {
                @if a.on_finish.is_empty() { "none" }
                @for f in &a.on_finish {
                    "when " (f.when.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")) ": "
                    a href={ "/ops/ui/actions/" (q(&f.run)) } { (f.run) } " "
                }
            }
            dt { "limits" } dd {
                @match (&a.flow.max_concurrency, &a.flow.rate) {
                    (None, None) => "none",
                    (max, rate) => {
                        @if let Some(m) = max { "at most " (m) " at once " }
                        @if let Some(r) = rate { "rate " (r.text) " (burst " (r.burst) ")" }
                    }
                }
                @if let Some(g) = &a.flow.limit_group { " — group " (g) }
            }
            dt { "circuit" } dd {
                @match &a.flow.circuit {
                    None => "none",
                    Some(c) => {
                        "opens after " (c.failures) " failures in a row, cools down "
                        (charts::human_std(c.cool_down)) " (at most "
                        (charts::human_std(c.cool_down_max)) ")"
                    }
                }
            }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_url;

    #[test]
    fn target_urls_lose_credentials_and_query() {
        assert_eq!(
            safe_url("https://user:pw@dam.example.com/api/archive?token=s3cret#x"),
            "https://dam.example.com/api/archive"
        );
        assert_eq!(safe_url("{{ base }}/x"), "(a template)");
    }
}
