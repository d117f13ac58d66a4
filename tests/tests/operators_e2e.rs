//! Operators' features that involve real worker processes: cancelling a running job,
//! the workers table, retention, worker metrics.

use std::time::Duration;

use docket::db::{attempts, jobs};
use docket::domain::{AttemptOutcome, JobState};
use docket_tests::inprocess::ADMIN_TOKEN;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

fn http_catalog(url: &str) -> tempfile::TempDir {
    catalog(&format!("[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{url}\"\n"))
}

fn admin() -> Vec<(&'static str, String)> {
    vec![("DOCKET_ADMIN_TOKEN", format!("tester:{ADMIN_TOKEN}"))]
}

#[tokio::test]
async fn cancelling_a_running_job_stops_its_action_promptly() {
    let db = TestDb::new().await;
    let target = Target::start(|_| Reply::status(200).gated()).await;
    let dir = http_catalog(&target.url);
    let api = Api::start(&db.url, &catalog_path(&dir), &admin()).await;
    // A long lease: the cancel must arrive by notification, not at a renewal.
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-cancel", &[("DOCKET_WORKER_LEASE", "10m".into())]).await;
    let client = reqwest::Client::new();
    let id = api.enqueue(&client, "archive", "doc-c").await;
    wait_until("the action to start", DEADLINE, || async { (target.count() == 1).then_some(()) }).await;

    let response =
        client.post(format!("{}/ops/jobs/{id}/cancel", api.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["result"], "cancel_requested");

    let job = wait_until("the job to be cancelled", Duration::from_secs(30), || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state == JobState::Cancelled)
    })
    .await;
    assert!(job.finished_at.is_some() && job.lease_owner.is_none());
    let rows = attempts::list(&db.pool, id).await.unwrap();
    assert_eq!((rows[0].outcome, rows[0].worker_id.as_str()), (Some(AttemptOutcome::Cancelled), "w-cancel"));
    let line = worker.process.wait_for_log("cancel requested; aborting the action").await;
    assert!(line.contains(&id.to_string()));
    // The held request was dropped, not answered: the target saw one call only.
    target.open_gate();
    assert_eq!(target.count(), 1);
}

#[tokio::test]
async fn workers_register_heartbeat_deregister_and_stale_rows_are_removed() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n[[action]]\nname = \"print\"\nkind = \"noop\"\n");
    sqlx::query(
        "insert into workers (id, host, pid, version, actions, concurrency, started_at, heartbeat_at)
         values ('ghost', 'gone-host', 1, '0.0.0', '{noop}', 1, now() - interval '1 hour', now() - interval '10 minutes')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-registered",
        &[("DOCKET_WORKER_HEARTBEAT", "200ms".into()), ("DOCKET_WORKER_CONCURRENCY", "7".into())],
    )
    .await;

    let row = wait_until("the worker row", DEADLINE, || async {
        docket::db::workers::list_live(&db.pool).await.unwrap().into_iter().find(|w| w.id == "w-registered")
    })
    .await;
    assert_eq!(row.pid as u32, worker.process.pid().as_raw() as u32);
    assert_eq!(row.actions, ["noop", "print"]);
    assert_eq!((row.concurrency, row.version.as_str()), (7, docket::VERSION));
    let first_beat = row.heartbeat_at;
    wait_until("a newer heartbeat", DEADLINE, || async {
        let live = docket::db::workers::list_live(&db.pool).await.unwrap();
        live.into_iter().find(|w| w.id == "w-registered" && w.heartbeat_at > first_beat)
    })
    .await;
    wait_until("the stale row to be removed", DEADLINE, || async {
        let ghosts: i64 =
            sqlx::query_scalar("select count(*) from workers where id = 'ghost'").fetch_one(&db.pool).await.unwrap();
        (ghosts == 0).then_some(())
    })
    .await;

    worker.process.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(worker.process.wait_exit(DEADLINE).await, Some(0));
    let left: i64 = sqlx::query_scalar("select count(*) from workers").fetch_one(&db.pool).await.unwrap();
    assert_eq!(left, 0, "a stopping worker deregisters");
}

