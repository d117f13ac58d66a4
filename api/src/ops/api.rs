//! The ops JSON API's jobs endpoints: list, inspect, retry and cancel jobs; bulk
//! retry; figures; the audit trail. Adapters over [`crate::service`], which records
//! every change in `operator_actions`.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use docket::db::jobs::{AttemptRow, ChildJob, JobRow};
use docket::db::ops::{Cancelled, OperatorAction};
use docket::domain::{JobId, JobState};

use super::error::{OpsError, OpsErrorBody};
use super::list_query::ListQuery;
use super::operator::Operator;
use crate::schema::Int64;
use crate::service::jobs::{self, Page};
use crate::service::stats::{self, Stats};
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
    Ok(Json(jobs::list_page(&state, &query.search()?).await?))
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
    let d = jobs::load_detail(&state, jobs::parse_id(&id)?).await?;
    Ok(Json(DetailJson {
        job: d.job,
        children: d.children,
        attempts: d.attempts,
        explanation: d.explanation,
        operator_actions: d.audit,
        event: d.event,
    }))
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
    let id = jobs::parse_id(&id)?;
    jobs::retry_job(&state, &actor.0, id).await?;
    Ok(Json(Retried { job_id: id, state: JobState::Queued }))
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
    let id = jobs::parse_id(&id)?;
    let result = match jobs::cancel_job(&state, &actor.0, id).await? {
        Cancelled::Now => CancelResult::Cancelled,
        _ => CancelResult::CancelRequested,
    };
    Ok(Json(CancelReply { job_id: id, result }))
}

/// The answer to a bulk retry.
#[derive(Serialize, ToSchema)]
pub struct RetriedFailed {
    action: String,
    /// How many jobs were queued again.
    retried: usize,
    /// False when the retry stopped between batches to answer within the request
    /// timeout: failed jobs may remain, and the same call retries them.
    complete: bool,
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
    let done = jobs::retry_failed_jobs(&state, &actor.0, &action).await?;
    Ok(Json(RetriedFailed { action, retried: done.retried, complete: done.complete }))
}

/// Counts, lag, throughput, live workers, every action's flow control.
#[utoipa::path(get, path = "/ops/stats", operation_id = "stats", tag = "ops", security(("adminToken" = [])),
    responses(
        (status = 200, description = "Figures", body = Stats),
        (status = 401, description = "Unauthorized", body = OpsErrorBody)
    ))]
async fn stats(_: Operator, State(state): State<AppState>) -> Result<Json<Stats>, OpsError> {
    Ok(Json(stats::load_stats(&state).await?))
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
    let rows = jobs::audit(&state, query.job_id.map(JobId), query.limit.unwrap_or(100)).await?;
    Ok(Json(Audit { operator_actions: rows }))
}
