//! "Why is this job where it is?", in plain words, from the job, its attempts and
//! the live workers.

use chrono::{DateTime, Utc};

use docket::db::jobs::{AttemptRow, JobRow};
use docket::db::workers::WorkerRow;
use docket::domain::{AttemptOutcome, JobState};

use super::flow::ActionFlow;

/// The explanation; `flow` is the flow control of the job's action (what may hold a
/// waiting job back beyond its own state).
pub fn explain(
    job: &JobRow,
    attempts: &[AttemptRow],
    workers: &[WorkerRow],
    flow: Option<&ActionFlow>,
    now: DateTime<Utc>,
) -> String {
    let waiting = matches!(job.state, JobState::Queued | JobState::Retrying);
    let mut text = explain_state(job, attempts, workers, now);
    if let Some(flow) = flow.filter(|_| waiting) {
        if let Some(holding) = flow.holding() {
            text = format!("{text}; held: {holding}");
        } else if flow.is_full() {
            text = format!(
                "{text}; held: limit group '{}' runs {} of its {} allowed jobs — it starts when one ends",
                flow.limit_group.as_deref().unwrap_or(&flow.action),
                flow.group_running.unwrap_or(0),
                flow.max_concurrency.unwrap_or(0)
            );
        } else if let Some(rate) = &flow.rate {
            text = format!(
                "{text}; limit group '{}' starts at most {rate} (burst {})",
                flow.limit_group.as_deref().unwrap_or(&flow.action),
                flow.burst.unwrap_or(1)
            );
        }
    }
    text
}

fn explain_state(job: &JobRow, attempts: &[AttemptRow], workers: &[WorkerRow], now: DateTime<Utc>) -> String {
    let last = attempts.last();
    let last_error = || job.last_error.as_deref().map(short).unwrap_or_default();
    match job.state {
        JobState::Queued | JobState::Retrying if job.run_at > now => format!(
            "waiting for attempt {} at {} (backoff after {})",
            job.attempts + 1,
            clock(job.run_at),
            if last_error().is_empty() { "the previous attempt".to_owned() } else { last_error() }
        ),
        JobState::Queued | JobState::Retrying => {
            let waiting = age(now - job.run_at);
            let able = workers.iter().filter(|w| w.actions.contains(&job.action)).count();
            let what = if job.state == JobState::Queued { "queued" } else { "due for a retry" };
            if able == 0 {
                format!("{what} {waiting}; no live worker knows action '{}'", job.action)
            } else {
                format!(
                    "{what} {waiting}; {able} live worker(s) know action '{}' — it starts when one has a free slot",
                    job.action
                )
            }
        }
        JobState::Running => {
            let worker = job.lease_owner.as_deref().unwrap_or("?");
            let since = last.map(|a| clock(a.started_at)).unwrap_or_else(|| "?".into());
            let lease = job.lease_expires_at.map(clock).unwrap_or_else(|| "?".into());
            let mut text = format!(
                "running on worker {worker} since {since} (attempt {} of {}), lease until {lease}",
                job.attempts, job.max_attempts
            );
            if job.lease_expires_at.is_some_and(|l| l < now) {
                text.push_str("; the lease has expired: another worker will rescue the job");
            }
            if job.cancel_requested_at.is_some() {
                text.push_str("; cancel requested, waiting for the worker to stop it");
            }
            text
        }
        JobState::Succeeded => {
            format!("succeeded at {} after {} attempt(s)", job.finished_at.map(clock).unwrap_or_default(), job.attempts)
        }
        JobState::Failed => match last.and_then(|a| a.outcome) {
            Some(AttemptOutcome::PermanentError) => {
                format!("failed: {} — not retried", last_error().trim_end_matches(" (not retried)"))
            }
            Some(AttemptOutcome::LeaseExpired) => {
                format!("failed: the worker vanished during the last allowed attempt ({})", last_error())
            }
            _ => format!("failed after {} of {} attempts: {}", job.attempts, job.max_attempts, last_error()),
        },
        JobState::Cancelled => {
            format!("cancelled at {}", job.finished_at.map(clock).unwrap_or_default())
        }
    }
}

fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S UTC").to_string()
}

