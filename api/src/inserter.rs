//! Group commit for the enqueue path. Handlers hand their job to a few writer tasks;
//! each writer takes every job waiting at that moment (up to the batch size) and stores
//! them with one multi-row `INSERT` and one commit, then answers each handler. Under
//! light load a batch is one job, so nothing waits for company; under heavy load one
//! commit (one WAL flush) serves many requests. Every handler still replies only
//! after its own row is committed.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use docket::db::jobs::{self, NewJob};

use crate::notifier::Notifier;

/// Why a job was not stored.
pub type StoreError = Arc<sqlx::Error>;

struct Pending {
    job: NewJob,
    stored: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Clone)]
pub struct Inserter {
    queue: mpsc::Sender<Pending>,
}

impl Inserter {
    /// Starts `writers` writer tasks (one database connection each while writing).
    pub fn spawn(pool: PgPool, notifier: Notifier, writers: usize, max_batch: u32) -> Self {
        let max_batch = max_batch.max(1) as usize;
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), notifier.clone(), receiver.clone(), max_batch));
        }
        Self { queue }
    }

    /// Stores one job; returns once its row is committed.
    pub async fn insert(&self, job: NewJob) -> Result<(), StoreError> {
        let (stored, done) = oneshot::channel();
        let closed = || Arc::new(sqlx::Error::PoolClosed);
        self.queue.send(Pending { job, stored }).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }
}

async fn write_batches(
    pool: PgPool,
    notifier: Notifier,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Only the gathering holds the lock: another writer gathers while this one writes.
        let received = receiver.lock().await.recv_many(&mut batch, max_batch).await;
        if received == 0 {
            return;
        }
        let jobs: Vec<NewJob> = batch.iter().map(|p| p.job.clone()).collect();
        let inline = notifier.take_quiet();
        let result = store(&pool, &jobs, inline).await.map_err(Arc::new);
        if result.is_ok() && !inline {
            notifier.wake();
        }
        for pending in batch.drain(..) {
            let _ = pending.stored.send(result.clone());
        }
    }
}

/// Inserts the batch; on a broken connection tries once more on a fresh one. The
/// retry is safe: ids already stored by a first try that did commit are skipped.
async fn store(pool: &PgPool, jobs: &[NewJob], notify: bool) -> Result<(), sqlx::Error> {
    match jobs::insert_many(pool, jobs, notify).await {
        Err(e) if is_connection_error(&e) => {
            tracing::warn!(error = %e, "connection failed while storing jobs; retrying once");
            jobs::insert_many(pool, jobs, notify).await.map(drop)
        }
        other => other.map(drop),
    }
}

fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))
}
