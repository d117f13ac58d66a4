//! The claim loop: claim as many due jobs as there are free slots — first for the
//! limit groups this worker serves (each through `docket_claim_group`, which grants no
//! more than the group's limits allow), then for the other actions in one batched
//! claim — and run each job in its own task. Wakes on NOTIFY, a freed slot while a
//! backlog waits, a written result while a group is at its concurrency limit, the
//! next token of a rate-limited group, a retry of its own coming due, or the poll
//! interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use docket::catalog::LimitGroup;
use docket::db::flow::{self, Held};
use docket::db::jobs::{self, ClaimedJob};
use docket::db::{self, Db};
use docket::otlp;
use docket::retry::Backoff;
use docket::trace::TraceParent;

use crate::due::Due;
use crate::execute;
use crate::execute::JobContext;

/// A limit group this worker claims for, and when to ask it again.
struct Group {
    name: String,
    actions: Vec<String>,
    /// Ask at the next round (new jobs, room freed, a poll).
    ready: bool,
    /// The bucket's next token: ask again at this time.
    not_before: Option<Instant>,
    /// Due jobs wait for one of the group's running jobs to end.
    full: bool,
}

impl Group {
    fn due(&self, now: Instant) -> bool {
        self.ready || self.not_before.is_some_and(|at| at <= now)
    }
}

/// What the loop needs; built by the runner.
pub(crate) struct ClaimLoop {
    pub db: Db,
    pub worker_id: String,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub concurrency: usize,
    /// Actions without limits, claimed together.
    pub plain: Vec<String>,
    pub groups: Vec<LimitGroup>,
    pub shared: Arc<JobContext>,
    /// NOTIFY from the listener (new jobs, rescues, resumes).
    pub wake: Arc<Notify>,
    /// Retries this worker scheduled.
    pub due: Arc<Due>,
    /// The completer wrote results: jobs stopped running.
    pub written: Arc<Notify>,
}

