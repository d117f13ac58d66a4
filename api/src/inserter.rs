//! Group commit for the enqueue path. Handlers hand their job to a few writer tasks;
//! each writer takes every job waiting at that moment (up to the batch size) and stores
//! them with one multi-row `INSERT` and one commit, then answers each handler. Under
//! light load a batch is one job, so nothing waits for company; under heavy load one
//! commit (one WAL flush) serves many requests. Every handler still replies only
//! after its own row is committed.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use docket::db::jobs::{self, NewJob};
use docket::db::Db;
use docket::domain::JobId;

use crate::notifier::Notifier;

/// Why a job was not stored.
pub type StoreError = Arc<sqlx::Error>;

struct Pending {
    job: NewJob,
    stored: oneshot::Sender<Result<JobId, StoreError>>,
}

#[derive(Clone)]
pub struct Inserter {
    queue: mpsc::Sender<Pending>,
}

impl Inserter {
    /// Starts `writers` writer tasks (one database connection each while writing).
    pub fn spawn(db: Db, notifier: Notifier, writers: usize, max_batch: u32) -> Self {
        let max_batch = max_batch.max(1) as usize;
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(db.clone(), notifier.clone(), receiver.clone(), max_batch));
        }
        Self { queue }
    }

    /// Stores one job; returns once its row is committed, with its id — or, for a
    /// duplicate trigger, the id of the live job it duplicates.
    pub async fn insert(&self, job: NewJob) -> Result<JobId, StoreError> {
        let (stored, done) = oneshot::channel();
        let closed = || Arc::new(sqlx::Error::PoolClosed);
        self.queue.send(Pending { job, stored }).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }
}

async fn write_batches(db: Db, notifier: Notifier, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Only the gathering holds the lock: another writer gathers while this one writes.
        let received = receiver.lock().await.recv_many(&mut batch, max_batch).await;
        if received == 0 {
            return;
        }
        let jobs: Vec<NewJob> = batch.iter().map(|p| p.job.clone()).collect();
        let inline = notifier.take_quiet();
        let result = store(&db, &jobs, inline).await.map_err(Arc::new);
        if result.is_ok() && !inline {
            notifier.wake();
        }
        for (n, pending) in batch.drain(..).enumerate() {
            let stored = match &result {
                Ok(ids) => ids[n].ok_or_else(unsettled),
                Err(e) => Err(e.clone()),
            };
            let _ = pending.stored.send(stored);
        }
    }
}

/// Stores the batch and returns, for each job, the id that stands for it: its own, or
/// that of the live job it duplicates. A duplicate can finish between the insert and
/// the look-up; such jobs are inserted again (a few rounds at most).
async fn store(db: &Db, jobs: &[NewJob], notify: bool) -> Result<Vec<Option<JobId>>, sqlx::Error> {
    let inserted: HashSet<JobId> = insert(db, jobs, notify).await?.into_iter().collect();
    let mut ids: Vec<Option<JobId>> = jobs.iter().map(|j| inserted.contains(&j.id).then_some(j.id)).collect();
    for _ in 0..3 {
        let open: Vec<usize> = (0..jobs.len()).filter(|&n| ids[n].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let subset: Vec<NewJob> = open.iter().map(|&n| jobs[n].clone()).collect();
        let resolved = db.run(async |c| jobs::resolve(c, &subset).await).await?;
        let mut again = Vec::new();
        for (k, id) in resolved.into_iter().enumerate() {
            match id {
                Some(id) => ids[open[k]] = Some(id),
                None => again.push(open[k]),
            }
        }
        if again.is_empty() {
            break;
        }
        let subset: Vec<NewJob> = again.iter().map(|&n| jobs[n].clone()).collect();
        let inserted: HashSet<JobId> = insert(db, &subset, false).await?.into_iter().collect();
        for n in again {
            if inserted.contains(&jobs[n].id) {
                ids[n] = Some(jobs[n].id);
            }
        }
    }
    Ok(ids)
}

/// Inserts, retrying on dead pooled connections and serialization failures. Safe to
/// repeat: ids already stored by a try that did commit are skipped.
async fn insert(db: &Db, jobs: &[NewJob], notify: bool) -> Result<Vec<JobId>, sqlx::Error> {
    docket::db::retry_transient(|| db.run(async |c| jobs::insert_many(c, jobs, notify).await)).await
}

/// A duplicate that kept finishing while its trigger was being stored.
fn unsettled() -> StoreError {
    Arc::new(sqlx::Error::Protocol("duplicate trigger did not settle".into()))
}
