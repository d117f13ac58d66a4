//! Operators' statements: listing and steering jobs, the audit trail, the figures for
//! the dashboard and metrics, and retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use super::jobs::{FollowUpRules, JobRow};
use crate::domain::{AuditAction, JobId, JobState};

/// Filters of the job list; every one optional.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// One job by id (the dashboard's search box).
    pub id: Option<JobId>,
    pub state: Option<JobState>,
    pub action: Option<String>,
    pub document_id: Option<String>,
    pub requested_by: Option<String>,
    /// Jobs a trigger started.
    pub trigger: Option<String>,
    pub created_since: Option<DateTime<Utc>>,
    pub created_until: Option<DateTime<Utc>>,
}

/// Limits how long an operator's query may run, for the rest of the transaction, so
/// that a dashboard never pins the vacuum horizon; turns JIT off for it: on a big
/// table the planner's estimates pass `jit_above_cost` and a 2 ms query compiled
/// itself for 175 ms first (`docket-bench --only big`); and plans every statement with
/// its parameters' values: the jobs list's optional filters (`$1 is null or state =
/// $1`) can use an index only in a plan made for the values; the generic plan, which
/// the plan cache may choose after five executions on a connection, is a sequential
/// scan of the whole table (1.1 s at 10M rows).
pub async fn statement_timeout(conn: &mut PgConnection, timeout: Duration) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"select set_config('statement_timeout', $1, true) as "timeout", set_config('jit', 'off', true) as "jit",
                  set_config('plan_cache_mode', 'force_custom_plan', true) as "plan_cache_mode""#,
        format!("{}ms", timeout.as_millis())
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Jobs matching `filter`, newest first, after `cursor` (the last id of the previous
/// page): keyset pagination on the time-ordered primary key.
///
/// Two branches, merged: running jobs (at most the workers' total concurrency, through
/// `jobs_running_idx`) and all others, which the indexes by state, action and requester
/// hold (`…007_flat_operator_views`: they leave running rows out, so a claim writes no
/// entry into them). Each branch is planned with the filters' values (see
/// [`statement_timeout`]), so a filter not given drops out and one given picks its
/// index; a state filter keeps only its branch. The page is read again by primary key,
/// so that the branches return ids only.
pub async fn jobs_list(
    executor: impl PgExecutor<'_>,
    filter: &JobFilter,
    cursor: Option<JobId>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"select id as "id: JobId", action, document_id, document_version_id, requested_by,
                  state as "state: JobState", attempts, max_attempts, run_at, last_error,
                  lease_owner, lease_expires_at, created_at, updated_at, finished_at, cancel_requested_at,
                  result, parent_id as "parent_id: JobId", trigger, event_id
           from jobs
           where id = any(array(
               select page.id from (
                   (select id from jobs
                    where state = 'running' and ($1::job_state is null or $1 = 'running')
                      and ($2::text is null or action = $2)
                      and ($3::text is null or document_id = $3)
                      and ($4::text is null or requested_by = $4)
                      and ($5::timestamptz is null or created_at >= $5)
                      and ($6::timestamptz is null or created_at < $6)
                      and ($7::uuid is null or id < $7)
                      and ($9::uuid is null or id = $9)
                      and ($10::text is null or trigger = $10)
                    order by id desc
                    limit $8)
                   union all
                   (select id from jobs
                    where state <> 'running' and ($1::job_state is null or ($1 <> 'running' and state = $1))
                      and ($2::text is null or action = $2)
                      and ($3::text is null or document_id = $3)
                      and ($4::text is null or requested_by = $4)
                      and ($5::timestamptz is null or created_at >= $5)
                      and ($5::timestamptz is null or id >= docket_uuid_v7_floor($5 - interval '1 hour'))
                      and ($6::timestamptz is null or created_at < $6)
                      and ($6::timestamptz is null or id < docket_uuid_v7_floor($6 + interval '1 hour'))
                      and ($7::uuid is null or id < $7)
                      and ($9::uuid is null or id = $9)
                      and ($10::text is null or trigger = $10)
                    order by id desc
                    limit $8)
               ) page
               order by page.id desc
               limit $8))
           order by id desc"#,
        filter.state as Option<JobState>,
        filter.action,
        filter.document_id,
        filter.requested_by,
        filter.created_since,
        filter.created_until,
        cursor.map(|c| c.0),
        limit,
        filter.id.map(|id| id.0),
        filter.trigger,
    )
    .fetch_all(executor)
    .await
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was waiting; it is `cancelled` now.
    Now,
    /// It is running; its worker has been asked to stop it.
    Requested,
    /// It is in another state (or missing).
    NotCancellable,
}