fn age(elapsed: chrono::TimeDelta) -> String {
    let seconds = elapsed.num_seconds().max(0);
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds / 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

fn short(error: &str) -> String {
    let mut text: String = error.chars().take(160).collect();
    if error.chars().count() > 160 {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use docket::domain::JobId;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, h, m, s).unwrap()
    }

    fn job(state: JobState) -> JobRow {
        JobRow {
            id: JobId::new(),
            action: "archive".into(),
            document_id: "d".into(),
            document_version_id: "v".into(),
            requested_by: None,
            state,
            attempts: 2,
            max_attempts: 8,
            run_at: at(12, 0, 0),
            last_error: Some("target answered HTTP 503 Service Unavailable".into()),
            lease_owner: None,
            lease_expires_at: None,
            created_at: at(11, 59, 0),
            updated_at: at(12, 0, 0),
            finished_at: None,
            cancel_requested_at: None,
            result: None,
            parent_id: None,
            trigger: None,
            event_id: None,
        }
    }

    fn attempt(outcome: Option<AttemptOutcome>) -> AttemptRow {
        AttemptRow {
            job_id: JobId::new(),
            attempt: 2,
            worker_id: "w-7".into(),
            started_at: at(12, 1, 0),
            finished_at: None,
            outcome,
            error: None,
        }
    }

    fn worker(actions: &[&str]) -> WorkerRow {
        WorkerRow {
            id: "w-7".into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            concurrency: 16,
            started_at: at(11, 0, 0),
            heartbeat_at: at(12, 0, 0),
        }
    }

    #[test]
    fn waiting_for_a_retry() {
        let mut j = job(JobState::Retrying);
        j.run_at = at(12, 4, 10);
        assert_eq!(
            explain(&j, &[], &[], None, at(12, 2, 0)),
            "waiting for attempt 3 at 12:04:10 UTC (backoff after target answered HTTP 503 Service Unavailable)"
        );
    }

    #[test]
    fn queued_without_a_worker_that_knows_the_action() {
        let j = job(JobState::Queued);
        assert_eq!(
            explain(&j, &[], &[worker(&["print"])], None, at(12, 4, 0)),
            "queued 4 min; no live worker knows action 'archive'"
        );
        assert!(explain(&j, &[], &[worker(&["archive"])], None, at(12, 4, 0)).contains("1 live worker(s) know"));
    }

    #[test]
    fn running_with_its_lease() {
        let mut j = job(JobState::Running);
        j.lease_owner = Some("w-7".into());
        j.lease_expires_at = Some(at(12, 1, 30));
        assert_eq!(
            explain(&j, &[attempt(None)], &[], None, at(12, 1, 10)),
            "running on worker w-7 since 12:01:00 UTC (attempt 2 of 8), lease until 12:01:30 UTC"
        );
        assert!(explain(&j, &[attempt(None)], &[], None, at(12, 2, 0)).contains("lease has expired"));
    }

    #[test]
    fn failed_permanently_or_exhausted() {
        let mut j = job(JobState::Failed);
        j.last_error = Some("target answered HTTP 400 Bad Request (not retried)".into());
        assert_eq!(
            explain(&j, &[attempt(Some(AttemptOutcome::PermanentError))], &[], None, at(12, 5, 0)),
            "failed: target answered HTTP 400 Bad Request — not retried"
        );
        j.attempts = 8;
        assert!(explain(&j, &[attempt(Some(AttemptOutcome::RetryableError))], &[], None, at(12, 5, 0))
            .starts_with("failed after 8 of 8 attempts"));
    }

    fn flow() -> ActionFlow {
        ActionFlow {
            action: "archive".into(),
            limit_group: Some("dam".into()),
            max_concurrency: Some(3),
            rate: Some("5/1s".into()),
            burst: Some(2),
            effective_rate_per_second: Some(5.0),
            running: 1,
            group_running: Some(1),
            paused: None,
            backoff_until: None,
            circuit: None,
        }
    }

    #[test]
    fn a_waiting_job_names_what_holds_its_action() {
        let j = job(JobState::Queued);
        let mut f = flow();
        assert!(
            explain(&j, &[], &[], Some(&f), at(12, 4, 0)).ends_with("limit group 'dam' starts at most 5/1s (burst 2)")
        );
        f.group_running = Some(3);
        assert!(explain(&j, &[], &[], Some(&f), at(12, 4, 0))
            .ends_with("held: limit group 'dam' runs 3 of its 3 allowed jobs — it starts when one ends"));
        f.paused = Some(super::super::flow::Pause {
            until: None,
            by: Some("ada".into()),
            at: Some(at(12, 3, 0)),
            note: Some("DAM upgrade".into()),
        });
        assert!(explain(&j, &[], &[], Some(&f), at(12, 4, 0))
            .ends_with("held: action 'archive' is paused by ada at 12:03:00 UTC until resumed (DAM upgrade)"));
        // A finished job is not held by anything.
        assert!(!explain(&job(JobState::Succeeded), &[], &[], Some(&f), at(12, 4, 0)).contains("held"));
    }
}
