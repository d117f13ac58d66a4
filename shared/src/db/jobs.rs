//! Every statement on `jobs` and `job_attempts`, named noun-then-verb. Each takes an
//! executor, so callers choose pool, connection or transaction. The hot ones (claim,
//! complete, renew, release, rescue) live in `sql/jobs/*.sql`, which
//! `scripts/explain-hot-statements` explains as they are.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::domain::{AttemptOutcome, DocumentId, DocumentVersionId, JobId, JobState, Username};
use crate::trace::TraceParent;

/// A job as the api creates it.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub action: String,
    pub document_id: DocumentId,
    pub document_version_id: DocumentVersionId,
    pub requested_by: Option<Username>,
    pub max_attempts: u32,
    /// See [`crate::catalog::Action::dedupe`].
    pub dedupe: bool,
    /// The span that queued it (the intake's), which its attempts continue.
    pub traceparent: Option<TraceParent>,
}

/// A job a worker has just claimed; `attempt` is the number of this attempt (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub action: String,
    pub document_id: String,
    pub document_version_id: String,
    pub requested_by: Option<String>,
    pub attempt: i32,
    pub max_attempts: i32,
    /// The job whose end queued this one (a follow-up), if any.
    pub parent_id: Option<JobId>,
    /// How often the target turned it away with back-pressure so far.
    pub snoozes: i32,
    /// As claimed, the span that queued it (the intake's; a follow-up keeps its
    /// parent's); `None` for a job stored before traces. The worker's claim loop then
    /// replaces it with the attempt's own span ([`Self::attempt_trace`]), which the
    /// call to the target carries.
    pub traceparent: Option<TraceParent>,
}

impl ClaimedJob {
    /// The span of this attempt: a child of the stored one, or a new trace.
    pub fn attempt_trace(&self) -> TraceParent {
        self.traceparent.as_ref().map_or_else(TraceParent::new_root, TraceParent::child)
    }
}

/// The follow-up rules of a catalog, as the statements that end jobs take them: when a
/// job of `parents[n]` ends in `states[n]`, a job of `actions[n]` with `budgets[n]`
/// attempts is queued in the same transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowUpRules {
    pub(crate) parents: Vec<String>,
    pub(crate) states: Vec<String>,
    pub(crate) actions: Vec<String>,
    pub(crate) budgets: Vec<i32>,
}

impl FollowUpRules {
    pub fn from_catalog(catalog: &crate::catalog::Catalog) -> Self {
        let mut rules = Self::default();
        for (parent, state, action, budget) in catalog.follow_up_rules() {
            rules.parents.push(parent);
            rules.states.push(state.as_str().to_owned());
            rules.actions.push(action);
            rules.budgets.push(budget as i32);
        }
        rules
    }
}

/// How a worker ends an attempt it holds the lease for.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: JobId,
    pub attempt: i32,
    pub next: NextState,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    /// What the target said, for actions that capture it (stored in `jobs.result`).
    pub result: Option<serde_json::Value>,
}

/// Where the job goes after the attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextState {
    Succeeded,
    Failed,
    /// Stopped by an operator.
    Cancelled,
    /// Back to the queue after this delay (`retrying`).
    Retry(Duration),
}

/// A whole `jobs` row, as operators see it (and as the ops API serializes it).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Job)]
pub struct JobRow {
    pub id: JobId,
    pub action: String,
    pub document_id: String,
    pub document_version_id: String,
    pub requested_by: Option<String>,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// What the target said (the action's `result` pointer), if captured: any JSON value.
    pub result: Option<serde_json::Value>,
    /// The job whose end queued this one (a follow-up), if any.
    pub parent_id: Option<JobId>,
    /// The trigger that started it (a Workfront event), if any.
    pub trigger: Option<String>,
    /// The event delivery that started it (`/ops/events/{id}`), if any.
    pub event_id: Option<uuid::Uuid>,
}

/// One `job_attempts` row (serialized without its job's id).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Attempt)]
pub struct AttemptRow {
    #[serde(skip)]
    pub job_id: JobId,
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<String>,
}

/// A job taken back from a worker whose lease ran out.
#[derive(Debug, Clone, PartialEq)]
pub struct RescuedJob {
    pub id: JobId,
    pub action: String,
    pub state: JobState,
    pub previous_owner: String,
}

/// Inserts one queued job (see [`insert_many`]).
pub async fn insert(executor: impl PgExecutor<'_>, job: &NewJob) -> Result<(), sqlx::Error> {
    insert_many(executor, std::slice::from_ref(job), false).await.map(drop)
}