#[tokio::test]
async fn finished_jobs_are_pruned_after_their_retention() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\n");
    // (state, finished days ago, kept?)
    let cases = [
        ("succeeded", 8, false),
        ("succeeded", 6, true),
        ("failed", 8, true),
        ("failed", 31, false),
        ("cancelled", 31, false),
        ("queued", 0, true),
    ];
    let mut ids = Vec::new();
    for (state, days, _) in cases {
        let id: uuid::Uuid = sqlx::query_scalar(
            "insert into jobs (id, action, document_id, document_version_id, max_attempts, state, attempts,
                               finished_at)
             values (gen_random_uuid(), 'noop', 'd', 'v', 1, $1::job_state, 1,
                     case when $1 = 'queued' then null else now() - make_interval(days => $2) end)
             returning id",
        )
        .bind(state)
        .bind(days)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            "insert into job_attempts (job_id, attempt, worker_id, finished_at, outcome)
             values ($1, 1, 'old', now(), 'succeeded')",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
        ids.push(id);
    }
    // A worker that knows no action of these jobs, so that it only prunes.
    let other = catalog("[[action]]\nname = \"other\"\nkind = \"noop\"\n");
    let _worker =
        Worker::start(&db.url, &catalog_path(&other), "w-prune", &[("DOCKET_RETENTION_INTERVAL", "200ms".into())])
            .await;
    drop(dir);

    // Jobs first, then (in the same round of upkeep) the attempts they leave in the
    // default partition (these ids are not UUIDv7: no day partition covers them).
    wait_until("old jobs and their attempts to be pruned", DEADLINE, || async {
        let jobs: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&db.pool).await.unwrap();
        let attempts: i64 = sqlx::query_scalar("select count(*) from job_attempts").fetch_one(&db.pool).await.unwrap();
        (jobs == 3 && attempts == 3).then_some(())
    })
    .await;
    for ((state, days, kept), id) in cases.iter().zip(&ids) {
        let exists: bool = sqlx::query_scalar("select exists(select 1 from jobs where id = $1)")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(exists, *kept, "{state} finished {days} days ago");
        let attempts: i64 = sqlx::query_scalar("select count(*) from job_attempts where job_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(attempts, i64::from(*kept), "attempts go with their job");
    }
}

#[tokio::test]
async fn worker_metrics_count_attempts_by_action_and_outcome() {
    let db = TestDb::new().await;
    let target = Target::start(|n| if n == 1 { Reply::status(503) } else { Reply::status(200) }).await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nretry_base = \"50ms\"\n",
        target.url
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker = Worker::start(&db.url, &catalog_path(&dir), "w-metrics", &[]).await;
    let id = api.enqueue(&reqwest::Client::new(), "archive", "doc-m").await;
    wait_until("the job to succeed", DEADLINE, || async {
        jobs::get(&db.pool, id).await.unwrap().filter(|j| j.state == JobState::Succeeded)
    })
    .await;
    let text = wait_until("the success to be counted", DEADLINE, || async {
        let text = reqwest::get(format!("{}/metrics", worker.health)).await.ok()?.text().await.ok()?;
        text.contains("docket_attempts_total{action=\"archive\",outcome=\"succeeded\"} 1").then_some(text)
    })
    .await;
    assert!(text.contains("docket_attempts_total{action=\"archive\",outcome=\"retryable_error\"} 1"), "{text}");
    assert!(text.contains("docket_attempt_duration_seconds_bucket{action=\"archive\""), "{text}");

    // Every log line about a job names the job and its action.
    let about_jobs: Vec<String> = worker.process.logs().into_iter().filter(|l| l.contains("job.id")).collect();
    assert!(about_jobs.len() >= 2, "{about_jobs:?}");
    for line in about_jobs {
        assert!(line.contains("job.action"), "{line}");
    }
}

#[tokio::test]
async fn every_series_is_published_from_the_first_scrape() {
    let db = TestDb::new().await;
    let dir =
        catalog("[[action]]\nname = \"archive\"\nkind = \"noop\"\n[[action]]\nname = \"print\"\nkind = \"noop\"\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let worker =
        Worker::start(&db.url, &catalog_path(&dir), "w-fresh", &[("DOCKET_WORKER_CONCURRENCY", "7".into())]).await;
    let version = env!("CARGO_PKG_VERSION");

    // Before any job ran.
    let text = reqwest::get(format!("{}/metrics", worker.health)).await.unwrap().text().await.unwrap();
    for series in [
        format!("docket_build_info{{version=\"{version}\"}} 1"),
        "docket_worker_running_jobs 0".to_owned(),
        "docket_worker_concurrency 7".to_owned(),
        "docket_jobs_rescued_total 0".to_owned(),
        "docket_attempts_total{action=\"archive\",outcome=\"succeeded\"} 0".to_owned(),
        "docket_attempts_total{action=\"print\",outcome=\"retryable_error\"} 0".to_owned(),
        "docket_attempts_total{action=\"print\",outcome=\"lease_expired\"} 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == series), "worker: no line {series:?} in\n{text}");
    }
    let text = reqwest::get(format!("{}/metrics", api.base)).await.unwrap().text().await.unwrap();
    for series in [
        format!("docket_build_info{{version=\"{version}\"}} 1"),
        "docket_jobs_enqueued_total{action=\"archive\"} 0".to_owned(),
        "docket_jobs_deduplicated_total{action=\"print\"} 0".to_owned(),
        "docket_jobs{action=\"print\",state=\"queued\"} 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == series), "api: no line {series:?} in\n{text}");
    }
}
