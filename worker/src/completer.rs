//! Records the ends of attempts in batches: every completion and release waiting in
//! the channel goes to Postgres in one fenced statement. A job's lease is renewed
//! until its result is written.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use std::sync::Arc;

use docket::db::flow::{self, FlowRules, Verdict};
use docket::db::jobs::NextState;
use docket::db::{self, jobs, Db};
use docket::domain::JobId;
use docket::retry::Backoff;

use crate::due::Due;
use crate::lease::Running;

/// Most completions written in one statement.
const BATCH: usize = 512;

/// What the completer writes.
#[derive(Debug)]
pub enum Finished {
    Completed {
        completion: jobs::Completion,
        action: String,
        /// What the end tells flow control about the target, if anything.
        verdict: Option<Verdict>,
    },
    /// Give the job back to the queue: a started attempt is recorded `interrupted`,
    /// one that never started is undone ([`jobs::release`]).
    Released { held: jobs::HeldAttempt, action: String, reason: String },
}

/// A job this worker holds and its action's name.
type HeldJob = (jobs::HeldAttempt, String);

/// Where results are written, and the jobs whose leases are kept until they are.
pub struct Completer {
    pub db: Db,
    pub worker_id: String,
    /// Retries it recorded, so that the claim loop wakes for them.
    pub due: Arc<Due>,
    /// A job leaves `running` (and its lease stops being renewed) only once its result
    /// is written, rejected, or given up.
    pub running: Running,
    pub lease: Duration,
    /// Follow-ups to queue with the jobs this worker ends.
    pub rules: Arc<jobs::FollowUpRules>,
    /// Which ends flow control hears about (limited actions, circuits, back-pressure).
    pub flow: Arc<FlowRules>,
    /// Told after every write: jobs stopped running, so limited groups have room again.
    pub written: Arc<Notify>,
}

impl Completer {
    /// Writes until every sender is dropped and the channel is empty.
    pub async fn record(self, mut rx: mpsc::UnboundedReceiver<Finished>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut completions = Vec::new();
            let mut actions = Vec::new();
            let mut verdicts = Vec::new();
            // Releases, one statement per distinct reason (a shutdown releases every job
            // at once, with one reason).
            let mut releases: Vec<(String, Vec<HeldJob>)> = Vec::new();
            for finished in batch.drain(..) {
                match finished {
                    Finished::Completed { completion, action, verdict } => {
                        completions.push(completion);
                        actions.push(action);
                        verdicts.push(verdict);
                    }
                    Finished::Released { held, action, reason } => {
                        match releases.iter_mut().find(|(r, _)| *r == reason) {
                            Some((_, jobs)) => jobs.push((held, action)),
                            None => releases.push((reason, vec![(held, action)])),
                        }
                    }
                }
            }
            if !completions.is_empty() {
                self.write_completions(&completions, &actions, &verdicts).await;
            }
            for (reason, jobs) in releases {
                self.release(&jobs, &reason).await;
            }
            self.written.notify_one();
        }
    }

    /// Writes completions in one statement; when flow control must hear about some of
    /// them, in one transaction with what they tell it (so a circuit's probe and its
    /// verdict land together).
    async fn write_completions(
        &self,
        completions: &[jobs::Completion],
        actions: &[String],
        verdicts: &[Option<Verdict>],
    ) {
        let ids: Vec<JobId> = completions.iter().map(|c| c.id).collect();
        let (db, worker_id) = (&self.db, self.worker_id.as_str());
        let heard: Vec<(String, JobId, Verdict)> = completions
            .iter()
            .zip(actions)
            .zip(verdicts)
            .filter_map(|((c, action), verdict)| {
                verdict.filter(|v| self.flow.wants(action, *v)).map(|v| (action.clone(), c.id, v))
            })
            .collect();
        let written = if heard.is_empty() {
            self.persist(&ids, || db.run(async |c| jobs::complete(c, worker_id, completions, &self.rules).await)).await
        } else {
            self.persist(&ids, || async {
                let mut tx = db.begin().await?;
                let applied = jobs::complete(&mut *tx, worker_id, completions, &self.rules).await?;
                let ended: Vec<_> = heard.iter().filter(|(_, id, _)| applied.contains(id)).cloned().collect();
                flow::feedback(&mut *tx, &self.flow, &ended).await?;
                tx.commit().await?;
                Ok(applied)
            })
            .await
        };
        if let Ok(applied) = written {
            // A set: a batch holds hundreds of completions.
            let applied: HashSet<JobId> = applied.into_iter().collect();
            let now = tokio::time::Instant::now();
            for c in completions.iter().filter(|c| applied.contains(&c.id)) {
                if let NextState::Retry(delay) = c.next {
                    self.due.schedule(now + delay);
                }
            }
            for (c, action) in completions.iter().zip(actions).filter(|(c, _)| !applied.contains(&c.id)) {
                tracing::warn!(
                    job.id = %c.id, job.action = %action, attempt = c.attempt, outcome = c.outcome.as_str(),
                    "result rejected: this worker no longer holds the job's lease (another worker took it over)"
                );
            }
        }
        self.running.remove_all(&ids);
    }

    /// Gives jobs back to the queue in one fenced statement.
    async fn release(&self, jobs: &[HeldJob], reason: &str) {
        let held: Vec<jobs::HeldAttempt> = jobs.iter().map(|(h, _)| *h).collect();
        let ids: Vec<JobId> = held.iter().map(|h| h.id).collect();
        let (db, worker_id) = (&self.db, self.worker_id.as_str());
        let result = self
            .persist(&ids, || db.run(async |c| jobs::release(c, worker_id, &held, reason, &self.rules).await))
            .await;
        if let Ok(released) = result {
            for (held, action) in jobs {
                let id = &held.id;
                if !released.contains(id) {
                    tracing::warn!(job.id = %id, job.action = %action, "not released: the lease was already lost");
                } else if held.started {
                    tracing::info!(job.id = %id, job.action = %action, reason = %reason, "job released to other workers");
                } else {
                    tracing::info!(job.id = %id, job.action = %action, reason = %reason,
                                   "job given back unstarted: its attempt is undone");
                }
            }
        }
        self.running.remove_all(&ids);
    }

    /// Retries a write while the database is unreachable, every second at most, so
    /// that it lands soon after the database is back. The jobs' leases are renewed
    /// meanwhile; the write is fenced, so trying after a lease ran out is harmless
    /// (and wins if no other worker has rescued the job yet). Gives up one lease
    /// length after the last of the jobs' leases ran out, saying so for each job.
    async fn persist<T, F, Fut>(&self, ids: &[JobId], mut op: F) -> Result<T, ()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let now = tokio::time::Instant::now();
        let lease_end = self.running.latest_valid_until(ids).unwrap_or(now);
        let give_up_at = lease_end.max(now) + self.lease;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let wait = backoff.next_delay();
            match db::retry_transient(&mut op).await {
                Ok(value) => return Ok(value),
                Err(e) if tokio::time::Instant::now() + wait < give_up_at => {
                    tracing::warn!(error = %e, retry_in = ?wait, jobs = ids.len(), "could not record attempt results");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    for id in ids {
                        tracing::error!(job.id = %id, error = %e,
                            "gave up recording this job's result: the database stayed unreachable past its lease; \
                             another worker will rescue the job and run it again");
                    }
                    return Err(());
                }
            }
        }
    }
}
