//! Running one claimed job: the action with its panics caught (a panic fails only that
//! attempt), under the action's timeout, abortable by the lease keeper or shutdown;
//! then the outcome mapped to the job's next state by the action's retry policy.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use docket::catalog::flow::MAX_SNOOZES;
use docket::catalog::Action;
use docket::db::flow::{FlowRules, Verdict};
use docket::db::jobs::{self, ClaimedJob, Completion, NextState};
use docket::db::Db;
use docket::domain::AttemptOutcome;
use docket::otlp;
use docket::template::{EventContext, ParentContext};

use crate::actions::{ActionOutcome, Lineage, Registry};
use crate::completer::Finished;
use crate::hold::HeldBack;
use crate::lease::{Abort, AbortReason, Running};
use crate::pace::Pace;

/// How a guarded run ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Outcome(ActionOutcome),
    Panicked(String),
    Aborted(AbortReason),
    /// Stopped while it waited for a slot: the action was never called.
    NotStarted(AbortReason),
}

/// What every job task needs, built by the runner and shared by the claim loop's
/// tasks.
pub(crate) struct JobContext {
    pub(crate) db: Db,
    pub(crate) registry: Arc<Registry>,
    pub(crate) running: Running,
    pub(crate) finished: mpsc::UnboundedSender<Finished>,
    pub(crate) slot_freed: Arc<Notify>,
    /// How long jobs and claims take here: how deep the local queue is.
    pub(crate) pace: Pace,
    /// Which actions are in which limit group (a group waits as one).
    pub(crate) flow: Arc<FlowRules>,
    /// Back-pressure heard by this worker, for jobs claimed before it.
    pub(crate) held_back: HeldBack,
}

/// Runs one claimed job (held in `running` since its claim, `abort` its handle) to
/// its end and hands the result to the completer, which takes the job out of
/// `running` once the result is written.
/// `exported` is the attempt's span for the OTLP exporter (a no-op when it is off),
/// told here how the attempt ended.
pub async fn execute(shared: &JobContext, job: ClaimedJob, abort: Abort, mut exported: otlp::Span) {
    let Some(action) = shared.registry.action(&job.action).cloned() else {
        // Cannot happen: workers claim only the actions they know.
        let reason = format!("worker has no action named '{}'", job.action);
        let action = job.action.clone();
        let held = jobs::HeldAttempt { id: job.id, attempt: job.attempt, started: true };
        let _ = shared.finished.send(Finished::Released { held, action, reason });
        return;
    };
    let started = Instant::now();
    let waits_as = shared.flow.group(&job.action).unwrap_or(&job.action);
    // A job stopped while it waited for a slot (an operator's cancel, a lost lease,
    // the end of the grace, its start window) does not start at all, nor one whose
    // target asked its action to wait meanwhile.
    let ended = match (abort.reason(), shared.held_back.until(waits_as)) {
        (Some(reason), _) => Ended::NotStarted(reason),
        (None, Some(until)) => Ended::Outcome(ActionOutcome::Throttled {
            error: "not called: the target asked this action to wait while the job waited for a slot".into(),
            retry_after: Some(until - started),
        }),
        (None, None) => {
            let run = run_with_lineage(shared.db.clone(), shared.registry.clone(), job.clone());
            let ended = run_guarded(run, action.timeout, &abort).await;
            shared.pace.ran(started.elapsed());
            ended
        }
    };
    // The job stays in `running` (its lease renewed) until the completer has written
    // the result: a slow database must not let the lease of a finished job run out.
    let finished = finished(&job, &action, ended);
    if let Some(Finished::Completed { verdict: Some(Verdict::Throttled(wait)), .. }) = &finished {
        shared.held_back.hold(waits_as, Instant::now() + *wait);
    }
    describe(&mut exported, finished.as_ref());
    let Some(finished) = finished else {
        shared.running.remove(job.id);
        return;
    };
    if let Finished::Completed { completion, verdict, .. } = &finished {
        record(&job.action, completion, verdict.as_ref(), started);
    }
    // The completer lives until every job task has finished.
    let _ = shared.finished.send(finished);
}

/// What the attempt's exported span says about its end: the outcome, and why if it
/// did not succeed (`None`: the lease was lost to another worker).
fn describe(span: &mut otlp::Span, finished: Option<&Finished>) {
    // Nothing to copy when the exporter is off (the error text is cloned below).
    if !span.is_recording() {
        return;
    }
    match finished {
        Some(Finished::Completed { completion: c, .. }) => {
            span.set("docket.outcome", c.outcome.as_str());
            if c.outcome != AttemptOutcome::Succeeded {
                span.fail(c.error.clone().unwrap_or_else(|| c.outcome.as_str().to_owned()));
            }
        }
        Some(Finished::Released { reason, .. }) => {
            span.set("docket.outcome", AttemptOutcome::Interrupted.as_str());
            span.fail(reason.clone());
        }
        None => {
            span.set("docket.outcome", AttemptOutcome::LeaseExpired.as_str());
            span.fail("lease lost; the new owner's result stands");
        }
    }
}

