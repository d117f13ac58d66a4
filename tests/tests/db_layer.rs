//! The database layer against a real Postgres: set-up races, claiming, fencing,
//! rescue and release.

use std::time::Duration;

use docket::db::jobs::{self, Completion, FollowUpRules, NewJob, NextState};
use docket::db::{attempts, PoolSettings};
use docket::domain::{AttemptOutcome, DocumentId, DocumentVersionId, JobId, JobState};
use docket_tests::TestDb;

fn new_job(action: &str, max_attempts: u32) -> NewJob {
    NewJob {
        id: JobId::new(),
        action: action.into(),
        document_id: DocumentId::parse("doc").unwrap(),
        document_version_id: DocumentVersionId::parse("v1").unwrap(),
        requested_by: None,
        max_attempts,
        dedupe: false,
        traceparent: None,
    }
}

fn actions(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const LEASE: Duration = Duration::from_secs(30);

async fn expire_leases(db: &TestDb) {
    sqlx::query("update jobs set lease_expires_at = now() - interval '1 second' where state = 'running'")
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn database_is_created_and_migrated_by_concurrent_starters() {
    let name = format!("docket_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", docket_tests::db::server_url());
    // Four starters at once, each on its own connections (joined, not spawned: the
    // migrator's future is not `Send` for every lifetime, rust-lang/rust#100013).
    let settings = PoolSettings::default();
    let starts = (0..4).map(|_| docket::db::connect_and_migrate(&url, &settings));
    for result in futures::future::join_all(starts).await {
        result.expect("every concurrent start succeeds");
    }
    let pool = docket::db::pool(
        docket::db::connect_options(&url, &PoolSettings::default()).unwrap(),
        &PoolSettings::default(),
    );
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations").fetch_one(&pool).await.unwrap();
    // The migration files only: `migrations/functions/` is not one.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"))
        .count() as i64;
    assert_eq!(applied, files, "every migration applied exactly once");
    pool.close().await;
    let admin = docket::db::pool(
        docket::db::connect_options(&format!("{}/postgres", docket_tests::db::server_url()), &PoolSettings::default())
            .unwrap(),
        &PoolSettings::default(),
    );
    sqlx::raw_sql(&format!("drop database \"{name}\" with (force)")).execute(&admin).await.unwrap();
}

#[tokio::test]
async fn claim_takes_only_due_jobs_of_known_actions_in_order() {
    let db = TestDb::new().await;
    let first = new_job("a", 3);
    let second = new_job("a", 3);
    let other = new_job("b", 3);
    for job in [&first, &second, &other] {
        jobs::insert(&db.pool, job).await.unwrap();
    }
    sqlx::query("update jobs set run_at = now() + interval '1 hour' where id = $1")
        .bind(second.id)
        .execute(&db.pool)
        .await
        .unwrap();

    let claimed = jobs::claim(&db.pool, "w1", &actions(&["a"]), 10, LEASE).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), [first.id]);
    assert_eq!(claimed[0].attempt, 1);
    let row = jobs::get(&db.pool, first.id).await.unwrap().unwrap();
    assert_eq!((row.state, row.lease_owner.as_deref()), (JobState::Running, Some("w1")));
    let attempt = &attempts::list(&db.pool, first.id).await.unwrap()[0];
    assert_eq!((attempt.worker_id.as_str(), attempt.outcome), ("w1", None));
    assert!(jobs::claim(&db.pool, "w2", &actions(&["a"]), 10, LEASE).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job() {
    let db = TestDb::new().await;
    for _ in 0..200 {
        jobs::insert(&db.pool, &new_job("a", 3)).await.unwrap();
    }
    let claims = (0..8).map(|w| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = jobs::claim(&pool, &format!("w{w}"), &actions(&["a"]), 7, LEASE).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        })
    });
    let mut all: Vec<JobId> = Vec::new();
    for handle in futures::future::join_all(claims).await {
        all.extend(handle.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (200, 200));
}

