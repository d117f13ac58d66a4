//! The claim loop: claim as many due jobs as there are free slots — first for the
//! limit groups this worker serves (each through `docket_claim_group`, which grants no
//! more than the group's limits allow), then for the other actions in one batched
//! claim, which also takes the jobs that will run during the next claim's round trip
//! ([`crate::pace`]: the local queue) — and run each job in its own task. Wakes on
//! NOTIFY, a freed slot while a backlog waits, a written result while a group is at
//! its concurrency limit or the worker holds all the jobs it may, the next token of a
//! rate-limited group, a retry of its own coming due, or the poll interval.
//!
//! A claimed job is held from its claim: in `running` (its lease renewed, abortable
//! by an operator's cancel, a lost lease or the end of the shutdown grace). A job of
//! the local queue is a task waiting for a slot (the semaphore serves waiters in
//! order); on shutdown it runs within the grace like the others, or is given back
//! unstarted.
//!
//! A group with a rate charges its bucket at the claim, so its jobs must start soon
//! after it: a job of such a group waits in the local queue at most the start window
//! its claim granted ([`start_window`]; the bucket keeps that much of the rate back),
//! and is given back unstarted after it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use docket::catalog::flow::Rate;
use docket::catalog::LimitGroup;
use docket::db::flow::{self, FlowRules, Held};
use docket::db::jobs::{self, ClaimedJob};
use docket::db::{self, Db};
use docket::otlp;
use docket::retry::Backoff;
use docket::trace::TraceParent;

use crate::due::Due;
use crate::execute;
use crate::execute::JobContext;
use crate::lease::Abort;

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
    /// The group may be claimed ahead into the local queue and its jobs free their
    /// slots when they end, as plain ones do: its jobs count as running from their
    /// claim for `max_concurrency`, and a rate grants a start window. A circuit's
    /// verdict must be written before the next claim, and a small burst has no room
    /// for a window, so such groups claim only for free slots, held until the write.
    takes_ahead: bool,
    /// How long after a claim its jobs may start ([`start_window`]).
    start_within: Duration,
}

