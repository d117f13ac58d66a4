//! The ops JSON API: list, inspect, retry and cancel jobs; bulk retry; figures; the
//! audit trail. Every change is recorded in `operator_actions`.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::jobs::{self, AttemptRow, ChildJob, JobRow};
use docket::db::ops::{self, Cancelled, JobFilter, OperatorAction};
use docket::db::{attempts, workers};
use docket::domain::{JobId, JobState};

use super::error::{OpsError, OpsErrorBody};
use super::{explain, retry_budget, Operator, PAGE_CAP, QUERY_TIMEOUT};
use crate::routes::openapi::{EmptyOrDateTime, EmptyOrInt64, EmptyOrUuid, Filter, Int64, StateFilter};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail))
        .routes(routes!(retry))
        .routes(routes!(cancel))
        .routes(routes!(retry_failed))
        .routes(routes!(stats))
        .routes(routes!(audit))
}

/// The list's query parameters (all optional; an empty value means "not given").
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    #[param(inline, value_type = Option<StateFilter>)]
    pub state: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub action: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub document_id: Option<String>,
    #[param(inline, value_type = Option<Filter>)]
    pub requested_by: Option<String>,
    /// Jobs a trigger (a Workfront event) started.
    #[param(inline, value_type = Option<Filter>)]
    pub trigger: Option<String>,
    /// One box for the dashboard: a job id, else a document id, else who asked.
    #[param(inline, value_type = Option<Filter>)]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrDateTime>)]
    pub created_since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrDateTime>)]
    pub created_until: Option<DateTime<Utc>>,
    /// The `nextCursor` of the page before.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrUuid>)]
    pub cursor: Option<uuid::Uuid>,
    /// Page size (default 50), clamped to 1..200.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(inline, value_type = Option<EmptyOrInt64>)]
    pub limit: Option<i64>,
}

/// An empty query value (as HTML forms send for empty fields) means "not given".
fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

impl ListQuery {
    pub fn filter(&self) -> Result<JobFilter, OpsError> {
        let state = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(parse_state(text)?),
        };
        let search = text_filter("q", &self.q)?;
        let id = search.as_deref().and_then(|q| q.parse::<uuid::Uuid>().ok()).map(JobId);
        // Checked even when the search text takes its place, so that a bad value is a
        // 400 whatever else the query holds.
        let document_filter = text_filter("documentId", &self.document_id)?;
        let document_id = match (&search, id) {
            (Some(q), None) => Some(q.clone()),
            _ => document_filter,
        };
        Ok(JobFilter {
            id,
            state,
            action: text_filter("action", &self.action)?,
            document_id,
            requested_by: text_filter("requestedBy", &self.requested_by)?,
            trigger: text_filter("trigger", &self.trigger)?,
            created_since: self.created_since,
            created_until: self.created_until,
        })
    }

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, PAGE_CAP)
    }
}

/// An optional text filter: empty means not given; otherwise it must be a value Docket
/// could have stored (1–255 characters, no control characters).
fn text_filter(name: &str, value: &Option<String>) -> Result<Option<String>, OpsError> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => docket::domain::check_text(v, docket::domain::MAX_ID_CHARS)
            .map(|()| Some(v.to_owned()))
            .map_err(|e| OpsError::BadRequest(format!("the {name} filter {e}"))),
    }
}

fn parse_state(text: &str) -> Result<JobState, OpsError> {
    text.parse().map_err(OpsError::BadRequest)
}

/// One page of jobs, newest first, and the cursor of the next page.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = JobPage)]
pub struct Page {
    pub jobs: Vec<JobRow>,
    pub next_cursor: Option<JobId>,
    /// The search box's text matched who asked (its next page filters by that).
    #[serde(skip)]
    pub searched_requester: bool,
}

