//! Statements on `workers`: registration, heartbeats, clean-up, the live list.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

/// A worker as it registers itself.
#[derive(Debug, Clone)]
pub struct NewWorker {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub actions: Vec<String>,
    pub concurrency: i32,
}

/// A `workers` row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub actions: Vec<String>,
    pub concurrency: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// A worker counts as live while its heartbeat is younger than this.
pub const LIVE_WITHIN: Duration = Duration::from_secs(30);

pub async fn register(executor: impl PgExecutor<'_>, worker: &NewWorker) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into workers (id, host, pid, version, actions, concurrency) values ($1, $2, $3, $4, $5, $6)
         on conflict (id) do update set host = excluded.host, pid = excluded.pid, version = excluded.version,
             actions = excluded.actions, concurrency = excluded.concurrency, heartbeat_at = now()",
        worker.id,
        worker.host,
        worker.pid,
        worker.version,
        &worker.actions,
        worker.concurrency,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Refreshes the heartbeat; false if the row is gone (cleaned up as stale).
pub async fn heartbeat(executor: impl PgExecutor<'_>, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("update workers set heartbeat_at = now() where id = $1", id).execute(executor).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn deregister(executor: impl PgExecutor<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from workers where id = $1", id).execute(executor).await?;
    Ok(())
}

/// Deletes workers whose heartbeat is older than `age`; returns how many.
pub async fn delete_stale(executor: impl PgExecutor<'_>, age: Duration) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query!("delete from workers where heartbeat_at < now() - make_interval(secs => $1)", age.as_secs_f64())
            .execute(executor)
            .await?;
    Ok(done.rows_affected())
}

/// Workers with a fresh heartbeat, oldest first.
pub async fn list_live(executor: impl PgExecutor<'_>) -> Result<Vec<WorkerRow>, sqlx::Error> {
    sqlx::query_as!(
        WorkerRow,
        "select id, host, pid, version, actions, concurrency, started_at, heartbeat_at from workers
         where heartbeat_at > now() - make_interval(secs => $1) order by started_at",
        LIVE_WITHIN.as_secs_f64()
    )
    .fetch_all(executor)
    .await
}