/// Inserts many queued jobs in one statement (one round trip, one commit when given
/// the pool). Rows that conflict are skipped: an existing id (a retried batch stores
/// each job once) or, for `dedupe` jobs, a live job of the same action, document and
/// version (see [`resolve`]).
/// With `notify`, the same statement also notifies workers (delivered at commit; saves
/// a round trip when the queue was quiet). Returns the ids this call inserted.
pub async fn insert_many(
    executor: impl PgExecutor<'_>,
    jobs: &[NewJob],
    notify: bool,
) -> Result<Vec<JobId>, sqlx::Error> {
    let mut ids = Vec::with_capacity(jobs.len());
    let mut actions = Vec::with_capacity(jobs.len());
    let mut document_ids = Vec::with_capacity(jobs.len());
    let mut version_ids = Vec::with_capacity(jobs.len());
    let mut requested_by = Vec::with_capacity(jobs.len());
    let mut max_attempts = Vec::with_capacity(jobs.len());
    let mut dedupe = Vec::with_capacity(jobs.len());
    let mut traceparents = Vec::with_capacity(jobs.len());
    for job in jobs {
        ids.push(job.id.0);
        actions.push(job.action.as_str());
        document_ids.push(job.document_id.as_str());
        version_ids.push(job.document_version_id.as_str());
        requested_by.push(job.requested_by.as_ref().map(Username::as_str));
        max_attempts.push(job.max_attempts as i32);
        dedupe.push(job.dedupe);
        traceparents.push(job.traceparent.map(|t| t.to_string()));
    }
    // `notified` is an uncorrelated subquery: evaluated once, and only if a row was
    // inserted.
    let rows = sqlx::query!(
        r#"with inserted as (
               insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts, dedupe,
                                 traceparent)
               select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[],
                                    $9::bool[], $10::text[])
               on conflict do nothing
               returning id
           ), notified as (
               select 1 from (select pg_notify($7, '')) as sent where $8
           )
           select id as "id!: JobId", (select count(*) from notified) as "notified!" from inserted"#,
        &ids,
        &actions as &[&str],
        &document_ids as &[&str],
        &version_ids as &[&str],
        &requested_by as &[Option<&str>],
        &max_attempts,
        crate::JOBS_CHANNEL,
        notify,
        &dedupe,
        &traceparents as &[Option<String>],
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// For each job of a batch, the id that stands for it: its own if it is stored, else
/// the live job it duplicates; `None` if neither (the duplicate finished meanwhile:
/// insert again).
pub async fn resolve(executor: impl PgExecutor<'_>, jobs: &[NewJob]) -> Result<Vec<Option<JobId>>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.id.0).collect();
    let actions: Vec<&str> = jobs.iter().map(|j| j.action.as_str()).collect();
    let documents: Vec<&str> = jobs.iter().map(|j| j.document_id.as_str()).collect();
    let versions: Vec<&str> = jobs.iter().map(|j| j.document_version_id.as_str()).collect();
    let rows = sqlx::query!(
        r#"select i.n as "n!", coalesce(own.id, live.id) as "id: JobId"
           from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) with ordinality as i(id, action, doc, version, n)
           left join jobs own on own.id = i.id
           left join lateral (
               select j.id from jobs j
               where j.action = i.action and j.document_id = i.doc and j.document_version_id = i.version
                 and j.dedupe and j.state in ('queued', 'retrying', 'running')
               limit 1
           ) live on true
           order by i.n"#,
        &ids,
        &actions as &[&str],
        &documents as &[&str],
        &versions as &[&str],
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Tells listening workers that jobs are waiting.
pub async fn notify(executor: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!("select pg_notify($1, '')", crate::JOBS_CHANNEL).execute(executor).await?;
    Ok(())
}

/// Claims up to `limit` due jobs of the given actions for `worker_id`, starts an
/// attempt row for each, and sets their lease. One statement.
pub async fn claim(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    actions: &[String],
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    let rows = sqlx::query_file!("src/db/sql/jobs/claim.sql", worker_id, actions, limit, lease.as_secs_f64())
        .fetch_all(executor)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedJob {
            id: r.id,
            action: r.action,
            document_id: r.document_id,
            document_version_id: r.document_version_id,
            requested_by: r.requested_by,
            attempt: r.attempts,
            max_attempts: r.max_attempts,
            parent_id: r.parent_id,
            snoozes: r.snoozes,
            traceparent: r.traceparent.as_deref().and_then(TraceParent::parse),
        })
        .collect())
}