impl ClaimLoop {
    /// Claims and starts jobs until `shutdown`; the running jobs' tasks are in `tasks`.
    pub async fn run(self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut groups: Vec<Group> = self
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                actions: g.actions.clone(),
                ready: true,
                not_before: None,
                full: false,
            })
            .collect();
        let mut backlog = false;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            if slots.available_permits() > 0 {
                match self.claim_round(&slots, &mut groups, tasks).await {
                    Ok(more) => {
                        backoff.reset();
                        backlog = more;
                    }
                    Err(e) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in = ?wait, "could not claim jobs");
                        // A notification (or the listener's reconnect) means the database
                        // is back: claim at once rather than at the end of the backoff.
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = self.wake.notified() => {}
                            _ = shutdown.cancelled() => {}
                        }
                        mark_ready(&mut groups, |_| true);
                        continue;
                    }
                }
            }
            // With a backlog, claim again once a slot frees; otherwise wait for a
            // notification, room in a full group, a group's next token, a retry this
            // worker scheduled coming due, or the poll interval.
            let want_slot = backlog || slots.available_permits() == 0;
            let any_full = groups.iter().any(|g| g.full);
            let next_token = groups.iter().filter_map(|g| g.not_before).min();
            tokio::select! {
                _ = self.wake.notified() => mark_ready(&mut groups, |_| true),
                _ = self.shared.slot_freed.notified(), if want_slot => {
                    if backlog {
                        gather_slots(&slots, &self.shared.slot_freed, claim_batch(self.concurrency)).await;
                    }
                }
                _ = self.written.notified(), if any_full => mark_ready(&mut groups, |g| g.full),
                _ = sleep_until(next_token), if next_token.is_some() => {}
                _ = self.due.passed() => mark_ready(&mut groups, |_| true),
                _ = tokio::time::sleep(self.poll_interval) => mark_ready(&mut groups, |_| true),
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// One round of claims for the free slots: the groups that are due, then the plain
    /// actions. Returns whether a claim filled every slot it asked for (more may be
    /// waiting: claim again, batched, as slots free).
    async fn claim_round(
        &self,
        slots: &Arc<Semaphore>,
        groups: &mut [Group],
        tasks: &TaskTracker,
    ) -> Result<bool, sqlx::Error> {
        let now = Instant::now();
        let mut more = false;
        for group in groups.iter_mut().filter(|g| g.due(now)) {
            let free = slots.available_permits();
            if free == 0 {
                return Ok(true);
            }
            let claimed_at = Instant::now();
            let (name, lease, worker_id) = (group.name.as_str(), self.lease, self.worker_id.as_str());
            let claim = db::retry_transient(|| {
                self.db.run(async |c| flow::claim_group(c, worker_id, name, free as i32, lease).await)
            })
            .await?;
            let got = claim.jobs.len();
            self.start(claim.jobs, slots, claimed_at, tasks, true);
            group.ready = got == free;
            more |= group.ready;
            group.full = claim.held == Some(Held::Concurrency);
            group.not_before = match claim.held {
                Some(Held::Rate(wait)) => Some(Instant::now() + wait),
                _ => None,
            };
            if let Some(held) = claim.held {
                for action in &group.actions {
                    metrics::counter!("docket_action_throttled_total", "action" => action.clone(), "reason" => held.reason())
                        .increment(1);
                }
            }
        }
        let free = slots.available_permits();
        if free == 0 || self.plain.is_empty() {
            return Ok(more || free == 0);
        }
        let claimed_at = Instant::now();
        let claimed = db::retry_transient(|| {
            self.db.run(async |c| jobs::claim(c, &self.worker_id, &self.plain, free as i64, self.lease).await)
        })
        .await?;
        more |= claimed.len() == free;
        self.start(claimed, slots, claimed_at, tasks, false);
        Ok(more)
    }

    /// Runs each claimed job in its own task, holding a slot. A job of a limit group
    /// holds its slot until its result is written (`until_written`): the next claim
    /// then sees the result (a circuit that opened, a slot that freed), so a worker
    /// never has more of a group's jobs running or awaiting their write than slots.
    fn start(
        &self,
        claimed: Vec<ClaimedJob>,
        slots: &Arc<Semaphore>,
        claimed_at: Instant,
        tasks: &TaskTracker,
        until_written: bool,
    ) {
        for job in claimed {
            let permit = slots.clone().try_acquire_owned().expect("a slot is free for each claimed job");
            let abort_valid_until = claimed_at + self.lease;
            let shared = self.shared.clone();
            // From here on the job carries its attempt's own span (a child of the
            // stored one, or a new trace), which the call to the target continues.
            let trace = job.attempt_trace();
            let exported = attempt_span(&job, &trace);
            let job = ClaimedJob { traceparent: Some(trace), ..job };
            let span = tracing::info_span!("job", job.id = %job.id, job.action = %job.action, attempt = job.attempt,
                                           trace_id = %trace.trace_id_hex());
            tasks.spawn(async move {
                let id = job.id;
                execute::execute(&shared, job, abort_valid_until, exported).instrument(span).await;
                if until_written {
                    shared.running.removed(id).await;
                }
                drop(permit);
                shared.slot_freed.notify_one();
            });
        }
    }
}

/// The attempt's span for the OTLP exporter: `trace`'s ids, a child of the span
/// stored with the job (the intake's), so a collector draws intake → attempt.
fn attempt_span(job: &ClaimedJob, trace: &TraceParent) -> otlp::Span {
    let name = || format!("attempt {}", job.action).into();
    let mut span = otlp::Span::start_with(name, otlp::Kind::Consumer, trace, job.traceparent.as_ref());
    if !span.is_recording() {
        return span;
    }
    span.set("docket.job.id", job.id.to_string());
    span.set("docket.action", job.action.clone());
    span.set("docket.attempt", i64::from(job.attempt));
    span
}

fn mark_ready(groups: &mut [Group], which: impl Fn(&Group) -> bool) {
    for group in groups.iter_mut().filter(|g| which(g)) {
        group.ready = true;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How many free slots are worth one claim statement while a backlog waits: a
/// quarter of the slots (at most 64). Claiming a job or two per statement, as slots
/// free one at a time, costs a round trip and a commit per job.
fn claim_batch(concurrency: usize) -> usize {
    (concurrency / 4).clamp(1, 64)
}

/// Longest a freed slot waits for others to free before the claim: far below any
/// HTTP call, and bounded so that a lone slot does not stay idle.
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Waits until `batch` slots are free, or [`GATHER_WAIT`] has passed.
async fn gather_slots(slots: &Semaphore, slot_freed: &Notify, batch: usize) {
    let until = Instant::now() + GATHER_WAIT;
    while slots.available_permits() < batch {
        if tokio::time::timeout_at(until, slot_freed.notified()).await.is_err() {
            return;
        }
    }
}