/// Cancels a `queued`/`retrying` job at once (queuing its follow-ups by `rules` in
/// the same statement); asks the worker of a `running` job to stop it (and notifies
/// workers).
pub async fn job_cancel(conn: &mut PgConnection, id: JobId, rules: &FollowUpRules) -> Result<Cancelled, sqlx::Error> {
    let row = sqlx::query!(
        r#"with cancelled as (
               update jobs
               set state = case when state = 'running' then state else 'cancelled'::job_state end,
                   finished_at = case when state = 'running' then finished_at else now() end,
                   cancel_requested_at = case when state = 'running' then now() else cancel_requested_at end,
                   updated_at = now()
               where id = $1 and state in ('queued', 'retrying', 'running')
               returning id, state
           ), followed as (
               select docket_queue_follow_ups(ended.ids, ended.states, $2, $3, $4, $5)
               from (select array_agg(c.id) as ids, array_agg(c.state::text) as states
                     from cancelled c where c.state = 'cancelled') as ended
           )
           select state as "state!: JobState" from cancelled cross join followed"#,
        id as JobId,
        &rules.parents,
        &rules.states,
        &rules.actions,
        &rules.budgets,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row.map(|r| r.state) {
        Some(JobState::Running) => {
            sqlx::query!("select pg_notify($1, $2)", crate::CANCEL_CHANNEL, id.to_string()).fetch_one(conn).await?;
            Ok(Cancelled::Requested)
        }
        Some(_) => Ok(Cancelled::Now),
        None => Ok(Cancelled::NotCancellable),
    }
}

/// Up to `batch` `failed` jobs of `action`, oldest first (through jobs_failed_idx),
/// locked until the caller's transaction ends (jobs another transaction holds are
/// skipped). A bulk retry takes one batch per transaction and hands it to
/// [`jobs_retry`], so no statement holds 100,000 row locks.
pub async fn lock_failed_batch(
    executor: impl PgExecutor<'_>,
    action: &str,
    batch: i64,
) -> Result<Vec<JobId>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id as "id: JobId" from jobs where action = $1 and state = 'failed'
           order by id limit $2 for update skip locked"#,
        action,
        batch,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The one statement that retries jobs: puts the `failed` or `cancelled` jobs among
/// `ids` back in the queue, each with its action's attempt budget (`budgets`: action →
/// attempts; attempt numbers keep counting, so history stays); returns those it
/// retried (jobs in another state, or missing, are left alone).
pub async fn jobs_retry(
    executor: impl PgExecutor<'_>,
    ids: &[JobId],
    budgets: &[(String, i32)],
) -> Result<Vec<JobId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let (actions, budgets): (Vec<String>, Vec<i32>) = budgets.iter().cloned().unzip();
    let rows = sqlx::query!(
        r#"update jobs j set state = 'queued', run_at = now(), max_attempts = j.attempts + b.budget,
                  finished_at = null, cancel_requested_at = null, snoozes = 0, updated_at = now()
           from unnest($2::text[], $3::int4[]) as b (action, budget)
           where j.id = any($1) and j.state in ('failed', 'cancelled') and j.action = b.action
           returning j.id as "id: JobId""#,
        &ids,
        &actions,
        &budgets,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Failed jobs of one action that ended since `since`, grouped by their error, the
/// most frequent first.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    pub error: Option<String>,
    pub jobs: i64,
    pub last_at: DateTime<Utc>,
}

pub async fn failures_by_error(
    executor: impl PgExecutor<'_>,
    action: &str,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<FailureGroup>, sqlx::Error> {
    sqlx::query_as!(
        FailureGroup,
        r#"select last_error as error, count(*) as "jobs!", max(finished_at) as "last_at!"
           from jobs where action = $1 and state = 'failed' and finished_at >= $2
           group by last_error order by 2 desc, 3 desc limit $3"#,
        action,
        since,
        limit
    )
    .fetch_all(executor)
    .await
}

/// One recorded operator action.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct OperatorAction {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub job_ids: Vec<uuid::Uuid>,
    pub detail: Option<String>,
}

