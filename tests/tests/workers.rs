//! Several worker processes, crashes, stalls and shutdowns: every job runs, no result
//! is overwritten by a worker that lost its lease.

use std::collections::HashMap;

use nix::sys::signal::Signal;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobId, JobState};
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

fn http_catalog(url: &str) -> tempfile::TempDir {
    catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{url}\"\nmax_attempts = 5\nretry_base = \"50ms\"\n"
    ))
}

/// Runs a first job to its end (so the worker has timed a job and a claim, and takes
/// jobs ahead of its slots), then a second whose call `target` holds (its second reply
/// is gated): the worker's one slot stays busy. Returns the second job.
async fn occupy_the_slot(db: &TestDb, api: &Api, target: &Target, client: &reqwest::Client) -> JobId {
    let first = api.enqueue(client, "archive", "doc-first").await;
    wait_until("the first job to succeed", DEADLINE, || async {
        (job(db, first).await.state == JobState::Succeeded).then_some(())
    })
    .await;
    let blocking = api.enqueue(client, "archive", "doc-blocking").await;
    wait_until("the second call to reach the target", DEADLINE, || async { (target.count() == 2).then_some(()) }).await;
    blocking
}

/// Queues a third job and waits until the worker claimed it ahead of its busy slot.
async fn claimed_ahead(db: &TestDb, api: &Api, client: &reqwest::Client) -> JobId {
    let waiting = api.enqueue(client, "archive", "doc-waiting").await;
    wait_until("the third job to be claimed ahead", DEADLINE, || async {
        (job(db, waiting).await.state == JobState::Running).then_some(())
    })
    .await;
    waiting
}

/// A short lease and quick rescue, so takeovers happen within seconds.
fn short_lease() -> Vec<(&'static str, String)> {
    vec![
        ("DOCKET_WORKER_LEASE", "2s".into()),
        ("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".into()),
        ("DOCKET_WORKER_POLL_INTERVAL", "200ms".into()),
    ]
}

async fn job(db: &TestDb, id: JobId) -> jobs::JobRow {
    jobs::get(&db.pool, id).await.unwrap().expect("job exists")
}

