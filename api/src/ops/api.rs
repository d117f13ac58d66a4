//! The ops JSON API: list, inspect, retry and cancel jobs; bulk retry; figures; the
//! audit trail. Every change is recorded in `operator_actions`.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use docket::db::jobs::{self, AttemptRow, JobRow};
use docket::db::ops::{self, Cancelled, JobFilter};
use docket::db::{attempts, workers};
use docket::domain::{JobId, JobState};

use super::error::OpsError;
use super::{explain, retry_budget, Operator, PAGE_CAP, QUERY_TIMEOUT};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/jobs", get(list))
        .route("/ops/jobs/{id}", get(detail))
        .route("/ops/jobs/{id}/retry", post(retry))
        .route("/ops/jobs/{id}/cancel", post(cancel))
        .route("/ops/actions/{action}/retry-failed", post(retry_failed))
        .route("/ops/stats", get(stats))
        .route("/ops/audit", get(audit))
}

/// The list's query parameters (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    pub action: Option<String>,
    pub document_id: Option<String>,
    pub requested_by: Option<String>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub created_since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub created_until: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub cursor: Option<uuid::Uuid>,
    #[serde(default, deserialize_with = "empty_as_none")]
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
        Ok(JobFilter {
            state,
            action: text_filter("action", &self.action)?,
            document_id: text_filter("documentId", &self.document_id)?,
            requested_by: text_filter("requestedBy", &self.requested_by)?,
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
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub jobs: Vec<JobJson>,
    pub next_cursor: Option<JobId>,
}

/// A job as the ops API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobJson {
    id: JobId,
    action: String,
    document_id: String,
    document_version_id: String,
    requested_by: Option<String>,
    state: JobState,
    attempts: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    cancel_requested_at: Option<DateTime<Utc>>,
    /// What the target said (the action's `result` pointer), if captured.
    result: Option<serde_json::Value>,
    /// The job whose end queued this one (a follow-up), if any.
    parent_id: Option<JobId>,
}

impl From<JobRow> for JobJson {
    fn from(j: JobRow) -> Self {
        Self {
            id: j.id,
            action: j.action,
            document_id: j.document_id,
            document_version_id: j.document_version_id,
            requested_by: j.requested_by,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            last_error: j.last_error,
            lease_owner: j.lease_owner,
            lease_expires_at: j.lease_expires_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
            cancel_requested_at: j.cancel_requested_at,
            result: j.result,
            parent_id: j.parent_id,
        }
    }
}

/// Runs the list query under the operators' statement timeout.
pub async fn list_page(state: &AppState, query: &ListQuery) -> Result<Page, OpsError> {
    let filter = query.filter()?;
    let limit = query.limit();
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let rows = ops::jobs_list(&mut *tx, &filter, query.cursor.map(JobId), limit).await?;
    tx.commit().await?;
    let next_cursor = if rows.len() as i64 == limit { rows.last().map(|j| j.id) } else { None };
    Ok(Page { jobs: rows.into_iter().map(JobJson::from).collect(), next_cursor })
}

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
}

pub async fn load_detail(state: &AppState, id: JobId) -> Result<Detail, OpsError> {
    let (job, children, attempts, live, audit) = state
        .db
        .run(async |c| {
            let Some(job) = jobs::get(&mut *c, id).await? else {
                return Ok((None, vec![], vec![], vec![], vec![]));
            };
            let children = jobs::children(&mut *c, id).await?;
            let attempts = attempts::list(&mut *c, id).await?;
            let live = workers::list_live(&mut *c).await?;
            let audit = ops::audit_list(&mut *c, Some(id), 50).await?;
            Ok((Some(job), children, attempts, live, audit))
        })
        .await?;
    let job = job.ok_or_else(|| OpsError::NotFound(id.to_string()))?;
    let flows = super::flow::load(&state.db, &state.catalog).await?;
    let flow = flows.iter().find(|f| f.action == job.action);
    let explanation = explain::explain(&job, &attempts, &live, flow, Utc::now());
    Ok(Detail { job, children, attempts, explanation, audit })
}

async fn detail(_: Operator, State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, OpsError> {
    let d = load_detail(&state, parse_id(&id)?).await?;
    let attempts: Vec<Value> = d
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt, "workerId": a.worker_id, "startedAt": a.started_at,
                "finishedAt": a.finished_at, "outcome": a.outcome, "error": a.error,
            })
        })
        .collect();
    Ok(Json(json!({
        "job": JobJson::from(d.job),
        "children": d.children,
        "attempts": attempts,
        "explanation": d.explanation,
        "operatorActions": d.audit,
    })))
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

async fn retry(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpsError> {
    let id = parse_id(&id)?;
    retry_job(&state, &actor.0, id).await?;
    Ok(Json(json!({ "jobId": id, "state": "queued" })))
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

async fn cancel(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpsError> {
    let id = parse_id(&id)?;
    let result = match cancel_job(&state, &actor.0, id).await? {
        Cancelled::Now => "cancelled",
        _ => "cancel_requested",
    };
    Ok(Json(json!({ "jobId": id, "result": result })))
}

async fn retry_failed(
    Operator(actor): Operator,
    State(state): State<AppState>,
    Path(action): Path<String>,
) -> Result<Json<Value>, OpsError> {
    let budget = retry_budget(&state, &action);
    let mut tx = state.db.begin().await?;
    let ids = ops::jobs_retry_failed(&mut *tx, &action, budget).await?;
    ops::audit_record(&mut *tx, &actor.0, "retry_failed", &ids, Some(&format!("action={action}"))).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(job.action = %action, actor = %actor.0, retried = ids.len(), "operator retried failed jobs");
    Ok(Json(json!({ "action": action, "retried": ids.len() })))
}

/// The figures of `/ops/stats` and the dashboard's overview.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub counts: Vec<ops::StateCount>,
    pub lag: Vec<ops::Lag>,
    pub throughput: Vec<ops::Minute>,
    pub workers: Vec<workers::WorkerRow>,
    /// Every action's limits, usage, pause and circuit.
    pub actions: Vec<super::flow::ActionFlow>,
}

pub async fn load_stats(state: &AppState) -> Result<Stats, OpsError> {
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let counts = ops::state_counts(&mut *tx, std::time::Duration::from_secs(3600)).await?;
    let lag = ops::lag_per_action(&mut *tx).await?;
    let throughput = ops::throughput_last_hour(&mut *tx).await?;
    let workers = workers::list_live(&mut *tx).await?;
    tx.commit().await?;
    let actions = super::flow::load(&state.db, &state.catalog).await?;
    Ok(Stats { counts, lag, throughput, workers, actions })
}

async fn stats(_: Operator, State(state): State<AppState>) -> Result<Json<Stats>, OpsError> {
    Ok(Json(load_stats(&state).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditQuery {
    job_id: Option<uuid::Uuid>,
    limit: Option<i64>,
}

async fn audit(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, OpsError> {
    let Query(query) = query.map_err(|e| OpsError::BadRequest(e.body_text()))?;
    let (job_id, limit) = (query.job_id.map(JobId), query.limit.unwrap_or(100).clamp(1, 1000));
    let rows = state.db.run(async |c| ops::audit_list(c, job_id, limit).await).await?;
    Ok(Json(json!({ "operatorActions": rows })))
}
