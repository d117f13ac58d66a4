//! Group commit for the event intake, as [`crate::inserter`] is for `/customAction`.
//! Handlers hand their delivery to the writer tasks; a writer takes every delivery
//! waiting at that moment (up to `DOCKET_API_INSERT_BATCH` deliveries) and records them
//! with one statement and one commit ([`events::record_many`]), then answers each
//! handler. One batch is written at a time unless batches fill up ([`crate::batches`]).
//! Under light load a batch is one delivery; under load one commit serves many, and
//! one statement's fixed cost (parse, plan, executor start) is shared.
//!
//! Each handler's answer is what the database did with its delivery: a batch the
//! database refuses is recorded again one delivery at a time, so that a delivery it
//! will not take fails alone. A write whose outcome is unknown (the connection broke
//! while it ran) is answered "unavailable", as a single delivery's was before
//! batching: Workfront delivers again, and the event's identity makes that redelivery
//! find the first.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use docket::db::events::{self, Delivery, Recorded};
use docket::db::{Db, UnitError};

use crate::batches::Batches;
use crate::notifier::Notifier;

/// Why a delivery was not recorded (or may not have been).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Nothing was sent (no connection, or the database is away), or the connection
    /// broke while the write ran (its outcome is unknown; a redelivery finds it).
    #[error("the database is unreachable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    /// The database refused this delivery: nothing was stored.
    #[error("the database refused the write: {0}")]
    Refused(Arc<sqlx::Error>),
    /// The api is shutting down.
    #[error("the api is shutting down")]
    Closed,
}

struct Pending {
    delivery: Delivery,
    recorded: oneshot::Sender<Result<Recorded, WriteError>>,
}

#[derive(Clone)]
pub struct EventWriter {
    queue: mpsc::Sender<Pending>,
}

/// Two writers: the second writes only while a full batch leaves more waiting
/// ([`crate::batches`]).
const WRITERS: usize = 2;

impl EventWriter {
    /// Starts the writer tasks; a batch holds at most `max_batch` deliveries.
    pub fn spawn(db: Db, notifier: Notifier, max_batch: u32) -> Self {
        let max_batch = max_batch.max(1) as usize;
        let (queue, receiver) = mpsc::channel(max_batch * WRITERS * 4);
        let batches = Batches::new(receiver, max_batch);
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(db.clone(), notifier.clone(), batches.clone(), max_batch));
        }
        Self { queue }
    }

    /// Records one delivery; returns once it is committed (or known not to be).
    pub async fn record(&self, delivery: Delivery) -> Result<Recorded, WriteError> {
        let (recorded, done) = oneshot::channel();
        self.queue.send(Pending { delivery, recorded }).await.map_err(|_| WriteError::Closed)?;
        done.await.map_err(|_| WriteError::Closed)?
    }
}

async fn write_batches(db: Db, notifier: Notifier, batches: Batches<Pending>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    // Held until the batch is written: the next gathers what arrives meanwhile.
    while let Some(_turn) = batches.next(&mut batch).await {
        let (deliveries, replies): (Vec<Delivery>, Vec<_>) = batch.drain(..).map(|p| (p.delivery, p.recorded)).unzip();
        let outcomes = record(&db, &notifier, &deliveries).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Records `deliveries` in one statement; if the database refuses the batch, records
/// each on its own. Returns one outcome per delivery, in order.
async fn record(db: &Db, notifier: &Notifier, deliveries: &[Delivery]) -> Vec<Result<Recorded, WriteError>> {
    match write(db, notifier, deliveries).await {
        Ok(recorded) => recorded.into_iter().map(Ok).collect(),
        Err(WriteError::Refused(e)) if deliveries.len() > 1 => {
            tracing::warn!(error = %e, deliveries = deliveries.len(), "a batch of events was refused; recording each alone");
            let mut outcomes = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                outcomes.push(write(db, notifier, std::slice::from_ref(delivery)).await.map(|mut r| r.remove(0)));
            }
            outcomes
        }
        Err(e) => vec![Err(e); deliveries.len()],
    }
}

/// One statement for the batch, repeated at once on a serialization failure or a
/// deadlock (two batches with redeliveries of each other's events). Wakes the workers
/// for started jobs the statement did not announce itself.
async fn write(db: &Db, notifier: &Notifier, deliveries: &[Delivery]) -> Result<Vec<Recorded>, WriteError> {
    let starts_jobs = deliveries.iter().any(|d| !d.jobs.is_empty());
    let inline = starts_jobs && notifier.take_quiet();
    let mut tries = 0;
    let recorded = loop {
        match db.run_unit(async |conn| events::record_many(conn, deliveries, inline).await).await {
            Err(UnitError::Failed(e)) if docket::db::is_transient(&e) && tries < 5 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transient database error; recording the events again");
            }
            Ok(recorded) => break recorded,
            Err(UnitError::NotSent(e)) => return Err(WriteError::Unavailable(Arc::new(e))),
            // Sent, and maybe committed: Workfront delivers again, and the event's
            // identity makes the second delivery find the first.
            Err(UnitError::Failed(e)) if docket::db::reach::is_connection_error(&e) => {
                return Err(WriteError::Unavailable(Arc::new(e)))
            }
            Err(UnitError::Failed(e)) => return Err(WriteError::Refused(Arc::new(e))),
        }
    };
    if !inline && recorded.iter().any(|r| !r.duplicate && !r.job_ids.is_empty()) {
        notifier.wake();
    }
    Ok(recorded)
}
