//! Records the ends of attempts in batches: every completion and release waiting in
//! the channel goes to Postgres in one fenced statement.

use std::time::Duration;

use tokio::sync::mpsc;

use docket::db::jobs::NextState;
use docket::db::{self, jobs, Db};
use std::sync::Arc;

use crate::due::Due;
use docket::domain::JobId;

/// Most completions written in one statement.
const BATCH: usize = 512;

/// What the completer writes.
#[derive(Debug)]
pub enum Finished {
    Completed {
        completion: jobs::Completion,
        action: String,
    },
    /// Give the job back to the queue (the attempt is recorded `interrupted`).
    Released {
        id: JobId,
        attempt: i32,
        action: String,
        reason: String,
    },
}

/// Writes until every sender is dropped and the channel is empty.
/// Retries it recorded are remembered in `due`, so that the claim loop wakes for them.
pub async fn record(db: Db, worker_id: String, due: Arc<Due>, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut completions = Vec::new();
        let mut actions = Vec::new();
        let mut releases: Vec<((JobId, i32), String, String)> = Vec::new();
        for finished in batch.drain(..) {
            match finished {
                Finished::Completed { completion, action } => {
                    completions.push(completion);
                    actions.push(action);
                }
                Finished::Released { id, attempt, action, reason } => releases.push(((id, attempt), action, reason)),
            }
        }
        if !completions.is_empty() {
            write_completions(&db, &worker_id, &due, &completions, &actions).await;
        }
        for (held, action, reason) in releases {
            let one = [held];
            let result = persist(|| db.run(async |c| jobs::release(c, &worker_id, &one, &reason).await)).await;
            if let Ok(released) = result {
                if released.is_empty() {
                    tracing::warn!(job.id = %held.0, job.action = %action, "not released: the lease was already lost");
                } else {
                    tracing::info!(job.id = %held.0, job.action = %action, reason = %reason, "job released to other workers");
                }
            }
        }
    }
}

async fn write_completions(db: &Db, worker_id: &str, due: &Due, completions: &[jobs::Completion], actions: &[String]) {
    let Ok(applied) = persist(|| db.run(async |c| jobs::complete(c, worker_id, completions).await)).await else {
        return;
    };
    let written = tokio::time::Instant::now();
    for c in completions.iter().filter(|c| applied.contains(&c.id)) {
        if let NextState::Retry(delay) = c.next {
            due.schedule(written + delay);
        }
    }
    if applied.len() < completions.len() {
        for (c, action) in completions.iter().zip(actions).filter(|(c, _)| !applied.contains(&c.id)) {
            tracing::warn!(
                job.id = %c.id, job.action = %action, attempt = c.attempt, outcome = c.outcome.as_str(),
                "result rejected: this worker no longer holds the job's lease (another worker took it over)"
            );
        }
    }
}

/// Retries a write while the database is unreachable, for up to about a minute;
/// after that the lease has expired anyway and another worker reruns the job.
async fn persist<T, F, Fut>(mut op: F) -> Result<T, ()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut wait = Duration::from_millis(50);
    for _ in 0..12 {
        match db::retry_transient(&mut op).await {
            Ok(value) => return Ok(value),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "could not record attempt results");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::error!("gave up recording attempt results; the jobs will be rescued when their leases expire");
    Err(())
}
