//! Behind a pooler: api and workers reach Postgres through PgBouncer in transaction
//! mode (Debian's package, stock settings, fewer server connections than clients so
//! that clients share them), with `DOCKET_DB_POOLER=transaction`; the workers' LISTEN
//! connection goes to Postgres directly. The happy path, retries, the ops API, rescue
//! and dedupe must work, and wake-ups must stay fast (the workers' poll interval is
//! ten minutes here, so only a notification can start a job quickly). Each test runs
//! on a Postgres cluster of its own.

use std::collections::HashMap;
use std::time::Duration;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobId, JobState};
use docket_tests::cluster::Cluster;
use docket_tests::db::seconds_to_first_start;
use docket_tests::pooler::PgBouncer;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

/// A Postgres cluster of the test's own (fsync off: the wake-up times below measure
/// notifications, not this machine's disk, whose fsyncs now and then take up to a
/// second), a database on it, and a PgBouncer in front sharing 3 server connections.
struct Pooled {
    cluster: Cluster,
    db: TestDb,
    bouncer: PgBouncer,
}

async fn pooled_setup() -> Pooled {
    let cluster = Cluster::start();
    let db = TestDb::on_server(&cluster.server_url(), "docket_test").await;
    let bouncer = PgBouncer::start("127.0.0.1", cluster.port, 3);
    Pooled { cluster, db, bouncer }
}

fn pooled() -> Vec<(&'static str, String)> {
    vec![("DOCKET_DB_POOLER", "transaction".into())]
}

/// Worker settings: pooled, LISTEN on the direct URL, never polling on its own, and
/// a short lease with quick rescue.
fn pooled_worker(db: &TestDb) -> Vec<(&'static str, String)> {
    let mut env = pooled();
    env.extend([
        ("DOCKET_LISTEN_DATABASE_URL", db.url.clone()),
        ("DOCKET_WORKER_POLL_INTERVAL", "10m".into()),
        ("DOCKET_WORKER_LEASE", "2s".into()),
        ("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".into()),
        ("DOCKET_WORKER_CONCURRENCY", "8".into()),
    ]);
    env
}

async fn finished(db: &TestDb, id: JobId) -> jobs::JobRow {
    wait_until(&format!("job {id} to finish"), DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state.is_final())
    })
    .await
}

/// No process and not PgBouncer saw a protocol or prepared-statement error: the
/// failures sqlx behind a transaction-mode pooler shows without Docket's pooled mode.
fn assert_no_pooler_errors(bouncer: &PgBouncer, logs: &[String]) {
    for line in logs {
        for bad in ["prepared statement", "protocol", "unnamed", "bind message"] {
            assert!(!line.contains(bad), "a process logged a pooler error: {line}");
        }
    }
    let log = bouncer.log();
    for bad in ["prepared statement", "server conn crashed", "closing because: client sent"] {
        assert!(!log.contains(bad), "PgBouncer logged an error:\n{log}");
    }
}