async fn count_in_state(db: &TestDb, state: &str) -> i64 {
    sqlx::query_scalar("select count(*) from jobs where state::text = $1")
        .bind(state)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_workers_run_hundreds_of_jobs_each_exactly_once() {
    const N: usize = 300;
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let a = Worker::start(&db.url, &catalog_path(&dir), "w-a", &[("DOCKET_WORKER_CONCURRENCY", "8".into())]).await;
    let b = Worker::start(&db.url, &catalog_path(&dir), "w-b", &[("DOCKET_WORKER_CONCURRENCY", "8".into())]).await;

    let ids = api.enqueue_many(&reqwest::Client::new(), "archive", N).await;

    wait_until("all jobs to succeed", DEADLINE, || async {
        (count_in_state(&db, "succeeded").await == N as i64).then_some(())
    })
    .await;

    let mut calls: HashMap<String, usize> = HashMap::new();
    for r in target.received() {
        *calls.entry(r.body["jobId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(calls.len(), N, "every job reached the target");
    assert!(calls.values().all(|&c| c == 1), "some job ran twice: {calls:?}");
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let rows = attempts::list(&db.pool, *id).await.unwrap();
        assert_eq!(rows.len(), 1, "job {id} has {} attempts", rows.len());
        *by_worker.entry(rows[0].worker_id.clone()).or_default() += 1;
    }
    assert!(by_worker.keys().all(|w| *w == a.id || *w == b.id));
    eprintln!("jobs per worker: {by_worker:?}");
}

#[tokio::test]
async fn a_killed_workers_job_is_rescued_and_run_by_another() {
    let db = TestDb::new().await;
    // The first call never answers: its worker dies holding it.
    let target = Target::start(|n| if n == 1 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let mut doomed = Worker::start(&db.url, &catalog_path(&dir), "w-doomed", &short_lease()).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-kill").await;
    wait_until("the first worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    doomed.process.kill().await;

    let survivor = Worker::start(&db.url, &catalog_path(&dir), "w-survivor", &short_lease()).await;
    let done =
        wait_until("the job to finish", DEADLINE, || async { Some(job(&db, id).await).filter(|j| j.state.is_final()) })
            .await;

    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 2);
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!((rows[0].worker_id.as_str(), rows[0].outcome), ("w-doomed", Some(AttemptOutcome::LeaseExpired)));
    assert!(rows[0].error.as_deref().unwrap().contains("lease expired: worker w-doomed"));
    assert_eq!((rows[1].worker_id.as_str(), rows[1].outcome), (survivor.id.as_str(), Some(AttemptOutcome::Succeeded)));
}

#[tokio::test]
async fn a_rescued_job_wakes_the_workers_that_run_its_action_not_only_the_rescuer() {
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let other = catalog("[[action]]\nname = \"other\"\nkind = \"noop\"\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    // Neither archive worker polls or rescues within the test's deadline: only a
    // notification can start the rescued job.
    let never = |lease: &str| {
        vec![
            ("DOCKET_WORKER_LEASE", lease.to_owned()),
            ("DOCKET_WORKER_POLL_INTERVAL", "10m".to_owned()),
            ("DOCKET_WORKER_RESCUE_INTERVAL", "10m".to_owned()),
        ]
    };
    let mut doomed = Worker::start(&db.url, &catalog_path(&dir), "w-doomed", &never("2s")).await;
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-rescue-wake").await;
    wait_until("the first worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    // Started while the job is still held: its start-up claim finds nothing.
    let runner = Worker::start(&db.url, &catalog_path(&dir), "w-runner", &never("30s")).await;
    doomed.process.kill().await;
    // The rescuer runs a different catalog: it cannot run the job itself.
    let _rescuer = Worker::start(
        &db.url,
        &catalog_path(&other),
        "w-rescuer",
        &[("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".to_owned())],
    )
    .await;

    let done =
        wait_until("the job to finish", DEADLINE, || async { Some(job(&db, id).await).filter(|j| j.state.is_final()) })
            .await;
    assert_eq!(done.state, JobState::Succeeded);
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows[0].outcome, Some(AttemptOutcome::LeaseExpired));
    assert_eq!((rows[1].worker_id.as_str(), rows[1].outcome), (runner.id.as_str(), Some(AttemptOutcome::Succeeded)));
}

#[tokio::test]
async fn a_stalled_worker_cannot_overwrite_the_new_owners_result() {
    let db = TestDb::new().await;
    // The stalled worker's call is held and then refused with 400: if its result were
    // written, the job would end `failed`.
    let target =
        Target::start(|n| if n == 1 { Reply::status(400).body("stale").gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let stalled = Worker::start(&db.url, &catalog_path(&dir), "w-stalled", &short_lease()).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-stop").await;
    wait_until("the first worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    stalled.process.signal(Signal::SIGSTOP);

    let _taker = Worker::start(&db.url, &catalog_path(&dir), "w-taker", &short_lease()).await;
    let done = wait_until("the new owner to finish the job", DEADLINE, || async {
        Some(job(&db, id).await).filter(|j| j.state.is_final())
    })
    .await;
    assert_eq!(done.state, JobState::Succeeded);

    // Now let the stalled worker's call return, and wake the worker.
    target.open_gate();
    stalled.process.signal(Signal::SIGCONT);
    let line = wait_until("the stalled worker to log the rejection", DEADLINE, || async {
        stalled.process.logs().into_iter().find(|l| l.contains("lease lost") || l.contains("result rejected"))
    })
    .await;
    assert!(line.contains(&id.to_string()), "the log line names the job: {line}");

    let after = job(&db, id).await;
    assert_eq!(after.state, JobState::Succeeded);
    assert_eq!(after.finished_at, done.finished_at);
    assert_eq!(after.last_error, done.last_error);
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].outcome, Some(AttemptOutcome::LeaseExpired));
    assert_eq!(rows[1].outcome, Some(AttemptOutcome::Succeeded));
}

#[tokio::test]
async fn sigterm_lets_a_running_job_finish_and_claims_nothing_new() {
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let mut worker = Worker::start(&db.url, &catalog_path(&dir), "w-term", &[]).await;
    let client = reqwest::Client::new();

    let running = api.enqueue(&client, "archive", "doc-term").await;
    wait_until("the worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    worker.process.signal(Signal::SIGTERM);
    worker.process.wait_for_log("shutdown signal received").await;
    let later = api.enqueue(&client, "archive", "doc-after-term").await;

    target.open_gate();
    assert_eq!(worker.process.wait_exit(DEADLINE).await, Some(0));
    assert_eq!(job(&db, running).await.state, JobState::Succeeded);
    assert_eq!(job(&db, later).await.state, JobState::Queued, "a stopping worker must not claim");
    assert_eq!(target.count(), 1);
}

#[tokio::test]
async fn jobs_still_running_at_the_grace_deadline_are_released() {
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let mut worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-grace", &[("DOCKET_WORKER_SHUTDOWN_GRACE", "500ms".into())])
            .await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-grace").await;
    wait_until("the worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    worker.process.signal(Signal::SIGTERM);
    assert_eq!(worker.process.wait_exit(DEADLINE).await, Some(0));

    let released = job(&db, id).await;
    assert_eq!(released.state, JobState::Retrying, "released, not lost and not left running");
    assert!(released.lease_owner.is_none());
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!(rows[0].outcome, Some(AttemptOutcome::Interrupted));

    // Another worker picks it up at once.
    let _next = Worker::start(&db.url, &catalog_path(&dir), "w-next", &[]).await;
    let done = wait_until("the released job to finish", DEADLINE, || async {
        Some(job(&db, id).await).filter(|j| j.state.is_final())
    })
    .await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
}

#[tokio::test]
async fn a_job_still_in_the_local_queue_at_the_grace_deadline_goes_back_unstarted() {
    let db = TestDb::new().await;
    // 1: at once (the worker times a job and a claim, so it takes jobs ahead); 2: held
    // until the gate opens, past the grace.
    let target = Target::start(|n| if n == 2 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let env = [("DOCKET_WORKER_CONCURRENCY", "1".into()), ("DOCKET_WORKER_SHUTDOWN_GRACE", "500ms".into())];
    let mut worker = Worker::start(&db.url, &catalog_path(&dir), "w-queued", &env).await;
    let client = reqwest::Client::new();
    let blocking = occupy_the_slot(&db, &api, &target, &client).await;
    let waiting = claimed_ahead(&db, &api, &client).await;
    worker.process.signal(Signal::SIGTERM);
    assert_eq!(worker.process.wait_exit(DEADLINE).await, Some(0));

    // The job that ran is released with its attempt recorded; the one that only
    // waited for the slot goes back as it was, its attempt undone.
    let released = job(&db, blocking).await;
    assert_eq!((released.state, released.attempts), (JobState::Retrying, 1));
    assert_eq!(attempts::list(&db.pool, blocking).await.unwrap()[0].outcome, Some(AttemptOutcome::Interrupted));
    let given_back = job(&db, waiting).await;
    assert_eq!((given_back.state, given_back.attempts, given_back.lease_owner), (JobState::Queued, 0, None));
    assert!(
        attempts::list(&db.pool, waiting).await.unwrap().is_empty(),
        "no attempt recorded for a job that never ran"
    );
    assert_eq!(target.count(), 2);
    target.open_gate();
}

#[tokio::test]
async fn after_the_listener_reconnects_the_worker_claims_at_once() {
    let db = TestDb::new().await;
    let target = Target::always(200).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let proxy = docket_tests::proxy::Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    // Polling is effectively off: only a notification or the reconnect can start the job.
    let worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-relisten",
        &[("DOCKET_LISTEN_DATABASE_URL", db.url_via(proxy.addr)), ("DOCKET_WORKER_POLL_INTERVAL", "1h".into())],
    )
    .await;
    let client = reqwest::Client::new();
    let first = api.enqueue(&client, "archive", "doc-notified").await;
    wait_until("the notified job to succeed", DEADLINE, || async {
        (job(&db, first).await.state == JobState::Succeeded).then_some(())
    })
    .await;

    proxy.cut();
    worker.process.wait_for_log("LISTEN connection").await;
    // Queued while the listener is down: its notification is lost.
    let missed = api.enqueue(&client, "archive", "doc-missed").await;
    assert_eq!(job(&db, missed).await.state, JobState::Queued);
    proxy.restore();

    wait_until("the job queued during the outage to succeed", DEADLINE, || async {
        (job(&db, missed).await.state == JobState::Succeeded).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_cannot_renew_its_lease_aborts_the_action_before_the_lease_ends() {
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let proxy = docket_tests::proxy::Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let worker = Worker::start(&db.url_via(proxy.addr), &catalog_path(&dir), "w-cutoff", &short_lease()).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-cutoff").await;
    wait_until("the worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    proxy.cut();
    let line = worker.process.wait_for_log("cannot be renewed; aborting the action").await;

    // The lease as the database still has it: the last renewal that got through.
    let lease_end = job(&db, id).await.lease_expires_at.expect("still leased");
    let logged: serde_json::Value = serde_json::from_str(&line).unwrap();
    let aborted_at: chrono::DateTime<chrono::Utc> = logged["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(aborted_at < lease_end, "aborted at {aborted_at}, after the lease ended at {lease_end}");
    assert!(line.contains(&id.to_string()), "{line}");
}

/// Scale-down under load (Kubernetes removing worker pods while they drain a
/// backlog, deploy/kubernetes): four workers drain 3,000 jobs, a fifth of them slow;
/// two get SIGTERM mid-drain while the others go on. `w-grace` has the default grace
/// (25 s, longer than any attempt here): it finishes what it runs, so none of its
/// jobs runs twice. `w-short` has a 50 ms grace: what it still runs then is
/// interrupted and handed back, and another worker runs it again (at least once).
/// Every job must end succeeded, no attempt may be lost, and the only repeats are
/// of attempts `w-short` interrupted.
#[tokio::test]
async fn sigterm_under_load_loses_nothing_and_repeats_only_interrupted_attempts() {
    const N: usize = 3000;
    let deadline = std::time::Duration::from_secs(240);
    let db = TestDb::new().await;
    // Every fifth request takes 400 ms, so stopping workers hold slow attempts.
    let target = Target::start(|n| {
        let delay = if n % 5 == 0 { 400 } else { 2 };
        Reply::status(200).delay(std::time::Duration::from_millis(delay))
    })
    .await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    api.enqueue_many(&reqwest::Client::new(), "archive", N).await;

    let slots = || ("DOCKET_WORKER_CONCURRENCY", "16".to_owned());
    let mut graceful = Worker::start(&db.url, &catalog_path(&dir), "w-grace", &[slots()]).await;
    let mut short = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-short",
        &[slots(), ("DOCKET_WORKER_SHUTDOWN_GRACE", "50ms".to_owned())],
    )
    .await;
    let _c = Worker::start(&db.url, &catalog_path(&dir), "w-c", &[slots()]).await;
    let _d = Worker::start(&db.url, &catalog_path(&dir), "w-d", &[slots()]).await;

    wait_until("a tenth of the jobs to succeed", deadline, || async {
        (count_in_state(&db, "succeeded").await >= N as i64 / 10).then_some(())
    })
    .await;
    graceful.process.signal(Signal::SIGTERM);
    short.process.signal(Signal::SIGTERM);
    let done_at_signal = count_in_state(&db, "succeeded").await;
    assert!(done_at_signal < N as i64, "the backlog was drained before the SIGTERMs: the test proves nothing");
    assert_eq!(graceful.process.wait_exit(deadline).await, Some(0));
    assert_eq!(short.process.wait_exit(deadline).await, Some(0));

    wait_until("every job to succeed", deadline, || async {
        (count_in_state(&db, "succeeded").await == N as i64).then_some(())
    })
    .await;
    assert_eq!(count_in_state(&db, "succeeded").await, N as i64, "no job ended otherwise");

    // Every attempt, per job, against what the target received per job.
    let rows: Vec<(uuid::Uuid, i32, String, Option<String>)> =
        sqlx::query_as("select job_id, attempt, worker_id, outcome::text from job_attempts order by job_id, attempt")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut attempts_of: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    for (job_id, _, worker, outcome) in rows {
        attempts_of.entry(job_id.to_string()).or_default().push((worker, outcome));
    }
    let mut hits: HashMap<String, usize> = HashMap::new();
    for r in target.received() {
        *hits.entry(r.body["jobId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(attempts_of.len(), N, "every job has attempts");
    assert_eq!(hits.len(), N, "every job reached the target");
    let mut repeated = 0;
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    for (job, attempts) in &attempts_of {
        let (last, earlier) = attempts.split_last().unwrap();
        // An interrupted attempt may have been stopped before its request left.
        if earlier.is_empty() {
            assert_eq!(hits[job], 1, "job {job} reached the target {} times in one attempt", hits[job]);
        } else {
            assert!(hits[job] <= attempts.len(), "job {job}: {} target hits for {attempts:?}", hits[job]);
        }
        assert_eq!(last.1.as_deref(), Some("succeeded"), "job {job}: {attempts:?}");
        for (worker, outcome) in earlier {
            assert_eq!(
                (worker.as_str(), outcome.as_deref()),
                ("w-short", Some("interrupted")),
                "job {job} ran again, but not because w-short's short grace interrupted it: {attempts:?}"
            );
        }
        repeated += earlier.len();
        for (worker, _) in attempts {
            *per_worker.entry(worker.clone()).or_default() += 1;
        }
    }
    assert!(per_worker.get("w-grace").copied().unwrap_or(0) > 0, "w-grace ran jobs: {per_worker:?}");
    assert!(per_worker.get("w-short").copied().unwrap_or(0) > 0, "w-short ran jobs: {per_worker:?}");
    eprintln!(
        "succeeded at the SIGTERMs: {done_at_signal}; attempts per worker: {per_worker:?}; \
         attempts interrupted by w-short's grace and run again: {repeated}"
    );
}

/// How many jobs each claim of `worker` started: the attempt rows of one claim share
/// its transaction's `now()`.
async fn claim_sizes(db: &TestDb, worker: &str) -> Vec<i64> {
    sqlx::query_scalar("select count(*) from job_attempts where worker_id = $1 group by started_at order by started_at")
        .bind(worker)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Waits until all `n` jobs succeeded; returns the most jobs seen in state `running`
/// (held by workers) on the way.
async fn most_running_until_all_succeed(db: &TestDb, n: usize) -> i64 {
    let most = std::sync::atomic::AtomicI64::new(0);
    wait_until("all jobs to succeed", DEADLINE, || async {
        most.fetch_max(count_in_state(db, "running").await, std::sync::atomic::Ordering::Relaxed);
        (count_in_state(db, "succeeded").await == n as i64).then_some(())
    })
    .await;
    most.into_inner()
}

const TICK: &str = "[[action]]\nname = \"tick\"\nkind = \"noop\"\n";

async fn run_noops(catalog_text: &str, prefetch: Option<u32>) -> Vec<i64> {
    const N: usize = 600;
    let db = TestDb::new().await;
    let dir = catalog(catalog_text);
    let mut env = vec![("DOCKET_WORKER_CONCURRENCY", "2".to_owned())];
    env.extend(prefetch.map(|p| ("DOCKET_WORKER_PREFETCH", p.to_string())));
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-noop", &env).await;
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    api.enqueue_many(&reqwest::Client::new(), "tick", N).await;
    wait_until("all jobs to succeed", DEADLINE, || async {
        (count_in_state(&db, "succeeded").await == N as i64).then_some(())
    })
    .await;
    claim_sizes(&db, "w-noop").await
}

#[tokio::test]
async fn short_jobs_are_claimed_ahead_of_the_free_slots_up_to_the_prefetch() {
    // Two slots, so by default at most 2 + 32 jobs per claim; more than 2 once the
    // worker has timed a job and a claim.
    let sizes = run_noops(TICK, None).await;
    let largest = *sizes.iter().max().unwrap();
    assert!((3..=34).contains(&largest), "claims of {sizes:?}");
    // DOCKET_WORKER_PREFETCH=0: only the free slots.
    let sizes = run_noops(TICK, Some(0)).await;
    assert!(sizes.iter().all(|n| *n <= 2), "claims of {sizes:?}");
}

#[tokio::test]
async fn groups_are_claimed_ahead_unless_a_small_burst_leaves_no_start_window() {
    let sizes = run_noops(&format!("{TICK}max_concurrency = 1000\n"), None).await;
    let largest = *sizes.iter().max().unwrap();
    assert!((3..=34).contains(&largest), "claims of {sizes:?}");
    // Tokens are taken at the claim; a burst of 10,000 at 10,000/s grants a start
    // window of 100 ms (the bucket keeps that much back), so jobs are claimed ahead.
    let sizes = run_noops(&format!("{TICK}max_concurrency = 1000\nrate = \"10000/1s\"\nburst = 10000\n"), None).await;
    let largest = *sizes.iter().max().unwrap();
    assert!((3..=34).contains(&largest), "claims of {sizes:?}");
    // A burst below 20 leaves no room for a window: claims for free slots only.
    let sizes = run_noops(&format!("{TICK}max_concurrency = 1000\nrate = \"100000/1s\"\nburst = 10\n"), None).await;
    assert!(sizes.iter().all(|n| *n <= 2), "claims of {sizes:?}");
    // Nor does a worker that also serves such a group claim its plain actions ahead:
    // queued jobs would take every slot that frees, and the group would wait.
    let rated = "[[action]]\nname = \"paced\"\nkind = \"noop\"\nrate = \"100000/1s\"\n";
    let sizes = run_noops(&format!("{TICK}{rated}"), None).await;
    assert!(sizes.iter().all(|n| *n <= 2), "claims of {sizes:?}");
}

#[tokio::test]
async fn a_rated_job_that_cannot_start_within_its_window_goes_back_unstarted() {
    let db = TestDb::new().await;
    // 1: at once (the worker times a job and a claim, so it takes jobs ahead); 2: held
    // until the gate opens.
    let target = Target::start(|n| if n == 2 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    // A burst of 1,000 at 1,000/s: a start window of 100 ms.
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nrate = \"1000/1s\"\nburst = 1000\n",
        target.url
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-window", &[("DOCKET_WORKER_CONCURRENCY", "1".into())]).await;
    let client = reqwest::Client::new();
    let blocking = occupy_the_slot(&db, &api, &target, &client).await;
    let waiting = api.enqueue(&client, "archive", "doc-waiting").await;
    // Claimed ahead of the busy slot, it waits past its window and goes back.
    wait_until("a job to miss its start window", DEADLINE, || async {
        let metrics = reqwest::get(format!("{}/metrics", worker.health)).await.ok()?.text().await.ok()?;
        metrics.lines().any(|l| l == r#"docket_jobs_not_started_in_time_total{action="archive"} 1"#).then_some(())
    })
    .await;
    let given_back = wait_until("the job to be queued again", DEADLINE, || async {
        Some(job(&db, waiting).await).filter(|j| j.state == JobState::Queued)
    })
    .await;
    assert_eq!((given_back.attempts, given_back.last_error), (0, None), "the attempt is undone");
    let rows: i64 = sqlx::query_scalar("select count(*) from job_attempts where job_id = $1")
        .bind(waiting.0)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(target.count(), 2, "the job that missed its window did not call the target");
    // While its slot stays busy the worker takes nothing ahead again (it would only
    // give it back): the job stays queued.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(job(&db, waiting).await.state, JobState::Queued);

    target.open_gate();
    wait_until("every job to succeed", DEADLINE, || async {
        (job(&db, blocking).await.state == JobState::Succeeded && job(&db, waiting).await.state == JobState::Succeeded)
            .then_some(())
    })
    .await;
    assert_eq!(job(&db, waiting).await.attempts, 1, "one attempt, the one that ran");
    assert_eq!(target.count(), 3);
}

#[tokio::test]
async fn slow_jobs_are_not_hoarded_by_one_worker() {
    const N: usize = 24;
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(200).delay(std::time::Duration::from_millis(300))).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-slow", &[("DOCKET_WORKER_CONCURRENCY", "4".into())]).await;
    api.enqueue_many(&reqwest::Client::new(), "archive", N).await;
    let most_held = most_running_until_all_succeed(&db, N).await;
    // Four slots and, ahead of them, the jobs they finish during one claim: 4 x (a
    // claim's round trip) / 300 ms is one job while a claim takes under 75 ms, two
    // below 150 ms; and a job or two whose result is being written. A queue as deep
    // as the prefetch allows (64) would hold 68.
    assert!(most_held <= 8, "the worker held {most_held} jobs at once with 4 slots");
}

#[tokio::test]
async fn a_job_cancelled_while_waiting_in_the_local_queue_never_reaches_the_target() {
    let db = TestDb::new().await;
    // The first call answers at once (the worker times a job and a claim, so it takes
    // jobs ahead); the second holds its one slot until the gate opens.
    let target = Target::start(|n| if n == 2 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-ahead", &[("DOCKET_WORKER_CONCURRENCY", "1".into())]).await;
    let client = reqwest::Client::new();
    let blocking = occupy_the_slot(&db, &api, &target, &client).await;
    // Claimed (the worker took it ahead of its busy slot), not started.
    let waiting = claimed_ahead(&db, &api, &client).await;
    assert_eq!(target.count(), 2);
    // The worker's gauges tell the running job from the one waiting for its slot.
    wait_until("the gauges to show one running and one queued job", DEADLINE, || async {
        let metrics = reqwest::get(format!("{}/metrics", worker.health)).await.ok()?.text().await.ok()?;
        let shown = |line: &str| metrics.lines().any(|l| l == line);
        (shown("docket_worker_running_jobs 1") && shown("docket_worker_queued_jobs 1")).then_some(())
    })
    .await;

    let mut conn = db.pool.acquire().await.unwrap();
    let rules = jobs::FollowUpRules::default();
    let requested = docket::db::ops::job_cancel(&mut conn, waiting, &rules).await.unwrap();
    assert_eq!(requested, docket::db::ops::Cancelled::Requested);
    // The worker hears of the cancel while the job still waits for the slot.
    worker.process.wait_for_log("cancel requested; aborting the action").await;
    target.open_gate();
    let cancelled = wait_until("the waiting job to end", DEADLINE, || async {
        Some(job(&db, waiting).await).filter(|j| j.state.is_final())
    })
    .await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(job(&db, blocking).await.state, JobState::Succeeded);
    assert_eq!(target.count(), 2, "the cancelled job was sent to the target");
}

#[tokio::test]
async fn a_job_waiting_in_the_local_queue_does_not_call_a_target_that_asked_to_wait() {
    let db = TestDb::new().await;
    // 1: at once (the worker times a job and a claim); 2: held until the gate opens,
    // then 429 with Retry-After: 3; later calls succeed.
    let target = Target::start(|n| match n {
        2 => Reply::status(429).retry_after("3").gated(),
        _ => Reply::status(200),
    })
    .await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let _worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-held", &[("DOCKET_WORKER_CONCURRENCY", "1".into())]).await;
    let client = reqwest::Client::new();
    let pushed_back = occupy_the_slot(&db, &api, &target, &client).await;
    let queued = claimed_ahead(&db, &api, &client).await;

    target.open_gate();
    // The queued job gets the slot while the action waits: it ends throttled (no
    // attempt spent) without calling the target.
    let held = wait_until("the queued job's first attempt to end", DEADLINE, || async {
        attempts::list(&db.pool, queued).await.unwrap().into_iter().next().filter(|a| a.outcome.is_some())
    })
    .await;
    assert_eq!(held.outcome, Some(AttemptOutcome::Throttled), "{:?}", held.error);
    assert_eq!(target.count(), 2, "the target was called while it had asked to wait");
    // Both run once the wait is over.
    for id in [pushed_back, queued] {
        let done = wait_until("the held-back jobs to succeed", DEADLINE, || async {
            Some(job(&db, id).await).filter(|j| j.state.is_final())
        })
        .await;
        assert_eq!(done.state, JobState::Succeeded);
    }
}

#[tokio::test]
async fn a_worker_whose_results_wait_to_be_written_stops_claiming() {
    // Every write of results takes 300 ms: a statement trigger on the updates of
    // attempt rows, which only the writes of results make (claims insert them). Noop
    // jobs end at once, so their results wait to be written. A worker holds a job from
    // its claim until its result is written; it may hold as many awaiting their write
    // as it may run and queue, so with two slots and no local queue, four at most.
    // Before, a slot freed when its job ended and the worker claimed again at once: it
    // held every queued job while their results waited (thousands in a drain, each
    // lease renewed every tick).
    const N: usize = 40;
    let db = TestDb::new().await;
    let dir = catalog(TICK);
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    sqlx::raw_sql(
        "create function slow_write() returns trigger language plpgsql as
             $$ begin perform pg_sleep(0.3); return null; end $$;
         create trigger slow_write before update on job_attempts
             for each statement execute function slow_write();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    api.enqueue_many(&reqwest::Client::new(), "tick", N).await;
    let env = [("DOCKET_WORKER_CONCURRENCY", "2".to_owned()), ("DOCKET_WORKER_PREFETCH", "0".to_owned())];
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-slow-writes", &env).await;
    let most_held = most_running_until_all_succeed(&db, N).await;
    assert!(most_held <= 4, "the worker held {most_held} jobs at once with 2 slots and no local queue");
}