/// Reads what the job's templates need beyond its row (a follow-up's parent, the
/// event of its chain), then runs the action.
async fn run_with_lineage(db: Db, registry: Arc<Registry>, job: ClaimedJob) -> ActionOutcome {
    let parent = match job.parent_id {
        Some(parent_id) => match parent_context(&db, parent_id).await {
            Ok(parent) => parent,
            Err(error) => return ActionOutcome::Retryable { error, retry_after: None },
        },
        None => None,
    };
    let event = if registry.sees_events(&job.action) {
        match event_context(&db, job.id).await {
            Ok(event) => event,
            Err(error) => return ActionOutcome::Retryable { error, retry_after: None },
        }
    } else {
        None
    };
    registry.run(&job, &Lineage { parent, event }).await
}

/// What the completer is to write for an attempt that ended so; `None` when the
/// lease was lost (the new owner's result stands, nothing is written).
fn finished(job: &ClaimedJob, action: &Action, ended: Ended) -> Option<Finished> {
    // Whether the action was called: an attempt that never started is undone.
    let started = !matches!(ended, Ended::NotStarted(_));
    Some(match ended {
        Ended::Outcome(outcome) => {
            let completion = completion(job, action, outcome.clone());
            let verdict = verdict(&outcome, &completion);
            Finished::Completed { completion, action: job.action.clone(), verdict }
        }
        Ended::Panicked(message) => {
            let mut c = completion(
                job,
                action,
                ActionOutcome::Retryable { error: format!("action panicked: {message}"), retry_after: None },
            );
            c.outcome = AttemptOutcome::Panicked;
            Finished::Completed { completion: c, action: job.action.clone(), verdict: None }
        }
        Ended::Aborted(AbortReason::Cancelled) | Ended::NotStarted(AbortReason::Cancelled) => Finished::Completed {
            completion: Completion {
                id: job.id,
                attempt: job.attempt,
                next: NextState::Cancelled,
                outcome: AttemptOutcome::Cancelled,
                error: Some(AbortReason::Cancelled.describe().to_owned()),
                result: None,
            },
            action: job.action.clone(),
            verdict: None,
        },
        Ended::Aborted(AbortReason::LeaseLost) | Ended::NotStarted(AbortReason::LeaseLost) => {
            tracing::warn!("action aborted: lease lost; the new owner's result stands");
            return None;
        }
        Ended::Aborted(reason) | Ended::NotStarted(reason) => {
            if started {
                tracing::warn!(reason = reason.describe(), "action aborted; releasing the job");
            } else {
                tracing::info!(reason = reason.describe(), "job stopped before it started; giving it back");
            }
            let held = jobs::HeldAttempt { id: job.id, attempt: job.attempt, started };
            Finished::Released { held, action: job.action.clone(), reason: reason.describe().to_owned() }
        }
    })
}

/// Counts, times and logs a finished attempt.
fn record(action: &str, c: &Completion, verdict: Option<&Verdict>, started: Instant) {
    if let Some(Verdict::Throttled(wait)) = verdict {
        metrics::counter!("docket_action_throttled_total", "action" => action.to_owned(), "reason" => "retry_after")
            .increment(1);
        tracing::info!(wait_ms = wait.as_millis() as u64, "target pushed back; the job and its action wait");
    }
    metrics::counter!("docket_attempts_total", "action" => action.to_owned(), "outcome" => c.outcome.as_str())
        .increment(1);
    metrics::histogram!("docket_attempt_duration_seconds", "action" => action.to_owned())
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        outcome = c.outcome.as_str(),
        next = ?c.next,
        elapsed_ms = started.elapsed().as_millis() as u64,
        error = c.error.as_deref(),
        "attempt finished"
    );
}

/// What a follow-up's templates read about its parent (`None` if the parent was
/// pruned meanwhile: `parent.*` are then empty).
async fn parent_context(db: &docket::db::Db, id: docket::domain::JobId) -> Result<Option<ParentContext>, String> {
    let row = docket::db::retry_transient(|| db.run(async |c| docket::db::jobs::get(c, id).await))
        .await
        .map_err(|e| format!("could not read the parent job {id}: {e}"))?;
    Ok(row.map(|p| ParentContext {
        id: p.id.to_string(),
        state: p.state.as_str().to_owned(),
        attempts: p.attempts,
        last_error: p.last_error,
        result: p.result,
        finished_at: p.finished_at,
    }))
}

