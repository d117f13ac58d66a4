//! Group commit for the enqueue path. Handlers hand their job to a few writer tasks;
//! each writer takes every job waiting at that moment (up to the batch size) and stores
//! them with one multi-row `INSERT` and one commit, then answers each handler. Under
//! light load a batch is one job, so nothing waits for company; under heavy load one
//! commit (one WAL flush) serves many requests. Every handler still replies only
//! after its own row is committed.
//!
//! The reply matches the database: a request's deadline can pass only before a writer
//! has taken its job (the job is then never written: [`Handoff`] decides which came
//! first); once taken, the handler waits for the outcome of the write. A write whose outcome is unknown (the connection
//! broke or stalled during it) is repeated, which is safe because ids already stored
//! are skipped and then found, until the write bound passes: only then is the outcome
//! reported unknown ([`StoreError::OutcomeUnknown`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::Instant;

use docket::db::jobs::{self, NewJob};
use docket::db::Db;
use docket::domain::JobId;

use crate::notifier::Notifier;

/// Why a job was not stored (or may not have been).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The request's deadline passed before a writer took the job: nothing was written.
    #[error("the request's deadline passed before its job was written; nothing was stored")]
    NotWritten,
    /// The database refused the write: nothing was stored.
    #[error("the database refused the write: {0}")]
    Database(Arc<sqlx::Error>),
    /// The write was sent but its outcome could not be learnt within the write bound
    /// (the database stalled or the connection broke during the commit).
    #[error("outcome of the write unknown after {0:?}: {1}")]
    OutcomeUnknown(Duration, String),
    /// A duplicate that kept finishing while its trigger was being stored.
    #[error("a duplicate trigger did not settle")]
    Unsettled,
    /// The api is shutting down.
    #[error("the api is shutting down")]
    Closed,
}

struct Pending {
    job: NewJob,
    handoff: Arc<Handoff>,
    stored: oneshot::Sender<Result<JobId, StoreError>>,
}

/// Who decides a queued job's fate: the writer that takes it (then it is written and
/// the handler waits for the outcome) or the handler whose deadline passed first
/// (then it is never written). Exactly one of them wins.
#[derive(Default)]
struct Handoff(AtomicU8);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Handoff {
    fn take(&self) -> bool {
        self.0.compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn abandon(&self) -> bool {
        self.0.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[derive(Clone)]
pub struct Inserter {
    queue: mpsc::Sender<Pending>,
}

impl Inserter {
    /// Starts `writers` writer tasks (one database connection each while writing).
    /// A write whose outcome is unknown is repeated for up to `write_bound`.
    pub fn spawn(db: Db, notifier: Notifier, writers: usize, max_batch: u32, write_bound: Duration) -> Self {
        let max_batch = max_batch.max(1) as usize;
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            let writer = Writer { db: db.clone(), notifier: notifier.clone(), write_bound };
            tokio::spawn(writer.write_batches(receiver.clone(), max_batch));
        }
        Self { queue }
    }

    /// Stores one job; returns once its row is committed, with its id — or, for a
    /// duplicate trigger, the id of the live job it duplicates. If `deadline` passes
    /// before a writer has taken the job, it is not written ([`StoreError::NotWritten`]);
    /// after that, this waits for the write's outcome.
    pub async fn insert(&self, job: NewJob, deadline: Instant) -> Result<JobId, StoreError> {
        let (stored, mut done) = oneshot::channel();
        let handoff = Arc::new(Handoff::default());
        let pending = Pending { job, handoff: handoff.clone(), stored };
        match tokio::time::timeout_at(deadline, self.queue.send(pending)).await {
            Err(_) => return Err(StoreError::NotWritten),
            Ok(Err(_)) => return Err(StoreError::Closed),
            Ok(Ok(())) => {}
        }
        tokio::select! {
            outcome = &mut done => return outcome.map_err(|_| StoreError::Closed)?,
            _ = tokio::time::sleep_until(deadline) => {}
        }
        if handoff.abandon() {
            return Err(StoreError::NotWritten);
        }
        // A writer took the job first: wait for the outcome of its write.
        done.await.map_err(|_| StoreError::Closed)?
    }
}

struct Writer {
    db: Db,
    notifier: Notifier,
    write_bound: Duration,
}

/// The first try of a write, and each repetition, may take this long before its
/// outcome counts as unknown.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

impl Writer {
    async fn write_batches(self, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        loop {
            // Only the gathering holds the lock: another writer gathers while this one writes.
            let received = receiver.lock().await.recv_many(&mut batch, max_batch).await;
            if received == 0 {
                return;
            }
            // Jobs whose request gave up waiting are dropped, not written.
            let batch_now: Vec<Pending> = batch.drain(..).filter(|p| p.handoff.take()).collect();
            if batch_now.is_empty() {
                continue;
            }
            let jobs: Vec<NewJob> = batch_now.iter().map(|p| p.job.clone()).collect();
            let inline = self.notifier.take_quiet();
            let result = self.store(&jobs, inline).await;
            if result.is_ok() && !inline {
                self.notifier.wake();
            }
            for (n, pending) in batch_now.into_iter().enumerate() {
                let stored = match &result {
                    Ok(ids) => ids[n].ok_or(StoreError::Unsettled),
                    Err(e) => Err(e.clone()),
                };
                let _ = pending.stored.send(stored);
            }
        }
    }

    /// Writes the batch, repeating a write whose outcome is unknown until it is known
    /// or the write bound has passed.
    async fn store(&self, jobs: &[NewJob], notify: bool) -> Result<Vec<Option<JobId>>, StoreError> {
        let give_up_at = Instant::now() + self.write_bound;
        let mut wait = Duration::from_millis(50);
        // Whether an earlier try may have committed: then a refusal of a later try
        // does not mean that nothing was stored.
        let mut maybe_written = false;
        loop {
            let try_until = (Instant::now() + TRY_TIMEOUT).min(give_up_at);
            let unknown = match tokio::time::timeout_at(try_until, store(&self.db, jobs, notify)).await {
                Ok(Ok(ids)) => return Ok(ids),
                // Refused by the database (or no connection to be had): nothing was
                // written.
                Ok(Err(e)) if !maybe_written && !outcome_unknown(&e) => {
                    return Err(StoreError::Database(Arc::new(e)));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the database did not answer in time".to_owned(),
            };
            maybe_written = true;
            if Instant::now() + wait >= give_up_at {
                let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
                tracing::error!(job.ids = ?ids, error = %unknown,
                    "gave up learning whether these jobs were stored; they may exist and run although \
                     their requests were answered 503");
                return Err(StoreError::OutcomeUnknown(self.write_bound, unknown));
            }
            tracing::warn!(error = %unknown, retry_in = ?wait, "outcome of a write unknown; writing again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }
}

/// Whether an error leaves open whether the statement committed: the connection broke
/// while it was in flight. Errors Postgres sent, and a pool that had no connection to
/// give (the statement was never sent), do not.
fn outcome_unknown(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_))
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
