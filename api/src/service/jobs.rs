//! Jobs as operators see and steer them: the list, one job with its attempts and its
//! explanation, retry and cancel (one job, a selection, every failed job of an
//! action). Every change is recorded in `operator_actions` in its transaction.

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use docket::db::jobs::{self, AttemptRow, JobRow};
use docket::db::ops::{self, Cancelled, JobFilter};
use docket::db::{attempts, workers};
use docket::domain::{AuditAction, JobId};

use super::{explain, flow, OpsError};
use crate::state::{AppState, QUERY_TIMEOUT};

/// Most jobs in one page of the list.
pub const PAGE_CAP: i64 = 200;

/// The attempt budget a retried job gets: its action's `max_attempts`.
pub fn retry_budget(state: &AppState, action: &str) -> i32 {
    state.catalog.get(action).map(|a| a.retry.max_attempts).unwrap_or(docket::catalog::DEFAULT_MAX_ATTEMPTS) as i32
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

/// What the jobs list asks for: its filters, the page, and a search text that may
/// also name who asked.
#[derive(Debug, Default)]
pub struct JobSearch {
    pub filter: JobFilter,
    /// The search box's text when it is no job id: if nothing matches it as a
    /// document id, the list is read again with it as who asked.
    pub requester_fallback: Option<String>,
    /// The document filter that applies then (the search text took its place).
    pub document_filter: Option<String>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<JobId>,
    /// Page size, 1..=[`PAGE_CAP`].
    pub limit: i64,
}

/// Runs the list query under the operators' statement timeout.
pub async fn list_page(state: &AppState, search: &JobSearch) -> Result<Page, OpsError> {
    let mut filter = search.filter.clone();
    let limit = search.limit.clamp(1, PAGE_CAP);
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let mut rows = ops::jobs_list(&mut *tx, &filter, search.cursor, limit).await?;
    // A search that is no job id and no document id may be who asked.
    let fallback = rows.is_empty() && search.cursor.is_none() && search.requester_fallback.is_some();
    if fallback {
        filter.document_id = search.document_filter.clone();
        filter.requested_by = search.requester_fallback.clone();
        rows = ops::jobs_list(&mut *tx, &filter, search.cursor, limit).await?;
    }
    tx.commit().await?;
    let next_cursor = if rows.len() as i64 == limit { rows.last().map(|j| j.id) } else { None };
    Ok(Page { jobs: rows, next_cursor, searched_requester: fallback })
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
    let flows = flow::load(&state.db, &state.catalog).await?;
    let flow = flows.iter().find(|f| f.action == job.action);
    let explanation = explain::explain(&job, &attempts, &live, flow, Utc::now());
    Ok(Detail { job, children, attempts, explanation, audit, event })
}

/// A job id as an operator wrote it.
pub fn parse_id(text: &str) -> Result<JobId, OpsError> {
    text.parse::<uuid::Uuid>().map(JobId).map_err(|_| OpsError::BadRequest(format!("{text:?} is not a job id")))
}

/// Retries a failed or cancelled job; records who did it.
pub async fn retry_job(state: &AppState, actor: &str, id: JobId) -> Result<(), OpsError> {
    let mut tx = state.db.begin().await?;
    let job = jobs::get(&mut *tx, id).await?.ok_or_else(|| OpsError::NotFound(id.to_string()))?;
    let budget = [(job.action.clone(), retry_budget(state, &job.action))];
    if ops::jobs_retry(&mut *tx, &[id], &budget).await?.is_empty() {
        return Err(OpsError::Conflict(format!(
            "job {id} is {}; only failed or cancelled jobs can be retried",
            job.state.as_str()
        )));
    }
    ops::audit_record(&mut *tx, actor, AuditAction::Retry, &[id], None).await?;
    jobs::notify(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(job.id = %id, job.action = %job.action, actor, "operator retried job");
    Ok(())
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
    ops::audit_record(&mut *tx, actor, AuditAction::Cancel, &[id], None).await?;
    tx.commit().await?;
    tracing::info!(job.id = %id, job.action = %job.action, actor, ?outcome, "operator cancelled job");
    Ok(outcome)
}

/// Failed jobs retried per transaction (each with its audit row) by a bulk retry.
pub const RETRY_BATCH: i64 = 10_000;

/// What a bulk retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkRetried {
    /// Jobs queued again (and recorded) by this call.
    pub retried: usize,
    /// False: the call stopped between batches to answer within the request timeout,
    /// and failed jobs may remain; calling again retries them.
    pub complete: bool,
}

/// Retries every failed job of `action` in batches of [`RETRY_BATCH`], each batch one
/// transaction under the operators' statement timeout with its own audit row, so a
/// bulk retry of 100,000 jobs holds no long lock and a failure midway keeps what was
/// done (and recorded). Starts no batch after half the request timeout: the answer
/// then says how many it retried and that more remain, instead of a 503 cut short
/// after batches had committed.
pub async fn retry_failed_jobs(state: &AppState, actor: &str, action: &str) -> Result<BulkRetried, OpsError> {
    let stop_at = tokio::time::Instant::now() + state.request_timeout / 2;
    let budget = [(action.to_owned(), retry_budget(state, action))];
    let mut retried = 0;
    let complete = loop {
        let mut tx = state.db.begin().await?;
        ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
        let batch = ops::lock_failed_batch(&mut *tx, action, RETRY_BATCH).await?;
        let ids = ops::jobs_retry(&mut *tx, &batch, &budget).await?;
        if !ids.is_empty() || retried == 0 {
            ops::audit_record(&mut *tx, actor, AuditAction::RetryFailed, &ids, Some(&format!("action={action}")))
                .await?;
            jobs::notify(&mut *tx).await?;
        }
        tx.commit().await?;
        retried += ids.len();
        if (batch.len() as i64) < RETRY_BATCH {
            break true;
        }
        if tokio::time::Instant::now() >= stop_at {
            break false;
        }
    };
    tracing::info!(job.action = %action, actor, retried, complete, "operator retried failed jobs");
    Ok(BulkRetried { retried, complete })
}

/// What a bulk action of the dashboard does to the jobs it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOp {
    Retry,
    Cancel,
}

