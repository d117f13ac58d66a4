//! Leases of the jobs this worker runs: the table of running jobs, and the task that
//! renews their leases. A job whose lease was lost, or can no longer be renewed in
//! time (database unreachable), is aborted before the lease runs out, so that two
//! workers never run one job at the same time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use docket::db::{jobs, Db};
use docket::domain::JobId;

/// Why a running action was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// Another worker took the job over: its result belongs to that worker now.
    LeaseLost,
    /// Renewals failed and the lease is about to run out.
    LeaseUnrenewable,
    /// The shutdown grace period ended.
    Shutdown,
    /// An operator cancelled the job.
    Cancelled,
    /// A job of a rate-limited group waited in the local queue past the time its
    /// claim allowed it to start (the bucket was charged for a start by then).
    Late,
}

impl AbortReason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::LeaseLost => "lease lost to another worker",
            Self::LeaseUnrenewable => "worker could not renew its lease (database unreachable)",
            Self::Shutdown => "worker shut down before the attempt finished",
            Self::Cancelled => "cancelled by an operator",
            Self::Late => "not started within the time its rate limit allowed after the claim",
        }
    }
}

/// A handle that stops one running action, remembering why.
#[derive(Clone, Default)]
pub struct Abort {
    token: CancellationToken,
    reason: Arc<OnceLock<AbortReason>>,
}

