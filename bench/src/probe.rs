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

/// The raw lifecycle's claim: up to `batch` due jobs of the bench's one action (the
/// claim index is keyed by action), running, with attempt rows.
/// Returns (id, attempt) of each.
pub async fn raw_claim(pool: &PgPool, worker: &str, batch: i64) -> anyhow::Result<Vec<(uuid::Uuid, i32)>> {
    Ok(sqlx::query_as(
        "with due as (
             select id from jobs where state in ('queued', 'retrying') and action = 'noop' and run_at <= now()
             order by run_at, id limit $1 for update skip locked
         ), claimed as (
             update jobs j set state = 'running', attempts = j.attempts + 1, lease_owner = $2,
                 lease_expires_at = now() + interval '30 seconds', updated_at = now()
             from due where j.id = due.id
             returning j.id, j.attempts
         ), started as (
             insert into job_attempts (job_id, attempt, worker_id) select id, attempts, $2 from claimed
         )
         select id, attempts from claimed",
    )
    .bind(batch)
    .bind(worker)
    .fetch_all(pool)
    .await?)
}

/// The raw lifecycle's completion: the jobs succeeded, their attempts recorded.
pub async fn raw_complete(pool: &PgPool, worker: &str, claimed: &[(uuid::Uuid, i32)]) -> anyhow::Result<()> {
    let ids: Vec<uuid::Uuid> = claimed.iter().map(|c| c.0).collect();
    let attempts: Vec<i32> = claimed.iter().map(|c| c.1).collect();
    sqlx::query(
        "with done as (
             update jobs j set state = 'succeeded', finished_at = now(), lease_owner = null,
                 lease_expires_at = null, updated_at = now()
             from unnest($1::uuid[], $2::int4[]) as i(id, attempt)
             where j.id = i.id and j.state = 'running' and j.lease_owner = $3 and j.attempts = i.attempt
             returning j.id, j.attempts
         )
         update job_attempts a set finished_at = now(), outcome = 'succeeded'
         from done d where a.job_id = d.id and a.attempt = d.attempts",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn count_jobs(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from jobs").fetch_one(pool).await?)
}

/// Jobs not yet finished (scans the table).
pub async fn count_unfinished(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from jobs where state in ('queued', 'retrying', 'running')")
        .fetch_one(pool)
        .await?)
}

/// Attempts the workers ended so far, all outcomes, from their `/metrics`.
pub async fn attempts_ended(client: &reqwest::Client, health: &[&str]) -> anyhow::Result<u64> {
    let mut ended = 0.0;
    for base in health {
        let text = client.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
        ended += text
            .lines()
            .filter(|line| line.starts_with("docket_attempts_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(ended as u64)
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