impl BulkOp {
    /// As the dashboard's form names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
        }
    }

    /// From the form's value.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Retry, Self::Cancel].into_iter().find(|op| op.as_str() == text)
    }
}

/// Most jobs one bulk action of the dashboard takes.
pub const BULK_CAP: i64 = 1000;

/// The newest jobs (at most `cap`) that match the list's filters, and whether more do.
pub async fn matching_ids(state: &AppState, filter: &JobFilter, cap: i64) -> Result<(Vec<JobId>, bool), OpsError> {
    let mut tx = state.db.begin().await?;
    ops::statement_timeout(&mut tx, QUERY_TIMEOUT).await?;
    let mut rows = ops::jobs_list(&mut *tx, filter, None, cap + 1).await?;
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
    let retried = ops::jobs_retry(&mut *tx, ids, &budgets).await?;
    ops::audit_record(&mut *tx, actor, AuditAction::BulkRetry, &retried, Some(&format!("selected={}", ids.len())))
        .await?;
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
    ops::audit_record(&mut *tx, actor, AuditAction::BulkCancel, &touched, Some(&format!("selected={}", ids.len())))
        .await?;
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

/// Operator actions, newest first (on one job if given); `limit` clamped to 1..=1000.
pub async fn audit(state: &AppState, job: Option<JobId>, limit: i64) -> Result<Vec<ops::OperatorAction>, OpsError> {
    let limit = limit.clamp(1, 1000);
    Ok(state.db.run(async |c| ops::audit_list(c, job, limit).await).await?)
}
