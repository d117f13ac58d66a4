//! The benchmark's own SQL: measuring, not part of Docket (whose SQL is in
//! `docket::db`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Current WAL position, in bytes.
pub async fn wal_position(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").fetch_one(pool).await?)
}

/// A raw single-row INSERT of a jobs-shaped row: the baseline's unit of work.
pub async fn raw_insert(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts)
         values ($1, 'noop', $2, 'v1', 'bench@example.com', 8)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(format!("doc-{n}"))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn count_jobs(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from jobs").fetch_one(pool).await?)
}

/// Jobs waiting to be claimed; cheap (reads only the claim index), so it can be
/// polled during a drain without loading the database.
pub async fn count_waiting(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from jobs where state in ('queued', 'retrying')").fetch_one(pool).await?)
}

/// Jobs not yet finished (scans the table).
pub async fn count_unfinished(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from jobs where state in ('queued', 'retrying', 'running')")
        .fetch_one(pool)
        .await?)
}

/// (succeeded jobs, attempt rows, succeeded attempts)
pub async fn completion_counts(pool: &PgPool) -> anyhow::Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "select (select count(*) from jobs where state = 'succeeded'),
                (select count(*) from job_attempts),
                (select count(*) from job_attempts where outcome = 'succeeded')",
    )
    .fetch_one(pool)
    .await?)
}

pub async fn db_now(pool: &PgPool) -> anyhow::Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("select clock_timestamp()").fetch_one(pool).await?)
}

pub async fn last_finished(pool: &PgPool) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar("select max(finished_at) from jobs").fetch_one(pool).await?)
}

/// Per job: (id, created_at, first attempt started_at, finished_at).
pub async fn job_times(
    pool: &PgPool,
) -> anyhow::Result<Vec<(uuid::Uuid, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>)>> {
    Ok(sqlx::query_as(
        "select j.id, j.created_at, a.started_at, j.finished_at
         from jobs j left join job_attempts a on a.job_id = j.id and a.attempt = 1",
    )
    .fetch_all(pool)
    .await?)
}