/// A claim finds each job it starts by its key: the primary-key entries it reads grow
/// with the batch, not with the jobs older than the batch (finished jobs are kept for
/// days, and job ids are ordered by time). Counted in the claim's own transaction
/// (`pg_stat_get_xact_tuples_returned`), so the test measures work, not time.
#[tokio::test]
async fn a_claim_reads_the_primary_key_per_job_not_per_older_row() {
    let db = TestDb::new().await;
    let batch: Vec<NewJob> = (0..20_000).map(|_| new_job("a", 3)).collect();
    for chunk in batch.chunks(5_000) {
        jobs::insert_many(&db.pool, chunk, false).await.unwrap();
    }
    // The statistics see a backlog of 20,000 (as autovacuum's would on a busy queue);
    // then most of it is drained, the oldest first, as a day of work leaves it.
    sqlx::query("analyze jobs").execute(&db.pool).await.unwrap();
    sqlx::query(
        "update jobs set state = 'succeeded', attempts = 1, finished_at = now()
         where id in (select id from jobs order by id limit 19000)",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    let claimed = jobs::claim(&mut *tx, "w1", &actions(&["a"]), 64, LEASE).await.unwrap();
    let read: i64 = sqlx::query_scalar("select pg_stat_get_xact_tuples_returned('jobs_pkey'::regclass)")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 64);
    // One lookup per claimed job, and one per attempt row's foreign-key check.
    assert!(read <= 4 * 64, "a claim of 64 read {read} primary-key entries");
}

#[tokio::test]
async fn completion_is_fenced_on_owner_and_attempt() {
    let db = TestDb::new().await;
    let job = new_job("a", 3);
    jobs::insert(&db.pool, &job).await.unwrap();
    let claimed = jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    let done = |attempt| Completion {
        id: job.id,
        attempt,
        next: NextState::Succeeded,
        outcome: AttemptOutcome::Succeeded,
        error: None,
        result: None,
    };

    assert!(
        jobs::complete(&db.pool, "intruder", &[done(1)], &FollowUpRules::default()).await.unwrap().is_empty(),
        "wrong owner"
    );
    assert!(
        jobs::complete(&db.pool, "w1", &[done(2)], &FollowUpRules::default()).await.unwrap().is_empty(),
        "wrong attempt"
    );
    assert_eq!(
        jobs::complete(&db.pool, "w1", &[done(claimed[0].attempt)], &FollowUpRules::default()).await.unwrap(),
        [job.id]
    );
    assert!(
        jobs::complete(&db.pool, "w1", &[done(1)], &FollowUpRules::default()).await.unwrap().is_empty(),
        "already finished"
    );
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Succeeded);
}

#[tokio::test]
async fn retry_schedules_the_next_attempt_and_failure_is_final() {
    let db = TestDb::new().await;
    let job = new_job("a", 2);
    jobs::insert(&db.pool, &job).await.unwrap();
    jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    let retry = Completion {
        id: job.id,
        attempt: 1,
        next: NextState::Retry(Duration::from_secs(3600)),
        outcome: AttemptOutcome::RetryableError,
        error: Some("HTTP 503".into()),
        result: None,
    };
    jobs::complete(&db.pool, "w1", &[retry], &FollowUpRules::default()).await.unwrap();
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!((row.state, row.last_error.as_deref()), (JobState::Retrying, Some("HTTP 503")));
    assert!(row.run_at > chrono::Utc::now() + chrono::Duration::minutes(59));
    assert!(jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap().is_empty(), "not due yet");

    sqlx::query("update jobs set run_at = now() where id = $1").bind(job.id).execute(&db.pool).await.unwrap();
    let again = jobs::claim(&db.pool, "w2", &actions(&["a"]), 1, LEASE).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    let fail = Completion {
        id: job.id,
        attempt: 2,
        next: NextState::Failed,
        outcome: AttemptOutcome::PermanentError,
        error: Some("HTTP 400".into()),
        result: None,
    };
    jobs::complete(&db.pool, "w2", &[fail], &FollowUpRules::default()).await.unwrap();
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Failed);
    assert!(row.finished_at.is_some());
    let outcomes: Vec<_> = attempts::list(&db.pool, job.id).await.unwrap().iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Some(AttemptOutcome::RetryableError), Some(AttemptOutcome::PermanentError)]);
}