impl Group {
    fn new(group: &LimitGroup, flow: &FlowRules) -> Self {
        let circuit = group.actions.iter().any(|a| flow.has_circuit(a));
        let start_within = if circuit { Duration::ZERO } else { start_window(group.rate.as_ref()) };
        Group {
            name: group.name.clone(),
            actions: group.actions.clone(),
            ready: true,
            not_before: None,
            full: false,
            takes_ahead: !circuit && (group.rate.is_none() || !start_within.is_zero()),
            start_within,
        }
    }

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
    /// Most claimed jobs waiting for a slot.
    pub prefetch: usize,
    /// Actions without limits, claimed together.
    pub plain: Vec<String>,
    pub groups: Vec<LimitGroup>,
    /// Which actions have circuits.
    pub flow: Arc<FlowRules>,
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
    pub async fn run(mut self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut groups: Vec<Group> = self.groups.iter().map(|g| Group::new(g, &self.flow)).collect();
        // Jobs waiting for a slot would take every slot that frees (the semaphore
        // serves its waiters first), and a group with a circuit or a small burst claims
        // only for free slots: a worker that serves such a group takes nothing ahead.
        if groups.iter().any(|g| !g.takes_ahead) && self.prefetch > 0 {
            tracing::info!(
                "serving a limit group with a circuit or a small burst: no jobs claimed ahead of free slots"
            );
            self.prefetch = 0;
        }
        let mut backlog = false;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            if self.demand(&slots) > 0 {
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
            // worker scheduled coming due, or the poll interval. A worker that holds
            // all it may ([`ClaimLoop::room`]) also waits for results to be written.
            let (wanted, room) = (self.wanted(&slots), self.room());
            let want_slot = backlog || wanted.min(room) == 0;
            let any_full = groups.iter().any(|g| g.full);
            let on_writes = room < wanted;
            let next_token = groups.iter().filter_map(|g| g.not_before).min();
            tokio::select! {
                _ = self.wake.notified() => mark_ready(&mut groups, |_| true),
                _ = self.shared.slot_freed.notified(), if want_slot => {
                    if backlog {
                        self.gather(&slots).await;
                    }
                }
                _ = self.written.notified(), if any_full || on_writes => {
                    mark_ready(&mut groups, |g| g.full);
                    if backlog {
                        self.gather(&slots).await;
                    }
                }
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
            let free = if group.takes_ahead { self.demand(slots) } else { slots.available_permits() };
            if free == 0 {
                // Ask again when a slot frees (not at a token time already passed,
                // which would wake the loop at once, again and again).
                group.ready = true;
                group.not_before = None;
                more = true;
                continue;
            }
            let claimed_at = Instant::now();
            let (name, lease, worker_id) = (group.name.as_str(), self.lease, self.worker_id.as_str());
            let (pace, within) = (&self.shared.pace, group.start_within);
            let claim = db::retry_transient(|| {
                self.db.run(async |c| {
                    pace.time_claim(flow::claim_group(c, worker_id, name, free as i32, lease, within)).await
                })
            })
            .await?;
            let got = claim.jobs.len();
            // Measured from before the claim was sent, so from before the bucket was
            // charged.
            let start_by = (!within.is_zero()).then(|| claimed_at + claim.start_within);
            self.start(claim.jobs, slots, claimed_at, tasks, Start { until_written: !group.takes_ahead, start_by });
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
        let want = self.demand(slots);
        if want == 0 || self.plain.is_empty() {
            return Ok(more || want == 0);
        }
        let claimed_at = Instant::now();
        // The statement's round trip, not the wait for a connection (the first claim
        // also opens one).
        let (pace, worker_id, plain, lease) = (&self.shared.pace, self.worker_id.as_str(), &self.plain, self.lease);
        let claimed = db::retry_transient(|| {
            self.db.run(async |c| pace.time_claim(jobs::claim(c, worker_id, plain, want as i64, lease)).await)
        })
        .await?;
        more |= claimed.len() == want;
        self.start(claimed, slots, claimed_at, tasks, Start { until_written: false, start_by: None });
        Ok(more)
    }

    /// How many plain jobs to claim now: a job for each free slot, and for the local
    /// queue the jobs the slots will finish during the claim ([`crate::pace`]), less
    /// those already waiting in it; no more than [`ClaimLoop::room`] allows.
    fn demand(&self, slots: &Semaphore) -> usize {
        self.wanted(slots).min(self.room())
    }

    /// [`ClaimLoop::demand`] before the bound on held jobs.
    fn wanted(&self, slots: &Semaphore) -> usize {
        slots.available_permits() + self.ahead().saturating_sub(self.shared.running.queued())
    }

    /// How many more jobs this worker may hold. A job is held from its claim until its
    /// result is written, and its slot frees when its action ends: while results wait
    /// for the completer (a slow database, a burst of short jobs), up to as many as
    /// the worker may run and queue wait beside those, and no more are claimed until
    /// writes land. Unbounded, a drain of short jobs held tens of thousands per worker:
    /// their leases renewed every tick, their results lost to a crash at once.
    fn room(&self) -> usize {
        (2 * (self.concurrency + self.prefetch)).saturating_sub(self.shared.running.len())
    }

    /// How many jobs the local queue may hold now ([`crate::pace`]).
    fn ahead(&self) -> usize {
        self.shared.pace.ahead(self.concurrency, self.prefetch)
    }

    /// While a backlog waits: lets slots free (and the local queue empty) until a
    /// claim is worth a statement, or [`GATHER_WAIT`] has passed.
    async fn gather(&self, slots: &Semaphore) {
        let batch = claim_batch(self.concurrency + self.ahead());
        let until = Instant::now() + GATHER_WAIT;
        while self.demand(slots) < batch {
            if tokio::time::timeout_at(until, self.shared.slot_freed.notified()).await.is_err() {
                return;
            }
        }
    }

    /// Runs each claimed job in its own task, holding a slot; a job claimed ahead of
    /// the free slots (plain actions, groups that take jobs ahead) waits in its task
    /// for one, until `how.start_by` at most. Every job is held from here on
    /// (`running`).
    fn start(
        &self,
        claimed: Vec<ClaimedJob>,
        slots: &Arc<Semaphore>,
        claimed_at: Instant,
        tasks: &TaskTracker,
        how: Start,
    ) {
        let Start { until_written, start_by } = how;
        let valid_until = claimed_at + self.lease;
        for job in claimed {
            let abort = self.shared.running.insert(job.id, job.attempt, &job.action, valid_until);
            let shared = self.shared.clone();
            let held = Claimed { job, abort };
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tasks.spawn(run(shared, held, Some(permit), until_written));
                }
                Err(_) => {
                    shared.running.queue();
                    let slots = slots.clone();
                    tasks.spawn(async move {
                        // A job stopped while it waits (cancel, lost lease, end of the
                        // grace, its start window) ends without waiting for a slot: it
                        // will not run.
                        let permit = tokio::select! {
                            biased;
                            _ = held.abort.aborted() => None,
                            permit = slots.acquire_owned() => permit.ok(),
                            _ = sleep_until(start_by) => {
                                shared.pace.missed_start();
                                metrics::counter!("docket_jobs_not_started_in_time_total", "action" => held.job.action.clone())
                                    .increment(1);
                                held.abort.abort(crate::lease::AbortReason::Late);
                                None
                            }
                        };
                        shared.running.dequeue();
                        if permit.is_none() && held.abort.reason().is_none() {
                            // The semaphore closed (it never does): give the job back.
                            held.abort.abort(crate::lease::AbortReason::Shutdown);
                        }
                        run(shared, held, permit, until_written).await;
                    });
                }
            }
        }
    }
}