/// The Workfront event that started the job's chain (`None` for a menu click's, or
/// once pruned: `event` is then `none` in its templates).
async fn event_context(db: &docket::db::Db, id: docket::domain::JobId) -> Result<Option<EventContext>, String> {
    docket::db::retry_transient(|| db.run(async |c| docket::db::events::context_of(c, id).await))
        .await
        .map_err(|e| format!("could not read the job's event: {e}"))
}

/// Runs `action` guarded: a panic becomes [`Ended::Panicked`], running past `timeout`
/// becomes a timed-out outcome, and `abort` stops it at once (the action is dropped).
///
/// The action runs inside the job's task, not a task of its own: a spawn per job cost
/// a second task's allocation, scheduling and wake-up, and copying the action's
/// future into the runtime and its output out of it (copies into and out of tasks were
/// the largest item of the workers' CPU in a drain of noop jobs). It is boxed before anything else holds it, so that the job's
/// task, which is moved a few times on its way into the runtime, holds a pointer and
/// not the action's future (several kilobytes for an HTTP action).
pub fn run_guarded<F>(action: F, timeout: Duration, abort: &Abort) -> impl Future<Output = Ended> + Send + '_
where
    F: Future<Output = ActionOutcome> + Send + 'static,
{
    let action: Pin<Box<dyn Future<Output = ActionOutcome> + Send>> = Box::pin(action);
    guard(action, timeout, abort)
}

async fn guard(action: Pin<Box<dyn Future<Output = ActionOutcome> + Send>>, timeout: Duration, abort: &Abort) -> Ended {
    // Unwinding leaves nothing half-updated that the job's task reads afterwards: the
    // action owns its state, and a panicked action is dropped here.
    let caught = AssertUnwindSafe(action).catch_unwind();
    tokio::select! {
        joined = tokio::time::timeout(timeout, caught) => match joined {
            Ok(Ok(outcome)) => Ended::Outcome(outcome),
            Ok(Err(payload)) => Ended::Panicked(panic_message(payload.as_ref())),
            Err(_) => Ended::Outcome(ActionOutcome::TimedOut),
        },
        reason = abort.aborted() => Ended::Aborted(reason),
    }
}

/// Turns an action's outcome into the job's next state, by the action's retry policy.
/// Back-pressure (a throttled outcome) waits as the target asked (capped by
/// `retry_max`, plus a little jitter so that waiting jobs do not return at one
/// instant) without spending an attempt, up to [`MAX_SNOOZES`] times per job; after
/// that it spends attempts like a retryable error.
pub fn completion(job: &ClaimedJob, action: &Action, outcome: ActionOutcome) -> Completion {
    let (outcome, error, retry_after, retryable) = match outcome {
        ActionOutcome::Succeeded { result } => {
            return Completion {
                id: job.id,
                attempt: job.attempt,
                next: NextState::Succeeded,
                outcome: AttemptOutcome::Succeeded,
                error: None,
                result,
            }
        }
        ActionOutcome::Throttled { error, retry_after } if job.snoozes < MAX_SNOOZES => {
            let wait = back_pressure_wait(job, action, retry_after);
            return Completion {
                id: job.id,
                attempt: job.attempt,
                next: NextState::Retry(wait),
                outcome: AttemptOutcome::Throttled,
                error: Some(format!(
                    "{error}; waiting {} without spending an attempt",
                    humantime::format_duration(Duration::from_secs(wait.as_secs()))
                )),
                result: None,
            };
        }
        ActionOutcome::Throttled { error, retry_after } => (
            AttemptOutcome::RetryableError,
            format!("{error} (turned away {MAX_SNOOZES} times; now spending attempts)"),
            retry_after,
            true,
        ),
        ActionOutcome::Retryable { error, retry_after } => (AttemptOutcome::RetryableError, error, retry_after, true),
        ActionOutcome::Permanent { error } => (AttemptOutcome::PermanentError, error, None, false),
        ActionOutcome::TimedOut => (
            AttemptOutcome::TimedOut,
            format!("timed out after {}", humantime::format_duration(action.timeout)),
            None,
            true,
        ),
    };
    let attempts_left = job.attempt < job.max_attempts;
    let (next, error) = match (retryable, attempts_left) {
        (true, true) => (NextState::Retry(action.retry.delay(job.attempt as u32, retry_after)), error),
        (true, false) => (NextState::Failed, format!("{error} (gave up after {} attempts)", job.attempt)),
        (false, _) => (NextState::Failed, error),
    };
    Completion { id: job.id, attempt: job.attempt, next, outcome, error: Some(error), result: None }
}