#[tokio::test]
async fn rescue_requeues_expired_leases_and_fails_exhausted_jobs() {
    let db = TestDb::new().await;
    let more = new_job("a", 3);
    let last = new_job("a", 1);
    jobs::insert(&db.pool, &more).await.unwrap();
    jobs::insert(&db.pool, &last).await.unwrap();
    jobs::claim(&db.pool, "dead", &actions(&["a"]), 10, LEASE).await.unwrap();
    assert!(
        jobs::rescue_expired(&db.pool, 100, &FollowUpRules::default()).await.unwrap().is_empty(),
        "leases still valid"
    );

    expire_leases(&db).await;
    let mut rescued = jobs::rescue_expired(&db.pool, 100, &FollowUpRules::default()).await.unwrap();
    rescued.sort_by_key(|r| r.id);
    assert_eq!(rescued.len(), 2);
    assert!(rescued.iter().all(|r| r.previous_owner == "dead"));
    let more_row = jobs::get(&db.pool, more.id).await.unwrap().unwrap();
    let last_row = jobs::get(&db.pool, last.id).await.unwrap().unwrap();
    assert_eq!(more_row.state, JobState::Retrying);
    assert_eq!(last_row.state, JobState::Failed);
    assert!(last_row.last_error.unwrap().contains("lease expired: worker dead"));
    assert_eq!(attempts::list(&db.pool, more.id).await.unwrap()[0].outcome, Some(AttemptOutcome::LeaseExpired));

    // The dead worker's late completion is refused.
    let late = Completion {
        id: more.id,
        attempt: 1,
        next: NextState::Succeeded,
        outcome: AttemptOutcome::Succeeded,
        error: None,
        result: None,
    };
    assert!(jobs::complete(&db.pool, "dead", &[late], &FollowUpRules::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn renew_and_release_respect_the_owner() {
    let db = TestDb::new().await;
    let job = new_job("a", 3);
    jobs::insert(&db.pool, &job).await.unwrap();
    jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    let held = jobs::renew_leases(&db.pool, "w1", &[job.id], LEASE).await.unwrap();
    assert_eq!(held, [jobs::HeldLease { id: job.id, cancel_requested: false }]);
    assert!(jobs::renew_leases(&db.pool, "w2", &[job.id], LEASE).await.unwrap().is_empty());
    assert!(jobs::release(
        &db.pool,
        "w2",
        &[jobs::HeldAttempt { id: job.id, attempt: 1, started: true }],
        "nope",
        &FollowUpRules::default()
    )
    .await
    .unwrap()
    .is_empty());
    assert_eq!(
        jobs::release(
            &db.pool,
            "w1",
            &[jobs::HeldAttempt { id: job.id, attempt: 1, started: true }],
            "shutting down",
            &FollowUpRules::default()
        )
        .await
        .unwrap(),
        [job.id]
    );
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!((row.state, row.lease_owner), (JobState::Retrying, None));
    assert_eq!(attempts::list(&db.pool, job.id).await.unwrap()[0].outcome, Some(AttemptOutcome::Interrupted));
}

#[tokio::test]
async fn a_job_given_back_unstarted_keeps_its_attempts_and_its_place() {
    let db = TestDb::new().await;
    let job = new_job("a", 3);
    jobs::insert(&db.pool, &job).await.unwrap();
    let before = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    let unstarted = |attempt| [jobs::HeldAttempt { id: job.id, attempt, started: false }];

    // First claim, given back unstarted: queued again, as if never claimed.
    jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    let given = jobs::release(&db.pool, "w1", &unstarted(1), "late", &FollowUpRules::default()).await.unwrap();
    assert_eq!(given, [job.id]);
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts, row.lease_owner.as_deref()), (JobState::Queued, 0, None));
    assert_eq!((row.run_at, row.last_error.as_deref()), (before.run_at, None), "its place in the queue, no error");
    assert!(attempts::list(&db.pool, job.id).await.unwrap().is_empty(), "the attempt is undone");

    // A job that ran once and then waited unstarted: back to retrying with one attempt.
    jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    let failed = jobs::HeldAttempt { id: job.id, attempt: 1, started: true };
    jobs::release(&db.pool, "w1", &[failed], "shutdown", &FollowUpRules::default()).await.unwrap();
    jobs::claim(&db.pool, "w2", &actions(&["a"]), 1, LEASE).await.unwrap();
    assert!(
        jobs::release(&db.pool, "w1", &unstarted(2), "not mine", &FollowUpRules::default()).await.unwrap().is_empty(),
        "fenced on the owner"
    );
    let run_at = jobs::get(&db.pool, job.id).await.unwrap().unwrap().run_at;
    jobs::release(&db.pool, "w2", &unstarted(2), "late", &FollowUpRules::default()).await.unwrap();
    let row = jobs::get(&db.pool, job.id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts, row.run_at), (JobState::Retrying, 1, run_at));
    assert_eq!(row.last_error.as_deref(), Some("shutdown"), "the error of the attempt that ran");
    let history = attempts::list(&db.pool, job.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, Some(AttemptOutcome::Interrupted));

    // The next claim is attempt 2 again, and its row is written anew.
    let claimed = jobs::claim(&db.pool, "w1", &actions(&["a"]), 1, LEASE).await.unwrap();
    assert_eq!(claimed[0].attempt, 2);
    assert_eq!(attempts::list(&db.pool, job.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn serialization_failures_and_deadlocks_are_retried() {
    let db = TestDb::new().await;
    for code in ["40001", "40P01"] {
        let mut calls = 0;
        let result = docket::db::retry_transient(|| {
            calls += 1;
            let pool = db.pool.clone();
            let fail = calls == 1;
            async move {
                if fail {
                    let raise = format!("do $$ begin raise exception 'simulated' using errcode = '{code}'; end $$");
                    sqlx::raw_sql(&raise).execute(&pool).await?;
                }
                Ok::<_, sqlx::Error>("done")
            }
        })
        .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(calls, 2, "{code} was retried once");
    }
    // Other errors are not retried.
    let mut calls = 0;
    let result = docket::db::retry_transient(|| {
        calls += 1;
        let pool = db.pool.clone();
        async move { sqlx::raw_sql("select * from no_such_table").execute(&pool).await.map(|_| ()) }
    })
    .await;
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn the_traceparent_column_takes_exactly_the_w3c_version_00_shape() {
    let db = TestDb::new().await;
    let job = new_job("archive", 3);
    jobs::insert_many(&db.pool, std::slice::from_ref(&job), false).await.unwrap();
    let set = |value: String| {
        let pool = db.pool.clone();
        async move {
            sqlx::query("update jobs set traceparent = $1 where id = $2")
                .bind(value)
                .bind(job.id.0)
                .execute(&pool)
                .await
                .map(|_| ())
        }
    };
    let (trace, span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    set(format!("00-{trace}-{span}-01")).await.expect("a valid traceparent");
    let malformed = [
        format!("01-{trace}-{span}-01"),                           // another version
        format!("00-{}-{span}-01", trace.to_uppercase()),          // upper-case hex
        format!("00-{}-{span}-01", &trace[1..]),                   // a trace id one digit short
        format!("00-{trace}0-{span}-01"),                          // one digit long
        format!("00-{}-{}{span}-01", &trace[..31], &trace[31..]),  // a dash one place early
        format!("00-{}g-{span}-01", &trace[..31]),                 // not hex
        format!("00-{}-{}-{span}-01", &trace[..15], &trace[16..]), // a dash inside the trace id
        format!("00-{trace}-{span}-01-"),                          // trailing
        format!(" 00-{trace}-{span}-01"),                          // leading
        format!("00-{trace}-{span}-1"),                            // short flags
        format!("00-{trace}-{span}-0x"),                           // flags not hex
        format!("00-{trace}-{span}_01"),                           // another separator
    ];
    for value in malformed {
        let error = set(value.clone()).await.expect_err(&value);
        let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("23514"), "{value}: {error}");
    }
}