#[tokio::test]
async fn through_pgbouncer_jobs_run_retry_and_wake_up_fast() {
    const LOAD: usize = 300;
    let Pooled { cluster: _cluster, db, bouncer } = pooled_setup().await;
    let ok = Target::always(200).await;
    // Two refusals, then success: retried with backoff.
    let flaky = Target::start(|n| if n <= 2 { Reply::status(503) } else { Reply::status(200) }).await;
    // Refuses with 400 until the operator retries: exercises the ops API's transactions.
    let refusing = Target::start(|n| if n == 1 { Reply::status(400) } else { Reply::status(200) }).await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\n\n\
         [[action]]\nname = \"flaky\"\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 5\nretry_base = \"50ms\"\nretry_max = \"200ms\"\n\n\
         [[action]]\nname = \"refused\"\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 3\n",
        ok.url, flaky.url, refusing.url
    ));
    let via = bouncer.url(&db.name);
    let mut api_env = pooled();
    api_env.push(("DOCKET_ADMIN_TOKEN", format!("tester:{}", docket_tests::inprocess::ADMIN_TOKEN)));
    let api = Api::start(&via, &catalog_path(&dir), &api_env).await;
    let a = Worker::start(&via, &catalog_path(&dir), "w-pooled-a", &pooled_worker(&db)).await;
    let b = Worker::start(&via, &catalog_path(&dir), "w-pooled-b", &pooled_worker(&db)).await;
    let client = reqwest::Client::new();

    // Happy path, one job at a time: each is started by a notification.
    let mut waits = Vec::new();
    for n in 0..20 {
        let id = api.enqueue(&client, "archive", &format!("single-{n}")).await;
        let job = finished(&db, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
        waits.push(seconds_to_first_start(&db.pool, id).await);
    }
    waits.sort_by(f64::total_cmp);
    let (median, slowest) = (waits[waits.len() / 2], waits[waits.len() - 1]);
    // Workers poll every 10 minutes: a start well under that came from a notification.
    // Generous for a busy 2-core CI; the wake-up time itself is printed, and measured
    // by docket-bench, not asserted.
    assert!(slowest < 30.0, "a job waited {slowest:.3} s to start: not woken by its notification");

    // Retries: two 503s, then success, every attempt recorded.
    let id = api.enqueue(&client, "flaky", "doc-flaky").await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 3));
    let outcomes: Vec<_> = attempts::list(&db.pool, id).await.unwrap().into_iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [Some(AttemptOutcome::RetryableError), Some(AttemptOutcome::RetryableError), Some(AttemptOutcome::Succeeded)]
    );

    // A permanent failure, then an operator's retry through the ops API.
    let id = api.enqueue(&client, "refused", "doc-refused").await;
    assert_eq!(finished(&db, id).await.state, JobState::Failed);
    let retried = client
        .post(format!("{}/ops/jobs/{id}/retry", api.base))
        .bearer_auth(docket_tests::inprocess::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200, "{:?}", retried.text().await);
    wait_until("the retried job to succeed", DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state == JobState::Succeeded)
    })
    .await;
    let detail = api.job_detail(&client, id).await;
    assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(2), "{detail}");
    assert_eq!(detail["operatorActions"][0]["actor"], "tester", "{detail}");

    // Load: hundreds of jobs over shared server connections, each run exactly once.
    let ids = api.enqueue_many(&client, "archive", LOAD).await;
    for id in &ids {
        assert_eq!(finished(&db, *id).await.state, JobState::Succeeded);
    }
    let mut calls: HashMap<String, usize> = HashMap::new();
    for r in ok.received() {
        *calls.entry(r.body["jobId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(calls.len(), LOAD + 20, "every job reached the target");
    assert!(calls.values().all(|&c| c == 1), "a job ran twice");
    let unfinished: i64 =
        sqlx::query_scalar("select count(*) from jobs where finished_at is null").fetch_one(&db.pool).await.unwrap();
    assert_eq!(unfinished, 0);

    for probe in [format!("{}/readyz", api.base), format!("{}/readyz", a.health), format!("{}/readyz", b.health)] {
        assert_eq!(reqwest::get(&probe).await.unwrap().status(), 200, "{probe}");
    }
    let logs: Vec<String> = [&api.process, &a.process, &b.process].iter().flat_map(|p| p.logs()).collect();
    assert_no_pooler_errors(&bouncer, &logs);
    eprintln!(
        "through PgBouncer (transaction mode, 3 server connections): 20 single jobs woken in median \
         {:.1} ms, slowest {:.1} ms; flaky job succeeded on attempt 3; {LOAD} jobs each ran once",
        median * 1000.0,
        slowest * 1000.0
    );
}

#[tokio::test]
async fn through_pgbouncer_duplicate_triggers_make_one_job() {
    let Pooled { cluster: _cluster, db, bouncer } = pooled_setup().await;
    // Held until the triggers are in, so the job stays live meanwhile.
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = catalog(&format!("[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\n", target.url));
    let via = bouncer.url(&db.name);
    let api = Api::start(&via, &catalog_path(&dir), &pooled()).await;
    let worker = Worker::start(&via, &catalog_path(&dir), "w-pooled-dedupe", &pooled_worker(&db)).await;
    let client = reqwest::Client::new();

    let replies = futures::future::join_all((0..50).map(|_| api.enqueue(&client, "archive", "doc-twice"))).await;
    let first = replies[0];
    assert!(replies.iter().all(|id| *id == first), "every trigger got the same jobId: {replies:?}");
    let count: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 1, "fifty identical triggers through the pooler made one job");

    target.open_gate();
    assert_eq!(finished(&db, first).await.state, JobState::Succeeded);
    assert_eq!(target.count(), 1);
    let logs: Vec<String> = [&api.process, &worker.process].iter().flat_map(|p| p.logs()).collect();
    assert_no_pooler_errors(&bouncer, &logs);
}

#[tokio::test]
async fn through_pgbouncer_a_killed_workers_job_is_rescued() {
    let Pooled { cluster: _cluster, db, bouncer } = pooled_setup().await;
    // The first call never answers: its worker dies holding it.
    let target = Target::start(|n| if n == 1 { Reply::status(200).gated() } else { Reply::status(200) }).await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 5\nretry_base = \"50ms\"\n",
        target.url
    ));
    let via = bouncer.url(&db.name);
    let api = Api::start(&via, &catalog_path(&dir), &pooled()).await;
    let mut doomed = Worker::start(&via, &catalog_path(&dir), "w-pooled-doomed", &pooled_worker(&db)).await;

    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-kill").await;
    wait_until("the first worker to call the target", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;
    doomed.process.kill().await;

    let survivor = Worker::start(&via, &catalog_path(&dir), "w-pooled-survivor", &pooled_worker(&db)).await;
    let done = finished(&db, id).await;
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!((rows[0].worker_id.as_str(), rows[0].outcome), ("w-pooled-doomed", Some(AttemptOutcome::LeaseExpired)));
    assert_eq!((rows[1].worker_id.as_str(), rows[1].outcome), (survivor.id.as_str(), Some(AttemptOutcome::Succeeded)));
    let logs: Vec<String> = [&api.process, &survivor.process].iter().flat_map(|p| p.logs()).collect();
    assert_no_pooler_errors(&bouncer, &logs);
}