/// How long a job (and its action) waits after back-pressure: the target's
/// `Retry-After`, or the action's backoff when it gave none; capped by `retry_max`;
/// plus up to a tenth (at least 100 ms) of jitter.
fn back_pressure_wait(job: &ClaimedJob, action: &Action, retry_after: Option<Duration>) -> Duration {
    let wait = match retry_after {
        Some(wait) => wait.min(action.retry.cap),
        None => action.retry.delay(job.snoozes as u32 + 1, None),
    };
    let spread = (wait / 10).max(Duration::from_millis(100));
    wait + spread.mul_f64(rand::random::<f64>())
}

/// What an attempt's end tells flow control about the target.
pub fn verdict(outcome: &ActionOutcome, completion: &Completion) -> Option<Verdict> {
    match outcome {
        ActionOutcome::Succeeded { .. } => Some(Verdict::Succeeded),
        ActionOutcome::Permanent { .. } => Some(Verdict::Answered),
        ActionOutcome::Retryable { .. } | ActionOutcome::TimedOut => Some(Verdict::Failed),
        ActionOutcome::Throttled { retry_after, .. } => Some(Verdict::Throttled(match completion.next {
            NextState::Retry(wait) => wait,
            _ => retry_after.unwrap_or(Duration::from_secs(1)),
        })),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use docket::catalog::ActionKind;
    use docket::domain::JobId;
    use docket::retry::RetryPolicy;

    fn job(attempt: i32, max_attempts: i32) -> ClaimedJob {
        ClaimedJob {
            id: JobId::new(),
            action: "a".into(),
            document_id: "d".into(),
            document_version_id: "v".into(),
            requested_by: None,
            attempt,
            max_attempts,
            parent_id: None,
            snoozes: 0,
            traceparent: None,
        }
    }

    fn action() -> Action {
        Action {
            name: "a".into(),
            display_name: "A".into(),
            menu: true,
            kind: ActionKind::Noop,
            timeout: Duration::from_millis(100),
            retry: RetryPolicy { max_attempts: 3, base: Duration::from_secs(1), cap: Duration::from_secs(10) },
            dedupe: true,
            on_finish: Vec::new(),
            flow: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_panic_fails_the_attempt_not_the_worker() {
        let ended = run_guarded(async { panic!("boom in action") }, Duration::from_secs(5), &Abort::default()).await;
        assert_eq!(ended, Ended::Panicked("boom in action".into()));
        let owned =
            run_guarded(async { panic!("{}", String::from("owned")) }, Duration::from_secs(5), &Abort::default()).await;
        assert_eq!(owned, Ended::Panicked("owned".into()));
    }

    #[tokio::test]
    async fn running_past_the_timeout_times_out() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            ActionOutcome::Succeeded { result: None }
        };
        assert_eq!(
            run_guarded(slow, Duration::from_millis(20), &Abort::default()).await,
            Ended::Outcome(ActionOutcome::TimedOut)
        );
    }

    #[tokio::test]
    async fn abort_stops_the_action_with_its_reason() {
        let abort = Abort::default();
        let trigger = abort.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.abort(AbortReason::LeaseUnrenewable);
        });
        let pending = async {
            std::future::pending::<()>().await;
            ActionOutcome::Succeeded { result: None }
        };
        assert_eq!(
            run_guarded(pending, Duration::from_secs(60), &abort).await,
            Ended::Aborted(AbortReason::LeaseUnrenewable)
        );
    }

    #[test]
    fn outcomes_map_to_next_states() {
        let a = action();
        let ok = completion(&job(1, 3), &a, ActionOutcome::Succeeded { result: None });
        assert_eq!((ok.next, ok.outcome, ok.error), (NextState::Succeeded, AttemptOutcome::Succeeded, None));

        let retry = completion(&job(1, 3), &a, ActionOutcome::Retryable { error: "503".into(), retry_after: None });
        assert!(matches!(retry.next, NextState::Retry(d) if d >= Duration::from_secs(1)));
        let waited = completion(
            &job(1, 3),
            &a,
            ActionOutcome::Retryable { error: "429".into(), retry_after: Some(Duration::from_secs(7)) },
        );
        assert_eq!(waited.next, NextState::Retry(Duration::from_secs(7)));

        let exhausted = completion(&job(3, 3), &a, ActionOutcome::Retryable { error: "503".into(), retry_after: None });
        assert_eq!(exhausted.next, NextState::Failed);
        assert_eq!(exhausted.error.as_deref(), Some("503 (gave up after 3 attempts)"));

        let permanent = completion(&job(1, 3), &a, ActionOutcome::Permanent { error: "400".into() });
        assert_eq!((permanent.next, permanent.outcome), (NextState::Failed, AttemptOutcome::PermanentError));

        let timed_out = completion(&job(1, 3), &a, ActionOutcome::TimedOut);
        assert_eq!(timed_out.outcome, AttemptOutcome::TimedOut);
        assert_eq!(timed_out.error.as_deref(), Some("timed out after 100ms"));
    }
}
