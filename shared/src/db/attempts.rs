//! Statements on `job_attempts` alone (claim and completion write attempts together
//! with their job, in [`super::jobs`]).

use sqlx::PgExecutor;

use super::jobs::AttemptRow;
use crate::domain::{AttemptOutcome, JobId};

/// The attempts of one job, oldest first.
pub async fn list(executor: impl PgExecutor<'_>, job_id: JobId) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as!(
        AttemptRow,
        r#"select job_id as "job_id: JobId", attempt, worker_id, started_at, finished_at,
                  outcome as "outcome: AttemptOutcome", error
           from job_attempts where job_id = $1 order by attempt"#,
        job_id as JobId,
    )
    .fetch_all(executor)
    .await
}