/// Runs the list query under the operators' statement timeout.
pub async fn list_page(state: &AppState, query: &ListQuery) -> Result<Page, OpsError> {
    let mut filter = query.filter()?;
    let limit = query.limit();
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let mut rows = ops::jobs_list(&mut *tx, &filter, query.cursor.map(JobId), limit).await?;
    // A search that is no job id and no document id may be who asked.
    let fallback = rows.is_empty()
        && query.cursor.is_none()
        && filter.id.is_none()
        && query.q.as_deref().is_some_and(|q| !q.is_empty());
    if fallback {
        filter.document_id = text_filter("documentId", &query.document_id)?;
        filter.requested_by = query.q.clone();
        rows = ops::jobs_list(&mut *tx, &filter, query.cursor.map(JobId), limit).await?;
    }
    tx.commit().await?;
    let next_cursor = if rows.len() as i64 == limit { rows.last().map(|j| j.id) } else { None };
    Ok(Page { jobs: rows, next_cursor, searched_requester: fallback })
}

/// Jobs, newest first, filtered; keyset pagination.
#[utoipa::path(get, path = "/ops/jobs", operation_id = "listJobs", tag = "ops", security(("adminToken" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = Page),
        (status = 400, description = "Bad filter", body = OpsErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = OpsErrorBody)
    ))]
async fn list(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, OpsError> {
    let Query(query) = query.map_err(|e| OpsError::BadRequest(e.body_text()))?;
    Ok(Json(list_page(&state, &query).await?))
}

/// A job with its attempts, its explanation and the operator actions on it.
pub struct Detail {
    pub job: JobRow,
    /// The follow-ups its ends queued.
    pub children: Vec<jobs::ChildJob>,
    pub attempts: Vec<AttemptRow>,
    pub explanation: String,
    pub audit: Vec<ops::OperatorAction>,
    /// The Workfront event that started it (`None` for a menu click, a follow-up, or
    /// once the event was pruned).
    pub event: Option<docket::db::events::EventRow>,
}

pub async fn load_detail(state: &AppState, id: JobId) -> Result<Detail, OpsError> {
    let (job, children, attempts, live, audit, event) = state
        .db
        .run(async |c| {
            let Some(job) = jobs::get(&mut *c, id).await? else {
                return Ok((None, vec![], vec![], vec![], vec![], None));
            };
            let children = jobs::children(&mut *c, id).await?;
            let attempts = attempts::list(&mut *c, id).await?;
            let live = workers::list_live(&mut *c).await?;
            let audit = ops::audit_list(&mut *c, Some(id), 50).await?;
            let event = match job.event_id {
                Some(event_id) => docket::db::events::get(&mut *c, event_id).await?,
                None => None,
            };
            Ok((Some(job), children, attempts, live, audit, event))
        })
        .await?;
    let job = job.ok_or_else(|| OpsError::NotFound(id.to_string()))?;
    let flows = super::flow::load(&state.db, &state.catalog).await?;
    let flow = flows.iter().find(|f| f.action == job.action);
    let explanation = explain::explain(&job, &attempts, &live, flow, Utc::now());
    Ok(Detail { job, children, attempts, explanation, audit, event })
}

/// [`Detail`] as the JSON API answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = JobDetail)]
pub struct DetailJson {
    job: JobRow,
    /// The follow-ups its ends queued.
    children: Vec<ChildJob>,
    attempts: Vec<AttemptRow>,
    /// Why the job is where it is, in a sentence or two.
    explanation: String,
    operator_actions: Vec<OperatorAction>,
    /// The Workfront event that started it: object code, ID, event type, event time,
    /// subscription (absent for a menu click, a follow-up, or once pruned).
    event: Option<docket::db::events::EventRow>,
}

/// A job, its attempts, why it is where it is, and operator actions on it.
#[utoipa::path(get, path = "/ops/jobs/{id}", operation_id = "getJob", tag = "ops", security(("adminToken" = [])),
    params(("id" = uuid::Uuid, Path, description = "the job id")),
    responses(
        (status = 200, description = "The job", body = DetailJson),
        (status = 400, description = "Not a job id", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such job", body = OpsErrorBody)
    ))]