/// How claimed jobs start.
struct Start {
    /// The job holds its slot until its result is written: the next claim then sees
    /// the result (a circuit that opened, a slot that freed), so a worker never has
    /// more of such a group's jobs running or awaiting their write than slots.
    until_written: bool,
    /// A job still waiting for a slot then is given back unstarted (a rate's window).
    start_by: Option<Instant>,
}

/// A claimed job, held by this worker.
struct Claimed {
    job: ClaimedJob,
    abort: Abort,
}

/// Runs one job in the slot `permit` holds, and frees the slot. Without a slot the
/// job was stopped before it started: it ends without running.
async fn run(shared: Arc<JobContext>, held: Claimed, permit: Option<OwnedSemaphorePermit>, until_written: bool) {
    let Claimed { job, abort } = held;
    // From here on the job carries its attempt's own span (a child of the stored
    // one, or a new trace), which the call to the target continues.
    let trace = job.attempt_trace();
    let exported = attempt_span(&job, &trace);
    let job = ClaimedJob { traceparent: Some(trace), ..job };
    let span = tracing::info_span!("job", job.id = %job.id, job.action = %job.action, attempt = job.attempt,
                                   trace_id = %trace.trace_id_hex());
    let id = job.id;
    execute::execute(&shared, job, abort, exported).instrument(span).await;
    let Some(permit) = permit else {
        return;
    };
    if until_written {
        shared.running.removed(id).await;
    }
    drop(permit);
    shared.slot_freed.notify_one();
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

/// How long after its claim a job of a group with `rate` may still start, asked of
/// `docket_claim_group`, which keeps that much of the rate back from the bucket's burst
/// (so that starts, not only claims, stay within burst + rate × T in every window T).
/// A tenth of the burst's worth, at most [`START_WINDOW`]; none below a burst of 20,
/// whose bucket would lose a whole start of its burst (such a group claims only for
/// free slots and starts its jobs at once). Zero without a rate. The policy lives
/// here; the function only refuses a window that would leave less than one token.
fn start_window(rate: Option<&Rate>) -> Duration {
    match rate {
        Some(r) if r.burst >= 20 => START_WINDOW.min(Duration::from_secs_f64(0.1 * f64::from(r.burst) / r.per_second)),
        _ => Duration::ZERO,
    }
}

/// Longest start window: jobs claimed ahead wait for a slot for about one claim's
/// round trip (milliseconds), and a window this long is a small share of a big burst.
const START_WINDOW: Duration = Duration::from_millis(100);

/// How many jobs are worth one claim statement while a backlog waits: half of the
/// slots and the local queue (at most 128). Claiming a job or two per statement, as
/// slots free one at a time, costs a round trip and a commit per job.
fn claim_batch(concurrency: usize) -> usize {
    (concurrency / 2).clamp(1, 128)
}

/// Longest a freed slot waits for others to free before the claim: far below any
/// HTTP call, and bounded so that a lone slot does not stay idle.
const GATHER_WAIT: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use docket::catalog::flow::Rate;

    use super::start_window;

    fn rate(per_second: f64, burst: u32) -> Rate {
        Rate { per_second, burst, text: String::new() }
    }

    #[test]
    fn a_start_window_is_a_tenth_of_the_burst_at_most_100_ms_and_none_for_small_bursts() {
        assert_eq!(start_window(None), Duration::ZERO);
        assert_eq!(start_window(Some(&rate(10.0, 2))), Duration::ZERO, "a burst of 2 has no room");
        assert_eq!(start_window(Some(&rate(1000.0, 19))), Duration::ZERO);
        assert_eq!(start_window(Some(&rate(50.0, 20))), Duration::from_millis(40), "2 of 20 tokens at 50/s");
        assert_eq!(start_window(Some(&rate(100_000.0, 100_000))), Duration::from_millis(100), "at most 100 ms");
    }
}