pub async fn audit_record(
    executor: impl PgExecutor<'_>,
    actor: &str,
    action: AuditAction,
    job_ids: &[JobId],
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<uuid::Uuid> = job_ids.iter().map(|id| id.0).collect();
    sqlx::query!(
        "insert into operator_actions (actor, action, job_ids, detail) values ($1, $2, $3, $4)",
        actor,
        action.as_str(),
        &ids,
        detail
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Newest operator actions first; only those touching `job` if given.
pub async fn audit_list(
    executor: impl PgExecutor<'_>,
    job: Option<JobId>,
    limit: i64,
) -> Result<Vec<OperatorAction>, sqlx::Error> {
    match job {
        // Through operator_actions_job_ids_idx (GIN): `@>`, not `= any`, can use it.
        Some(job) => {
            sqlx::query_as!(
                OperatorAction,
                r#"select id, at, actor, action as "action: AuditAction", job_ids, detail from operator_actions
                   where job_ids @> array[$1::uuid]
                   order by at desc, id desc limit $2"#,
                job.0,
                limit
            )
            .fetch_all(executor)
            .await
        }
        None => {
            sqlx::query_as!(
                OperatorAction,
                r#"select id, at, actor, action as "action: AuditAction", job_ids, detail from operator_actions
                   order by at desc, id desc limit $1"#,
                limit
            )
            .fetch_all(executor)
            .await
        }
    }
}

/// Jobs by action and state: the live states exactly (a backlog above [`COUNT_CAP`]
/// from the latest sample), the final states those that finished within `window`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateCount {
    pub action: String,
    pub state: JobState,
    pub count: i64,
}

/// Above this many waiting jobs of one action, the figures take the backlog's size from
/// the latest sample (`queue_samples`, at most a few seconds old) instead of counting
/// it on every scrape and page load.
pub const COUNT_CAP: i64 = 10_000;

pub async fn state_counts(executor: &mut PgConnection, window: Duration) -> Result<Vec<StateCount>, sqlx::Error> {
    let waiting = sqlx::query!(
        r#"select w.action as "action!", c.queued as "queued!", c.retrying as "retrying!", c.total as "total!",
                  s.queued as "sampled_queued?", s.retrying as "sampled_retrying?"
           from docket_waiting_actions() w (action)
           cross join lateral (
               select count(*) filter (where x.state = 'queued') as queued,
                      count(*) filter (where x.state = 'retrying') as retrying, count(*) as total
               from (select j.state from jobs j
                     where j.action = w.action and j.state in ('queued', 'retrying')
                     order by j.run_at limit $1::int8 + 1) x
           ) c
           left join lateral (
               select q.queued, q.retrying from queue_samples q
               where q.action = w.action and q.sampled_at > now() - interval '5 minutes' and q.queued is not null
               order by q.minute desc limit 1
           ) s on true"#,
        COUNT_CAP
    )
    .fetch_all(&mut *executor)
    .await?;
    let mut counts = Vec::new();
    for w in waiting {
        let (queued, retrying) = match (w.total > COUNT_CAP, w.sampled_queued, w.sampled_retrying) {
            (true, Some(q), Some(r)) => (q, r),
            _ => (w.queued, w.retrying),
        };
        for (state, count) in [(JobState::Queued, queued), (JobState::Retrying, retrying)] {
            if count > 0 {
                counts.push(StateCount { action: w.action.clone(), state, count });
            }
        }
    }
    let rows = sqlx::query!(
        r#"select action as "action!", state as "state!: JobState", count(*) as "count!" from (
               select action, state from jobs where state = 'running'
               union all
               select action, state from jobs
               where finished_at > now() - make_interval(secs => $1)
           ) live
           group by action, state"#,
        window.as_secs_f64()
    )
    .fetch_all(&mut *executor)
    .await?;
    counts.extend(rows.into_iter().map(|r| StateCount { action: r.action, state: r.state, count: r.count }));
    let order = |s: JobState| JobState::ALL.iter().position(|x| *x == s);
    counts.sort_by(|a, b| (a.action.as_str(), order(a.state)).cmp(&(b.action.as_str(), order(b.state))));
    Ok(counts)
}

/// How long the oldest due job of each action has been waiting (one index probe per
/// action with waiting jobs, whatever the backlog).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub action: String,
    pub oldest_due_at: DateTime<Utc>,
    pub lag_seconds: f64,
}

pub async fn lag_per_action(executor: impl PgExecutor<'_>) -> Result<Vec<Lag>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select action as "action!", oldest as "oldest!", extract(epoch from now() - oldest)::float8 as "lag!"
           from (select w.action,
                        (select min(j.run_at) from jobs j
                         where j.action = w.action and j.state in ('queued', 'retrying') and j.run_at <= now()) as oldest
                 from docket_waiting_actions() w (action)) due
           where oldest is not null
           order by action"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| Lag { action: r.action, oldest_due_at: r.oldest, lag_seconds: r.lag }).collect())
}

/// Jobs that finished in one minute, by final state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Minute {
    pub minute: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// Completions per minute over the last hour (minutes without any are left out).
pub async fn throughput_last_hour(executor: impl PgExecutor<'_>) -> Result<Vec<Minute>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select date_trunc('minute', finished_at) as "minute!",
                  count(*) filter (where state = 'succeeded') as "succeeded!",
                  count(*) filter (where state = 'failed') as "failed!",
                  count(*) filter (where state = 'cancelled') as "cancelled!"
           from jobs where finished_at > now() - interval '1 hour'
           group by 1 order by 1"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Minute { minute: r.minute, succeeded: r.succeeded, failed: r.failed, cancelled: r.cancelled })
        .collect())
}

/// Deletes up to `batch` jobs in `states` that finished more than `age` ago (their
/// attempts go with their day's partition, [`super::partitions`]). Only one process
/// prunes at a time: the others get 0 at
/// once (a transaction-level advisory lock, safe behind a pooler).
pub async fn jobs_prune(
    executor: impl PgExecutor<'_>,
    states: &[JobState],
    age: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"with pruner as (
               select pg_try_advisory_xact_lock(100111099107101117) as is_pruner
           ), victims as (
               select id from jobs
               where state = any($1) and finished_at < now() - make_interval(secs => $2)
                 and (select is_pruner from pruner)
               order by finished_at
               limit $3
               for update skip locked
           )
           delete from jobs where id in (select id from victims)"#,
        states as &[JobState],
        age.as_secs_f64(),
        batch,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