async fn detail(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DetailJson>, OpsError> {
    let d = load_detail(&state, parse_id(&id)?).await?;
    Ok(Json(DetailJson {
        job: d.job,
        children: d.children,
        attempts: d.attempts,
        explanation: d.explanation,
        operator_actions: d.audit,
        event: d.event,
    }))
}

pub fn parse_id(text: &str) -> Result<JobId, OpsError> {
    text.parse::<uuid::Uuid>().map(JobId).map_err(|_| OpsError::BadRequest(format!("{text:?} is not a job id")))
}

/// Retries a failed or cancelled job; records who did it.
pub async fn retry_job(state: &AppState, actor: &str, id: JobId) -> Result<(), OpsError> {
    let mut tx = state.db.begin().await?;
    let job = jobs::get(&mut *tx, id).await?.ok_or_else(|| OpsError::NotFound(id.to_string()))?;
    if !ops::job_retry(&mut *tx, id, retry_budget(state, &job.action)).await? {
        return Err(OpsError::Conflict(format!(
            "job {id} is {}; only failed or cancelled jobs can be retried",
            job.state.as_str()
        )));
    }
    ops::audit_record(&mut *tx, actor, "retry", &[id], None).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(job.id = %id, job.action = %job.action, actor, "operator retried job");
    Ok(())
}

/// The answer to a retry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retried {
    job_id: JobId,
    /// Always "queued".
    state: JobState,
}

/// Run a failed or cancelled job again with a fresh attempt budget.
#[utoipa::path(post, path = "/ops/jobs/{id}/retry", operation_id = "retryJob", tag = "ops", security(("adminToken" = [])),
    params(("id" = uuid::Uuid, Path, description = "the job id")),
    responses(
        (status = 200, description = "Queued again", body = Retried),
        (status = 400, description = "Not a job id", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such job", body = OpsErrorBody),
        (status = 409, description = "The job is not failed or cancelled", body = OpsErrorBody)
    ))]
async fn retry(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Retried>, OpsError> {
    let id = parse_id(&id)?;
    retry_job(&state, &actor.0, id).await?;
    Ok(Json(Retried { job_id: id, state: JobState::Queued }))
}

/// Cancels a job (or asks its worker to stop it); records who did it.
pub async fn cancel_job(state: &AppState, actor: &str, id: JobId) -> Result<Cancelled, OpsError> {
    let mut tx = state.db.begin().await?;
    let job = jobs::get(&mut *tx, id).await?.ok_or_else(|| OpsError::NotFound(id.to_string()))?;
    let rules = docket::db::jobs::FollowUpRules::from_catalog(&state.catalog);
    let outcome = ops::job_cancel(&mut tx, id, &rules).await?;
    if outcome == Cancelled::NotCancellable {
        return Err(OpsError::Conflict(format!(
            "job {id} is {}; only queued, retrying or running jobs can be cancelled",
            job.state.as_str()
        )));
    }
    ops::audit_record(&mut *tx, actor, "cancel", &[id], None).await?;
    tx.commit().await?;
    tracing::info!(job.id = %id, job.action = %job.action, actor, ?outcome, "operator cancelled job");
    Ok(outcome)
}

/// What a cancel did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelResult {
    /// The job waited; it is cancelled.
    Cancelled,
    /// The job runs; its worker was asked to stop it.
    CancelRequested,
}

/// The answer to a cancel.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelReply {
    job_id: JobId,
    result: CancelResult,
}

/// Cancel a waiting job, or ask the worker of a running job to stop it.
#[utoipa::path(post, path = "/ops/jobs/{id}/cancel", operation_id = "cancelJob", tag = "ops", security(("adminToken" = [])),
    params(("id" = uuid::Uuid, Path, description = "the job id")),
    responses(
        (status = 200, description = "Cancelled, or cancel requested", body = CancelReply),
        (status = 400, description = "Not a job id", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody),
        (status = 404, description = "No such job", body = OpsErrorBody),
        (status = 409, description = "The job has already finished", body = OpsErrorBody)
    ))]
