//! Group commit for the enqueue path. Handlers hand their job to a few writer tasks;
//! each writer takes every job waiting at that moment (up to the batch size) and stores
//! them with one multi-row `INSERT` and one commit, then answers each handler. Under
//! light load a batch is one job, so nothing waits for company; under heavy load one
//! commit (one WAL flush) serves many requests. Every handler still replies only
//! after its own row is committed.
//!
//! The reply matches the database: a request's deadline can pass only before a writer
//! has taken its job (the job is then never written: [`Handoff`] decides which came
//! first); once taken, the handler waits for the outcome of the write. A write that
//! could not be sent (no connection, or the database is away: [`docket::db::Reach`])
//! is answered at once, nothing stored. A write whose outcome is unknown (the
//! connection broke or stalled during it) is handed to a task of its own, so the
//! writer goes on with the next batch, and repeated as soon as the database answers,
//! which is safe because ids already stored are skipped and then found, until the
//! write bound passes: only then is the outcome reported unknown
//! ([`StoreError::OutcomeUnknown`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use docket::db::jobs::{self, NewJob};
use docket::db::reach::is_connection_error;
use docket::db::{Db, UnitError};
use docket::domain::JobId;
use docket::retry::Backoff;

use crate::batches::Batches;
use crate::notifier::Notifier;

/// Why a job was not stored (or may not have been).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The request's deadline passed before a writer took the job: nothing was written.
    #[error("the request's deadline passed before its job was written; nothing was stored")]
    NotWritten,
    /// No connection to the database could be had, or it is away: nothing was sent.
    #[error("the database is unreachable; nothing was stored: {0}")]
    Unavailable(Arc<sqlx::Error>),
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

/// How many writer tasks: two. One batch is written at a time while batches are not
/// full ([`crate::batches`]), so the second writes only while a backlog fills whole
/// batches. Each batch costs a commit (a WAL flush), and more writers in flight split
/// the same requests into smaller batches: with one per pooled connection (8) and 32
/// clients, a batch held 2.8 jobs and the intake ran at 0.71x pgbench's single-row
/// inserts; with two taking turns only to gather, 1.13x (`docket-bench --only enqueue`,
/// 2026-12-04). Without grouping (`DOCKET_API_INSERT_BATCH=1`) each write is one job
/// (every batch is full), and every pooled connection gets a writer, as before
/// grouping existed.
pub fn writers(insert_batch: u32, db_connections: u32) -> usize {
    match insert_batch {
        1 => db_connections as usize,
        _ => 2.min(db_connections as usize),
    }
}

