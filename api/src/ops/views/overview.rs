//! The overview: a row per action (live counts, lag, limits, pause or circuit, the
//! last hour drawn), the last 24 hours, live workers. The page wraps [`live`] in an
//! element the script refreshes every few seconds from `/ops/ui/live`.

use maud::{html, Markup};

use docket::db::samples::Sample;
use docket::domain::JobState;

use super::charts::{self, Series};
use super::flow as flow_cells;
use super::q;
use super::{scroll, when};
use crate::ops::session::Session;
use crate::service::flow::ActionFlow;
use crate::service::stats::Overview;

/// Deliveries per minute over the last hour, oldest first, one value a minute.
fn event_minutes(o: &Overview) -> Vec<f64> {
    let this_minute = o.now.timestamp() / 60;
    (0..60)
        .rev()
        .map(|ago| {
            let minute = this_minute - ago;
            o.stats.events.iter().filter(|e| e.minute.timestamp() / 60 == minute).map(|e| e.received as f64).sum()
        })
        .collect()
}

/// The whole page body: the live part in its refreshing frame.
pub fn page(s: &Session, o: &Overview) -> Markup {
    html! {
        div id="live" data-live="/ops/ui/live" aria-live="polite" { (live(s, o)) }
    }
}

/// Everything that changes: actions, the day chart, workers.
pub fn live(s: &Session, o: &Overview) -> Markup {
    html! {
        h2 { "Actions and their targets" }
        p.muted { "Waiting and running: now. Succeeded and failed: the last hour. Updated " (when(o.now)) "." }
        (scroll(html! {
            table id="flow" {
                tr {
                    th { "action" } th.num { "queued" } th.num { "retrying" } th { "running / limit" }
                    th.num { "succeeded 1 h" } th.num { "failed 1 h" } th { "lag" } th { "last hour" }
                    th { "rate" } th { "state" } th { "circuit" } th {}
                }
                @for a in &o.stats.actions { (action_row(s, o, a)) }
            }
        }))
        @if !o.stats.events.is_empty() || !o.trigger_names.is_empty() { (events(o)) }
        h2 { "The last 24 hours" }
        (charts::last_day(&o.samples, o.now))
        h2 { "Live workers" }
        (workers(o))
    }
}

/// One action: its jobs by state, lag, the last hour, and its flow control.
fn action_row(s: &Session, o: &Overview, a: &ActionFlow) -> Markup {
    let count = |state: JobState| {
        o.stats.counts.iter().filter(|c| c.action == a.action && c.state == state).map(|c| c.count).sum::<i64>()
    };
    let samples: Vec<&Sample> = o.samples.iter().filter(|x| x.action == a.action).collect();
    let ok = charts::last_hour(&samples, o.now, |x| x.succeeded);
    let bad = charts::last_hour(&samples, o.now, |x| x.failed);
    let lag = o.stats.lag.iter().find(|l| l.action == a.action);
    html! {
        tr data-action=(a.action) {
            td { a href={ "/ops/ui/actions/" (q(&a.action)) } { (a.action) } (flow_cells::group(a)) }
            td.num data-count="queued" {
                a href={ "/ops/ui/jobs?action=" (q(&a.action)) "&state=queued" } { (count(JobState::Queued)) }
            }
            td.num data-count="retrying" { (count(JobState::Retrying)) }
            (flow_cells::limit_cell(a))
            td.num data-count="succeeded" { (count(JobState::Succeeded)) }
            td.num data-count="failed" {
                a href={ "/ops/ui/jobs?action=" (q(&a.action)) "&state=failed" } { (count(JobState::Failed)) }
            }
            td { (lag.map(|l| charts::human_std(std::time::Duration::from_secs_f64(l.lag_seconds.max(0.0)))).unwrap_or_else(|| "—".into())) }
            td {
                (charts::sparkline(
                    &format!("{}: {} succeeded and {} failed in the last hour", a.action,
                             ok.iter().sum::<f64>() as i64, bad.iter().sum::<f64>() as i64),
                    &[Series { class: "ok-line", values: ok.clone() }, Series { class: "bad-line", values: bad.clone() }],
                ))
            }
            (flow_cells::cells(s, a))
        }
    }
}

/// Workfront event deliveries per minute, and links to each trigger's jobs.
fn events(o: &Overview) -> Markup {
    let per_minute = event_minutes(o);
    let hour = per_minute.iter().sum::<f64>() as i64;
    let last = per_minute.last().copied().unwrap_or(0.0) as i64;
    html! {
        h2 { "Workfront events" }
        p id="events-received" {
            (hour) " received in the last hour, " (last) " this minute. "
            (charts::sparkline(
                &format!("Workfront events received per minute: {hour} in the last hour"),
                &[Series { class: "ok-line", values: per_minute.clone() }],
            ))
            " Jobs by trigger: "
            @for (i, t) in o.trigger_names.iter().enumerate() {
                @if i > 0 { ", " }
                a href={ "/ops/ui/jobs?trigger=" (q(t)) } { (t) }
            }
        }
    }
}

/// The live workers (or a warning that there is none).
fn workers(o: &Overview) -> Markup {
    html! {
        (scroll(html! {
            table id="workers" {
                tr {
                    th { "id" } th { "host" } th.num { "pid" } th { "version" } th { "actions" } th.num { "concurrency" }
                    th { "started" } th { "heartbeat" }
                }
                @for w in &o.stats.workers {
                    tr {
                        td { (w.id) } td { (w.host) } td.num { (w.pid) } td { (w.version) } td { (w.actions.join(", ")) }
                        td.num { (w.concurrency) } td { (when(w.started_at)) } td { (when(w.heartbeat_at)) }
                    }
                }
            }
        }))
        @if o.stats.workers.is_empty() { p.error { "No worker is running: nothing starts." } }
    }
}