async fn cancel(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelReply>, OpsError> {
    let id = parse_id(&id)?;
    let result = match cancel_job(&state, &actor.0, id).await? {
        Cancelled::Now => CancelResult::Cancelled,
        _ => CancelResult::CancelRequested,
    };
    Ok(Json(CancelReply { job_id: id, result }))
}

/// Failed jobs retried per transaction (each with its audit row) by a bulk retry.
pub const RETRY_BATCH: i64 = 10_000;

/// Retries every failed job of `action` in batches of [`RETRY_BATCH`], each batch one
/// transaction under the operators' statement timeout with its own audit row, so a
/// bulk retry of 100,000 jobs holds no long lock and a failure midway keeps what was
/// done (and recorded). Returns how many jobs were queued again.
pub async fn retry_failed_jobs(state: &AppState, actor: &str, action: &str) -> Result<usize, OpsError> {
    let budget = retry_budget(state, action);
    let mut retried = 0;
    loop {
        let mut tx = state.db.begin().await?;
        ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
        let ids = ops::jobs_retry_failed(&mut *tx, action, budget, RETRY_BATCH).await?;
        if !ids.is_empty() || retried == 0 {
            ops::audit_record(&mut *tx, actor, "retry_failed", &ids, Some(&format!("action={action}"))).await?;
            jobs::notify(&mut *tx).await?;
        }
        tx.commit().await?;
        retried += ids.len();
        if (ids.len() as i64) < RETRY_BATCH {
            break;
        }
    }
    tracing::info!(job.action = %action, actor, retried, "operator retried failed jobs");
    Ok(retried)
}

/// Most jobs one bulk action of the dashboard takes.
pub const BULK_CAP: i64 = 1000;

/// The newest jobs (at most `cap`) that match the list's filters, and whether more do.
pub async fn matching_ids(state: &AppState, query: &ListQuery, cap: i64) -> Result<(Vec<JobId>, bool), OpsError> {
    let filter = query.filter()?;
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let mut rows = ops::jobs_list(&mut *tx, &filter, None, cap + 1).await?;
    tx.commit().await?;
    let more = rows.len() as i64 > cap;
    rows.truncate(cap as usize);
    Ok((rows.into_iter().map(|j| j.id).collect(), more))
}

/// Retries the failed or cancelled jobs among `ids` (each with its action's attempt
/// budget) in one transaction with one audit row; returns how many it retried.
pub async fn retry_jobs(state: &AppState, actor: &str, ids: &[JobId]) -> Result<usize, OpsError> {
    let budgets: Vec<(String, i32)> =
        state.catalog.actions().iter().map(|a| (a.name.clone(), a.retry.max_attempts as i32)).collect();
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let retried = ops::jobs_retry_many(&mut *tx, ids, &budgets).await?;
    ops::audit_record(&mut *tx, actor, "bulk_retry", &retried, Some(&format!("selected={}", ids.len()))).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(actor, selected = ids.len(), retried = retried.len(), "operator retried jobs in bulk");
    Ok(retried.len())
}

/// What a bulk cancel did.
#[derive(Debug, Default, PartialEq)]
pub struct BulkCancel {
    /// Waiting jobs, cancelled at once.
    pub now: usize,
    /// Running jobs whose workers were asked to stop them.
    pub requested: usize,
}

/// Cancels the cancellable jobs among `ids` in one transaction with one audit row.
pub async fn cancel_jobs(state: &AppState, actor: &str, ids: &[JobId]) -> Result<BulkCancel, OpsError> {
    let rules = docket::db::jobs::FollowUpRules::from_catalog(&state.catalog);
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let (mut done, mut touched) = (BulkCancel::default(), Vec::new());
    for &id in ids {
        match ops::job_cancel(&mut tx, id, &rules).await? {
            Cancelled::Now => done.now += 1,
            Cancelled::Requested => done.requested += 1,
            Cancelled::NotCancellable => continue,
        }
        touched.push(id);
    }
    ops::audit_record(&mut *tx, actor, "bulk_cancel", &touched, Some(&format!("selected={}", ids.len()))).await?;
    tx.commit().await?;
    tracing::info!(
        actor,
        selected = ids.len(),
        cancelled = done.now,
        requested = done.requested,
        "operator cancelled jobs in bulk"
    );
    Ok(done)
}

/// The answer to a bulk retry.
#[derive(Serialize, ToSchema)]
pub struct RetriedFailed {
    action: String,
    /// How many jobs were queued again.
    retried: usize,
}

/// Retry every failed job of one action.
#[utoipa::path(post, path = "/ops/actions/{action}/retry-failed", operation_id = "retryFailed", tag = "ops",
    security(("adminToken" = [])),
    params(("action" = String, Path, description = "the action")),
    responses(
        (status = 200, description = "How many jobs were queued again", body = RetriedFailed),
        (status = 401, description = "Unauthorized", body = OpsErrorBody)
    ))]