impl Inserter {
    /// Starts `writers` writer tasks (one database connection each while writing).
    /// A write whose outcome is unknown is repeated for up to `write_bound`.
    pub fn spawn(db: Db, notifier: Notifier, writers: usize, max_batch: u32, write_bound: Duration) -> Self {
        let max_batch = max_batch.max(1) as usize;
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let batches = Batches::new(receiver, max_batch);
        for _ in 0..writers.max(1) {
            let writer = Arc::new(Writer { db: db.clone(), notifier: notifier.clone(), write_bound });
            tokio::spawn(writer.write_batches(batches.clone(), max_batch));
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

/// How one try of a write ended.
enum Tried {
    /// Stored: for each job, the id that stands for it.
    Stored(Vec<Option<JobId>>),
    /// Not stored, and known to be so.
    NotStored(StoreError),
    /// It may have committed: the connection broke or stalled after it was sent.
    Unknown(String),
}

impl Writer {
    async fn write_batches(self: Arc<Self>, batches: Batches<Pending>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        // Held until the batch is written (or handed off): the next gathers what
        // arrives meanwhile.
        while let Some(_turn) = batches.next(&mut batch).await {
            // Jobs whose request gave up waiting are dropped, not written.
            let batch_now: Vec<Pending> = batch.drain(..).filter(|p| p.handoff.take()).collect();
            if batch_now.is_empty() {
                continue;
            }
            let jobs: Vec<NewJob> = batch_now.iter().map(|p| p.job.clone()).collect();
            let inline = self.notifier.take_quiet();
            match self.try_store(&jobs, inline).await {
                Tried::Stored(ids) => self.answer(batch_now, Ok(ids), inline),
                Tried::NotStored(e) => self.answer(batch_now, Err(e), inline),
                // Only this batch waits to learn its outcome; the writer goes on with
                // the next, which is told the truth at once (the database being away
                // refuses it before anything is sent).
                Tried::Unknown(why) => {
                    let writer = self.clone();
                    tokio::spawn(async move {
                        let outcome = writer.learn_outcome(&jobs, why).await;
                        writer.answer(batch_now, outcome, false);
                    });
                }
            }
        }
    }

    /// Answers every request of the batch, and wakes the workers for stored jobs that
    /// the insert did not announce itself.
    fn answer(&self, batch: Vec<Pending>, result: Result<Vec<Option<JobId>>, StoreError>, announced: bool) {
        if result.is_ok() && !announced {
            self.notifier.wake();
        }
        for (n, pending) in batch.into_iter().enumerate() {
            let stored = match &result {
                Ok(ids) => ids[n].ok_or(StoreError::Unsettled),
                Err(e) => Err(e.clone()),
            };
            let _ = pending.stored.send(stored);
        }
    }

    /// One try of the write, bounded by [`TRY_TIMEOUT`].
    async fn try_store(&self, jobs: &[NewJob], notify: bool) -> Tried {
        match tokio::time::timeout(TRY_TIMEOUT, store(&self.db, jobs, notify)).await {
            Ok(Ok(ids)) => Tried::Stored(ids),
            Ok(Err(Failure::NotSent(e))) => Tried::NotStored(StoreError::Unavailable(Arc::new(e))),
            Ok(Err(Failure::Refused(e))) => Tried::NotStored(StoreError::Database(Arc::new(e))),
            Ok(Err(Failure::Unknown(why))) => Tried::Unknown(why),
            Err(_) => Tried::Unknown("the database did not answer in time".to_owned()),
        }
    }

    /// Learns the outcome of a write that may have committed by writing it again as
    /// soon as the database answers (safe: ids already stored are skipped and then
    /// found), until the write bound passes. A repeat that is refused says nothing
    /// about the first try, so it is tried again too.
    async fn learn_outcome(&self, jobs: &[NewJob], mut unknown: String) -> Result<Vec<Option<JobId>>, StoreError> {
        let give_up_at = Instant::now() + self.write_bound;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let wait = backoff.next_delay();
            if Instant::now() + wait >= give_up_at {
                let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
                tracing::error!(job.ids = ?ids, error = %unknown,
                    "gave up learning whether these jobs were stored; they may exist and run although \
                     their requests were answered 503");
                return Err(StoreError::OutcomeUnknown(self.write_bound, unknown));
            }
            tracing::warn!(error = %unknown, retry_in = ?wait, "outcome of a write unknown; writing again");
            let _ = tokio::time::timeout_at(give_up_at, self.db.reach().wait_back()).await;
            tokio::time::sleep(wait).await;
            unknown = match self.try_store(jobs, false).await {
                Tried::Stored(ids) => return Ok(ids),
                Tried::NotStored(e) => e.to_string(),
                Tried::Unknown(why) => why,
            };
        }
    }
}

/// Why a write failed, as far as the database's state goes.
enum Failure {
    /// Nothing was sent (no connection, or the database is away).
    NotSent(sqlx::Error),
    /// The database refused it: nothing was stored.
    Refused(sqlx::Error),
    /// It may have committed.
    Unknown(String),
}

impl Failure {
    /// `after_commit`: an earlier statement of this write committed, so no later
    /// failure means that nothing was stored.
    fn of(error: UnitError, after_commit: bool) -> Self {
        match error {
            UnitError::Failed(e) if is_connection_error(&e) => Self::Unknown(e.to_string()),
            e if after_commit => Self::Unknown(e.into_inner().to_string()),
            UnitError::NotSent(e) => Self::NotSent(e),
            UnitError::Failed(e) => Self::Refused(e),
        }
    }
}

/// Stores the batch and returns, for each job, the id that stands for it: its own, or
/// that of the live job it duplicates. A duplicate can finish between the insert and
/// the look-up; such jobs are inserted again (a few rounds at most).
async fn store(db: &Db, jobs: &[NewJob], notify: bool) -> Result<Vec<Option<JobId>>, Failure> {
    let inserted: HashSet<JobId> =
        insert(db, jobs, notify).await.map_err(|e| Failure::of(e, false))?.into_iter().collect();
    let mut ids: Vec<Option<JobId>> = jobs.iter().map(|j| inserted.contains(&j.id).then_some(j.id)).collect();
    for _ in 0..3 {
        let open: Vec<usize> = (0..jobs.len()).filter(|&n| ids[n].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let subset: Vec<NewJob> = open.iter().map(|&n| jobs[n].clone()).collect();
        let resolved =
            db.run_unit(async |c| jobs::resolve(c, &subset).await).await.map_err(|e| Failure::of(e, true))?;
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
        let inserted: HashSet<JobId> =
            insert(db, &subset, false).await.map_err(|e| Failure::of(e, true))?.into_iter().collect();
        for n in again {
            if inserted.contains(&jobs[n].id) {
                ids[n] = Some(jobs[n].id);
            }
        }
    }
    Ok(ids)
}

/// Inserts, retrying at once on serialization failures and deadlocks. Safe to repeat:
/// ids already stored by a try that did commit are skipped.
async fn insert(db: &Db, jobs: &[NewJob], notify: bool) -> Result<Vec<JobId>, UnitError> {
    let mut tries = 0;
    loop {
        match db.run_unit(async |c| jobs::insert_many(c, jobs, notify).await).await {
            Err(UnitError::Failed(e)) if docket::db::is_transient(&e) && tries < 5 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transient database error; inserting again");
            }
            other => return other,
        }
    }
}
