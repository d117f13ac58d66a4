//! Cancel requests against every way a job leaves `running`, and real serialization
//! failures and deadlocks (not fabricated errors) on the statements that start and
//! end attempts: each is retried the way the worker runs it.

use std::time::Duration;

use docket::db::jobs::{self, Completion, FollowUpRules, NewJob, NextState};
use docket::db::{ops, retry_transient, Db, Pooler};
use docket::domain::{AttemptOutcome, DocumentId, DocumentVersionId, JobId, JobState};
use docket_tests::wait::DEADLINE;
use docket_tests::{wait_until, TestDb};

const LEASE: Duration = Duration::from_secs(30);
const WORKER: &str = "w-test";

fn new_job(max_attempts: u32) -> NewJob {
    NewJob {
        id: JobId::new(),
        action: "archive".into(),
        document_id: DocumentId::parse("doc").unwrap(),
        document_version_id: DocumentVersionId::parse("v1").unwrap(),
        requested_by: None,
        max_attempts,
        dedupe: false,
        traceparent: None,
    }
}

fn archive() -> Vec<String> {
    vec!["archive".to_owned()]
}

/// A queued job, claimed by [`WORKER`]; returns its id.
async fn claimed_job(db: &TestDb, max_attempts: u32) -> JobId {
    let job = new_job(max_attempts);
    jobs::insert(&db.pool, &job).await.unwrap();
    let claimed = jobs::claim(&db.pool, WORKER, &archive(), 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    job.id
}

/// The successful end of attempt 1 of `id`.
fn succeeded(id: JobId) -> Completion {
    Completion {
        id,
        attempt: 1,
        next: NextState::Succeeded,
        outcome: AttemptOutcome::Succeeded,
        error: None,
        result: None,
    }
}

async fn request_cancel(db: &TestDb, id: JobId) {
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(ops::job_cancel(&mut conn, id, &FollowUpRules::default()).await.unwrap(), ops::Cancelled::Requested);
}

async fn expire_leases(db: &TestDb) {
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second' where state = 'running'")
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn get(db: &TestDb, id: JobId) -> jobs::JobRow {
    jobs::get(&db.pool, id).await.unwrap().expect("job exists")
}

async fn stale_flags(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from jobs where state <> 'running' and cancel_requested_at is not null")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_job_whose_worker_died_is_cancelled_by_the_rescuer_never_run_again() {
    let db = TestDb::new().await;
    // With attempts left (it would have been retried) and on its last attempt (it
    // would have ended `failed`).
    for max_attempts in [3, 1] {
        let id = claimed_job(&db, max_attempts).await;
        request_cancel(&db, id).await;
        // The worker died before acting on the request: its lease runs out.
        expire_leases(&db).await;
        let rescued = jobs::rescue_expired(&db.pool, 100, &FollowUpRules::default()).await.unwrap();
        assert_eq!(rescued.len(), 1);
        assert_eq!(rescued[0].state, JobState::Cancelled, "max_attempts {max_attempts}");

        let job = get(&db, id).await;
        assert_eq!(job.state, JobState::Cancelled);
        assert!(job.finished_at.is_some() && job.cancel_requested_at.is_none());
        let error = job.last_error.unwrap();
        assert!(error.starts_with("cancelled by an operator; lease expired: worker w-test"), "{error}");
        let attempts = docket::db::attempts::list(&db.pool, id).await.unwrap();
        assert_eq!(attempts[0].outcome, Some(AttemptOutcome::LeaseExpired));
        assert!(jobs::claim(&db.pool, WORKER, &archive(), 10, LEASE).await.unwrap().is_empty(), "never starts again");
        assert_eq!(stale_flags(&db).await, 0);
    }
}

#[tokio::test]
async fn a_retried_job_starts_without_the_cancel_request_of_its_earlier_life() {
    let db = TestDb::new().await;
    let id = claimed_job(&db, 1).await;
    request_cancel(&db, id).await;
    expire_leases(&db).await;
    jobs::rescue_expired(&db.pool, 100, &FollowUpRules::default()).await.unwrap();

    // Every operator's retry (one job, a selection, every failed job of an action)
    // goes through this one statement: the job comes back with a clean slate.
    assert_eq!(ops::jobs_retry(&db.pool, &[id], &[("archive".into(), 3)]).await.unwrap(), [id]);
    assert_eq!(get(&db, id).await.state, JobState::Queued);
    let claimed = jobs::claim(&db.pool, WORKER, &archive(), 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let held = jobs::renew_leases(&db.pool, WORKER, &[id], LEASE).await.unwrap();
    assert_eq!(held, [jobs::HeldLease { id, cancel_requested: false }], "a stale flag would cancel it now");
}

#[tokio::test]
async fn an_attempt_that_ends_retryable_or_released_after_a_cancel_request_ends_cancelled() {
    let db = TestDb::new().await;
    // Completion: the attempt failed in a retryable way while the cancel was pending.
    let id = claimed_job(&db, 5).await;
    request_cancel(&db, id).await;
    let completion = Completion {
        id,
        attempt: 1,
        next: NextState::Retry(Duration::from_secs(1)),
        outcome: AttemptOutcome::RetryableError,
        error: Some("HTTP 503".into()),
        result: None,
    };
    assert_eq!(jobs::complete(&db.pool, WORKER, &[completion], &FollowUpRules::default()).await.unwrap(), [id]);
    let job = get(&db, id).await;
    assert_eq!(
        (job.state, job.last_error.as_deref()),
        (JobState::Cancelled, Some("cancelled by an operator; HTTP 503"))
    );
    assert!(job.finished_at.is_some());

    // Release (shutdown deadline) while the cancel was pending.
    let id = claimed_job(&db, 5).await;
    request_cancel(&db, id).await;
    assert_eq!(
        jobs::release(
            &db.pool,
            WORKER,
            &[jobs::HeldAttempt { id, attempt: 1, started: true }],
            "worker shut down",
            &FollowUpRules::default()
        )
        .await
        .unwrap(),
        [id]
    );
    assert_eq!(get(&db, id).await.state, JobState::Cancelled);
    assert!(jobs::claim(&db.pool, WORKER, &archive(), 10, LEASE).await.unwrap().is_empty());

    // A final outcome stands: a success is not turned into a cancel.
    let id = claimed_job(&db, 5).await;
    request_cancel(&db, id).await;
    let done = succeeded(id);
    jobs::complete(&db.pool, WORKER, &[done], &FollowUpRules::default()).await.unwrap();
    assert_eq!(get(&db, id).await.state, JobState::Succeeded);
    assert_eq!(stale_flags(&db).await, 0);

    // The schema itself refuses a cancel request on a job that is not running.
    let refused = sqlx::query("update jobs set cancel_requested_at = now() where id = $1")
        .bind(id.0)
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(docket::db::sqlstate(&refused).as_deref(), Some("23514"), "{refused}");
}

/// Which statement of the worker a lock conflict is induced on.
#[derive(Debug, Clone, Copy)]
enum Statement {
    Claim,
    Complete,
    Release,
    Rescue,
}

/// Runs `statement` on job `id` exactly as the worker does (through
/// [`retry_transient`] on a [`Db`]) and returns the SQLSTATE of every failed try.
async fn run_as_the_worker(db: Db, statement: Statement, id: JobId) -> (Vec<String>, bool) {
    let failures = std::sync::Mutex::new(Vec::new());
    let completion = succeeded(id);
    let applied = retry_transient(|| {
        let db = db.clone();
        let completion = completion.clone();
        let failures = &failures;
        async move {
            let result = match statement {
                Statement::Claim => {
                    db.run(async |c| jobs::claim(c, WORKER, &archive(), 10, LEASE).await.map(|j| j.len())).await
                }
                Statement::Complete => {
                    db.run(async |c| {
                        jobs::complete(c, WORKER, &[completion], &FollowUpRules::default()).await.map(|j| j.len())
                    })
                    .await
                }
                Statement::Release => {
                    db.run(async |c| {
                        jobs::release(
                            c,
                            WORKER,
                            &[jobs::HeldAttempt { id, attempt: 1, started: true }],
                            "shutdown",
                            &FollowUpRules::default(),
                        )
                        .await
                        .map(|j| j.len())
                    })
                    .await
                }
                Statement::Rescue => {
                    db.run(async |c| jobs::rescue_expired(c, 100, &FollowUpRules::default()).await.map(|j| j.len()))
                        .await
                }
            };
            if let Err(e) = &result {
                failures.lock().unwrap().push(docket::db::sqlstate(e).unwrap_or_else(|| e.to_string()));
            }
            result
        }
    })
    .await
    .expect("retried to success");
    (failures.into_inner().unwrap(), applied == 1)
}

/// Waits until some backend of this database waits for a lock.
async fn someone_waits_for_a_lock(db: &TestDb) {
    wait_until("a statement to wait for a lock", DEADLINE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
}

async fn deadlocks(db: &TestDb) -> i64 {
    sqlx::query_scalar("select deadlocks from pg_stat_database where datname = current_database()")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Prepares job `id` for `statement` and returns it.
async fn job_for(db: &TestDb, statement: Statement) -> JobId {
    match statement {
        Statement::Claim => {
            let job = new_job(3);
            jobs::insert(&db.pool, &job).await.unwrap();
            job.id
        }
        Statement::Complete | Statement::Release => claimed_job(db, 3).await,
        Statement::Rescue => {
            let id = claimed_job(db, 3).await;
            expire_leases(db).await;
            id
        }
    }
}

#[tokio::test]
async fn real_deadlocks_on_claim_complete_release_and_rescue_are_retried() {
    for statement in [Statement::Claim, Statement::Complete, Statement::Release, Statement::Rescue] {
        let db = TestDb::new().await;
        let id = job_for(&db, statement).await;
        let before = deadlocks(&db).await;

        // The blocker takes the attempt row first, then waits for the job row the
        // statement holds while the statement waits for the attempt row: a cycle.
        // Its own deadlock check comes late, so the statement is the one Postgres ends.
        let mut blocker = db.pool.begin().await.unwrap();
        sqlx::query("set local deadlock_timeout = '60s'").execute(&mut *blocker).await.unwrap();
        match statement {
            Statement::Claim => {
                // The attempt row the claim is about to insert, without the foreign key
                // check (whose row lock would make the claim skip the job).
                sqlx::query("set local session_replication_role = replica").execute(&mut *blocker).await.unwrap();
                sqlx::query("insert into job_attempts (job_id, attempt, worker_id) values ($1, 1, 'blocker')")
                    .bind(id.0)
                    .execute(&mut *blocker)
                    .await
                    .unwrap();
            }
            _ => {
                sqlx::query("select 1 from job_attempts where job_id = $1 for update")
                    .bind(id.0)
                    .execute(&mut *blocker)
                    .await
                    .unwrap();
            }
        }
        let worker = tokio::spawn(run_as_the_worker(Db::new(db.pool.clone(), Pooler::None), statement, id));
        someone_waits_for_a_lock(&db).await;
        sqlx::query("select 1 from jobs where id = $1 for update").bind(id.0).execute(&mut *blocker).await.unwrap();
        blocker.rollback().await.unwrap();

        let (failures, applied) = worker.await.unwrap();
        assert_eq!(failures, ["40P01"], "{statement:?}: one real deadlock, then retried");
        assert_eq!(deadlocks(&db).await - before, 1, "{statement:?}: Postgres counted the deadlock");
        if !matches!(statement, Statement::Claim) {
            // (A retried claim may find the job still locked by the blocker and skip
            // it; the next claim takes it.)
            assert!(applied, "{statement:?}: the retry applied the statement");
        }
    }
}

#[tokio::test]
async fn real_serialization_failures_on_complete_and_release_are_retried() {
    // (Claim and rescue lock with SKIP LOCKED: a row another transaction holds is
    // skipped, not waited for; their deadlocks are induced above.)
    for statement in [Statement::Complete, Statement::Release] {
        let db = TestDb::new().await;
        let id = job_for(&db, statement).await;
        // The worker's connections run at `serializable`; an operator's concurrent
        // change of the same row, committed while the statement waits for it, makes
        // its snapshot stale: SQLSTATE 40001.
        sqlx::raw_sql(&format!("alter database \"{}\" set default_transaction_isolation = 'serializable'", db.name))
            .execute(&db.pool)
            .await
            .unwrap();
        let serializable = docket::db::pool(
            docket::db::connect_options(&db.url, &docket::db::PoolSettings::default()).unwrap(),
            &docket::db::PoolSettings::default(),
        );
        let mut operator = db.pool.begin().await.unwrap();
        sqlx::query("update jobs set updated_at = now() where id = $1")
            .bind(id.0)
            .execute(&mut *operator)
            .await
            .unwrap();
        let worker = tokio::spawn(run_as_the_worker(Db::new(serializable, Pooler::None), statement, id));
        someone_waits_for_a_lock(&db).await;
        operator.commit().await.unwrap();

        let (failures, applied) = worker.await.unwrap();
        assert_eq!(failures, ["40001"], "{statement:?}: one real serialization failure, then retried");
        assert!(applied, "{statement:?}: the retry applied the statement");
    }
}