async fn retry_failed(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(action): Path<String>,
) -> Result<Json<RetriedFailed>, OpsError> {
    let retried = retry_failed_jobs(&state, &actor.0, &action).await?;
    Ok(Json(RetriedFailed { action, retried }))
}

/// The figures of `/ops/stats` and the dashboard's overview.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub counts: Vec<ops::StateCount>,
    pub lag: Vec<ops::Lag>,
    pub throughput: Vec<ops::Minute>,
    pub workers: Vec<workers::WorkerRow>,
    /// Every action's limits, usage, pause and circuit.
    pub actions: Vec<super::flow::ActionFlow>,
    /// Workfront event deliveries received per minute, the last hour.
    pub events: Vec<docket::db::events::EventMinute>,
}

pub async fn load_stats(state: &AppState) -> Result<Stats, OpsError> {
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let counts = ops::state_counts(&mut tx, std::time::Duration::from_secs(3600)).await?;
    let lag = ops::lag_per_action(&mut *tx).await?;
    let throughput = ops::throughput_last_hour(&mut *tx).await?;
    let workers = workers::list_live(&mut *tx).await?;
    let events = docket::db::events::per_minute_last_hour(&mut *tx).await?;
    tx.commit().await?;
    let actions = super::flow::load(&state.db, &state.catalog).await?;
    Ok(Stats { counts, lag, throughput, workers, actions, events })
}

/// Counts, lag, throughput, live workers, every action's flow control.
#[utoipa::path(get, path = "/ops/stats", operation_id = "stats", tag = "ops", security(("adminToken" = [])),
    responses(
        (status = 200, description = "Figures", body = Stats),
        (status = 401, description = "Unauthorized", body = OpsErrorBody)
    ))]
async fn stats(_: Operator, State(state): State<AppState>) -> Result<Json<Stats>, OpsError> {
    Ok(Json(load_stats(&state).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct AuditQuery {
    /// Only the actions on this job.
    job_id: Option<uuid::Uuid>,
    /// Clamped to 1..1000 (default 100).
    #[param(inline, value_type = Option<Int64>)]
    limit: Option<i64>,
}

/// Operator actions, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    operator_actions: Vec<OperatorAction>,
}

/// Operator actions, newest first.
#[utoipa::path(get, path = "/ops/audit", operation_id = "audit", tag = "ops", security(("adminToken" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Operator actions", body = Audit),
        (status = 400, description = "Bad parameter", body = OpsErrorBody),
        (status = 401, description = "Unauthorized", body = OpsErrorBody)
    ))]
async fn audit(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Audit>, OpsError> {
    let Query(query) = query.map_err(|e| OpsError::BadRequest(e.body_text()))?;
    let (job_id, limit) = (query.job_id.map(JobId), query.limit.unwrap_or(100).clamp(1, 1000));
    let rows = state.db.run(async |c| ops::audit_list(c, job_id, limit).await).await?;
    Ok(Json(Audit { operator_actions: rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_is_checked_even_when_the_search_box_replaces_it() {
        // Found by schemathesis: with `q`, a documentId with control characters was
        // not looked at (the search text takes its place) and the list answered 200.
        let query = ListQuery { q: Some("abc".into()), document_id: Some("a\u{8}b".into()), ..Default::default() };
        assert!(matches!(query.filter(), Err(OpsError::BadRequest(m)) if m.contains("documentId")));
    }
}