/// Ends attempts in one statement. Fenced: a completion applies only while the job
/// is still `running` under `worker_id` in the same attempt, so a worker that lost
/// its lease changes nothing. A job bound for `retrying` whose cancel was requested
/// meanwhile ends `cancelled` instead. The same statement queues the follow-ups of
/// the jobs it ends (`rules`). Returns the ids that were applied.
pub async fn complete(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    completions: &[Completion],
    rules: &FollowUpRules,
) -> Result<Vec<JobId>, sqlx::Error> {
    let mut ids = Vec::with_capacity(completions.len());
    let mut attempts = Vec::with_capacity(completions.len());
    let mut states = Vec::with_capacity(completions.len());
    let mut delays = Vec::with_capacity(completions.len());
    let mut outcomes = Vec::with_capacity(completions.len());
    let mut errors = Vec::with_capacity(completions.len());
    let mut results = Vec::with_capacity(completions.len());
    for c in completions {
        ids.push(c.id.0);
        attempts.push(c.attempt);
        let (state, delay) = match c.next {
            NextState::Succeeded => (JobState::Succeeded, 0.0),
            NextState::Failed => (JobState::Failed, 0.0),
            NextState::Cancelled => (JobState::Cancelled, 0.0),
            NextState::Retry(d) => (JobState::Retrying, d.as_secs_f64()),
        };
        states.push(state.as_str());
        delays.push(delay);
        outcomes.push(c.outcome.as_str());
        errors.push(c.error.clone());
        results.push(c.result.as_ref().map(|r| r.to_string()));
    }
    let rows = sqlx::query_file!(
        "src/db/sql/jobs/complete.sql",
        worker_id,
        &ids,
        &attempts,
        &states as &[&str],
        &delays,
        &outcomes as &[&str],
        &errors as &[Option<String>],
        &results as &[Option<String>],
        &rules.parents,
        &rules.states,
        &rules.actions,
        &rules.budgets,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// A lease this worker still holds after a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLease {
    pub id: JobId,
    /// An operator asked for this job to stop.
    pub cancel_requested: bool,
}

/// Extends the leases `worker_id` holds on `ids`; returns those it still holds.
pub async fn renew_leases(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    ids: &[JobId],
    lease: Duration,
) -> Result<Vec<HeldLease>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query_file!("src/db/sql/jobs/renew_leases.sql", worker_id, &ids, lease.as_secs_f64())
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(|r| HeldLease { id: r.id, cancel_requested: r.cancel_requested }).collect())
}

/// A job this worker gives back: its id, its attempt, and whether that attempt
/// started (called the target) or only waited in the local queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldAttempt {
    pub id: JobId,
    pub attempt: i32,
    pub started: bool,
}

/// Gives jobs that `worker_id` holds back to the queue at once (shutdown deadline,
/// an action aborted before its lease ran out, a job that could not start in time),
/// or ends them `cancelled` if an operator asked for that meanwhile. A started
/// attempt is recorded as `interrupted`; one that never started is undone (its row
/// deleted, the job's attempt count and place in the queue as before the claim).
/// Fenced like [`complete`]. Returns the ids released.
pub async fn release(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    held: &[HeldAttempt],
    reason: &str,
    rules: &FollowUpRules,
) -> Result<Vec<JobId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = held.iter().map(|h| h.id.0).collect();
    let attempts: Vec<i32> = held.iter().map(|h| h.attempt).collect();
    let started: Vec<bool> = held.iter().map(|h| h.started).collect();
    let rows = sqlx::query_file!(
        "src/db/sql/jobs/release.sql",
        worker_id,
        &ids,
        &attempts,
        reason,
        &rules.parents,
        &rules.states,
        &rules.actions,
        &rules.budgets,
        &started,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Takes back up to `limit` running jobs whose lease expired: `retrying` at once,
/// `failed` if that was their last attempt, or `cancelled` if an operator asked for
/// it to stop (a cancelled job never starts again). Their open attempt becomes
/// `lease_expired`.
pub async fn rescue_expired(
    executor: impl PgExecutor<'_>,
    limit: i64,
    rules: &FollowUpRules,
) -> Result<Vec<RescuedJob>, sqlx::Error> {
    let rows = sqlx::query_file!(
        "src/db/sql/jobs/rescue_expired.sql",
        limit,
        &rules.parents,
        &rules.states,
        &rules.actions,
        &rules.budgets,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RescuedJob {
            id: r.id,
            action: r.action,
            state: r.state,
            previous_owner: r.worker_id.unwrap_or_default(),
        })
        .collect())
}

/// One job, or `None`.
pub async fn get(executor: impl PgExecutor<'_>, id: JobId) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"select id as "id: JobId", action, document_id, document_version_id, requested_by,
                  state as "state: JobState", attempts, max_attempts, run_at, last_error,
                  lease_owner, lease_expires_at, created_at, updated_at, finished_at, cancel_requested_at,
                  result, parent_id as "parent_id: JobId", trigger, event_id
           from jobs where id = $1"#,
        id as JobId,
    )
    .fetch_optional(executor)
    .await
}

/// A follow-up of a job, as the ops views list it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildJob {
    pub id: JobId,
    pub action: String,
    pub state: JobState,
}

/// The follow-ups a job's ends queued, oldest first.
pub async fn children(executor: impl PgExecutor<'_>, id: JobId) -> Result<Vec<ChildJob>, sqlx::Error> {
    sqlx::query_as!(
        ChildJob,
        r#"select id as "id: JobId", action, state as "state: JobState"
           from jobs where parent_id = $1 order by id limit 100"#,
        id as JobId,
    )
    .fetch_all(executor)
    .await
}