#[tokio::test]
async fn a_pooled_worker_without_a_direct_listen_url_refuses_to_start() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    let mut worker = docket_tests::process::Process::spawn(
        "docket-worker",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("DOCKET_ACTIONS", catalog_path(&dir).display().to_string()),
            ("DOCKET_WORKER_ADDR", "127.0.0.1:0".into()),
            ("DOCKET_DB_POOLER", "transaction".into()),
        ],
    );
    let code = worker.wait_exit(Duration::from_secs(60)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    let logs = worker.logs().join("\n");
    assert!(logs.contains("DOCKET_LISTEN_DATABASE_URL"), "the error names the missing setting: {logs}");

    let mut api = docket_tests::process::Process::spawn(
        "docket-api",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("DOCKET_ACTIONS", catalog_path(&dir).display().to_string()),
            ("DOCKET_API_KEYS", docket_tests::API_KEY.into()),
            ("DOCKET_API_ADDR", "127.0.0.1:0".into()),
            ("DOCKET_DB_POOLER", "statement".into()),
        ],
    );
    let code = api.wait_exit(Duration::from_secs(60)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    let logs = api.logs().join("\n");
    assert!(logs.contains("\"statement\" is not a pooler mode"), "the error names the bad value: {logs}");
}

#[tokio::test]
async fn through_pgbouncer_a_missing_database_is_named_in_a_clear_start_up_error() {
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    // The cluster's own database stands; the one asked for does not.
    let Pooled { cluster: _cluster, db: _db, bouncer } = pooled_setup().await;
    let missing = format!("docket_missing_{}", uuid::Uuid::new_v4().simple());
    let mut api = docket_tests::process::Process::spawn(
        "docket-api",
        &[
            ("DATABASE_URL", bouncer.url(&missing)),
            ("DOCKET_ACTIONS", catalog_path(&dir).display().to_string()),
            ("DOCKET_API_KEYS", docket_tests::API_KEY.into()),
            ("DOCKET_API_ADDR", "127.0.0.1:0".into()),
            ("DOCKET_DB_POOLER", "transaction".into()),
        ],
    );
    let code = api.wait_exit(Duration::from_secs(60)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    let logs = api.logs().join("\n");
    assert!(
        logs.contains(&format!("database \\\"{missing}\\\" does not exist"))
            && logs.contains("create it first, or start once with DATABASE_URL pointing at Postgres itself"),
        "the error names the database and what to do: {logs}"
    );
}