impl Abort {
    pub fn abort(&self, reason: AbortReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Why the action was stopped, if it was (before it started, for a job that
    /// waited for a slot).
    pub fn reason(&self) -> Option<AbortReason> {
        self.token.is_cancelled().then(|| *self.reason.get().unwrap_or(&AbortReason::Shutdown))
    }

    pub async fn aborted(&self) -> AbortReason {
        self.token.cancelled().await;
        *self.reason.get().unwrap_or(&AbortReason::Shutdown)
    }
}

struct Entry {
    attempt: i32,
    action: String,
    valid_until: Instant,
    abort: Abort,
    /// Told when the job leaves the table (its result is written).
    on_removed: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// The jobs this worker holds: running, awaiting their result's write, or waiting
/// in the local queue for a slot (counted apart).
#[derive(Clone)]
pub struct Running {
    inner: Arc<Mutex<HashMap<JobId, Entry>>>,
    /// How many of them wait in the local queue for a slot.
    queued: Arc<AtomicUsize>,
    /// `docket_worker_running_jobs` and `docket_worker_queued_jobs`, looked up once:
    /// they change four times per job, and a lookup by name hashes and compares keys
    /// in the recorder's registry.
    gauges: Arc<(metrics::Gauge, metrics::Gauge)>,
}

impl Default for Running {
    /// An empty table, publishing through the process's recorder as installed now
    /// (the runner installs it first).
    fn default() -> Self {
        Running {
            inner: Arc::default(),
            queued: Arc::default(),
            gauges: Arc::new((
                metrics::gauge!("docket_worker_running_jobs"),
                metrics::gauge!("docket_worker_queued_jobs"),
            )),
        }
    }
}

impl Running {
    /// Records a job claimed at `claimed_at` (before the claim was sent).
    pub fn insert(&self, id: JobId, attempt: i32, action: &str, valid_until: Instant) -> Abort {
        let abort = Abort::default();
        let mut map = self.lock();
        map.insert(
            id,
            Entry { attempt, action: action.to_owned(), valid_until, abort: abort.clone(), on_removed: Vec::new() },
        );
        self.publish(map.len());
        abort
    }

    pub fn remove(&self, id: JobId) {
        self.remove_all(&[id]);
    }

    /// Removes jobs under one lock (the completer's batch of written results).
    pub fn remove_all(&self, ids: &[JobId]) {
        let mut map = self.lock();
        let removed: Vec<Entry> = ids.iter().filter_map(|id| map.remove(id)).collect();
        self.publish(map.len());
        drop(map);
        for tell in removed.into_iter().flat_map(|e| e.on_removed) {
            let _ = tell.send(());
        }
    }

    /// A held job waits in the local queue for a slot.
    pub fn queue(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.publish(self.lock().len());
    }

    /// A job of the local queue got its slot.
    pub fn dequeue(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.publish(self.lock().len());
    }

    /// How many held jobs wait in the local queue.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Running jobs (and those awaiting their result's write) apart from the local
    /// queue, so that running / concurrency stays a utilisation.
    fn publish(&self, held: usize) {
        let queued = self.queued.load(Ordering::Relaxed);
        self.gauges.0.set(held.saturating_sub(queued) as f64);
        self.gauges.1.set(queued as f64);
    }

    /// Resolves once the job has left the table (at once if it is not in it).
    pub async fn removed(&self, id: JobId) {
        let waiting = {
            let mut map = self.lock();
            map.get_mut(&id).map(|entry| {
                let (tell, wait) = tokio::sync::oneshot::channel();
                entry.on_removed.push(tell);
                wait
            })
        };
        if let Some(wait) = waiting {
            let _ = wait.await;
        }
    }

    /// Until when this worker can count on holding the leases of the jobs among `ids`
    /// that it holds (the latest of their last renewals plus the lease).
    pub fn latest_valid_until(&self, ids: &[JobId]) -> Option<Instant> {
        let map = self.lock();
        ids.iter().filter_map(|id| map.get(id).map(|e| e.valid_until)).max()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Stops one running action, if this worker runs it; returns its action's name.
    pub fn abort(&self, id: JobId, reason: AbortReason) -> Option<String> {
        let map = self.lock();
        let entry = map.get(&id)?;
        entry.abort.abort(reason);
        Some(entry.action.clone())
    }

    /// Stops every running action.
    pub fn abort_all(&self, reason: AbortReason) {
        for entry in self.lock().values() {
            entry.abort.abort(reason);
        }
    }

    /// The jobs held, with their attempt numbers.
    pub fn held(&self) -> Vec<(JobId, i32)> {
        self.lock().iter().map(|(id, e)| (*id, e.attempt)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Entry>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How often leases are renewed: every fifth of the lease.
pub fn renewal_period(lease: Duration) -> Duration {
    (lease / 5).max(Duration::from_millis(100))
}

/// Renews leases every [`renewal_period`] until `stop` is cancelled.
pub async fn keep_leases(db: Db, worker_id: String, running: Running, lease: Duration, stop: CancellationToken) {
    let tick = renewal_period(lease);
    // Abort when less than this is left: two failed renewals' worth.
    let margin = tick * 2;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => return,
        }
        let ids: Vec<JobId> = running.held().into_iter().map(|(id, _)| id).collect();
        if ids.is_empty() {
            continue;
        }
        let sent_at = Instant::now();
        let renewed =
            tokio::time::timeout(tick, db.run(async |c| jobs::renew_leases(c, &worker_id, &ids, lease).await)).await;
        match renewed {
            Ok(Ok(held)) => {
                // Looked up by id: a worker may hold thousands of jobs, and the table is
                // locked meanwhile.
                let held: HashMap<JobId, bool> = held.into_iter().map(|h| (h.id, h.cancel_requested)).collect();
                let mut map = running.lock();
                for id in ids {
                    let Some(entry) = map.get_mut(&id) else {
                        continue;
                    };
                    if let Some(cancel_requested) = held.get(&id) {
                        entry.valid_until = sent_at + lease;
                        if *cancel_requested {
                            tracing::info!(job.id = %id, job.action = %entry.action, "cancel requested; aborting the action");
                            entry.abort.abort(AbortReason::Cancelled);
                        }
                    } else {
                        tracing::warn!(job.id = %id, job.action = %entry.action, "lease lost to another worker; aborting the action");
                        entry.abort.abort(AbortReason::LeaseLost);
                    }
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "renewal timed out".to_owned(),
                };
                tracing::warn!(error = %error, jobs = ids.len(), "could not renew leases");
                let now = Instant::now();
                for (id, entry) in running.lock().iter() {
                    if entry.valid_until.saturating_duration_since(now) <= margin {
                        tracing::error!(job.id = %id, job.action = %entry.action, "lease about to expire and cannot be renewed; aborting the action");
                        entry.abort.abort(AbortReason::LeaseUnrenewable);
                    }
                }
            }
        }
    }
}
