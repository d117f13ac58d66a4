//! Fault scenarios under load, bounded in time: workers killed at random while they
//! run jobs, and the api killed and restarted while requests arrive. Each reports its
//! counts and fails on any loss.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docket::domain::JobId;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};
use futures::StreamExt;

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

/// A small deterministic generator, so that a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[tokio::test]
async fn workers_killed_at_random_lose_no_job() {
    const JOBS: usize = 2000;
    let db = TestDb::new().await;
    // Each call takes 200 ms, so that jobs are in flight whenever a worker is killed.
    let target = Target::start(|_| Reply::status(200).delay(Duration::from_millis(200))).await;
    let dir = catalog(&format!(
        "[[action]]\nname = \"archive\"\nkind = \"http\"\nurl = \"{}\"\nmax_attempts = 25\n",
        target.url
    ));
    let api = Api::start(&db.url, &catalog_path(&dir), &[]).await;
    let settings = || {
        vec![
            ("DOCKET_WORKER_LEASE", "2s".to_owned()),
            ("DOCKET_WORKER_RESCUE_INTERVAL", "200ms".to_owned()),
            ("DOCKET_WORKER_POLL_INTERVAL", "200ms".to_owned()),
            ("DOCKET_WORKER_CONCURRENCY", "8".to_owned()),
        ]
    };
    let mut workers = Vec::new();
    let mut started = 0;
    for _ in 0..3 {
        workers.push(Worker::start(&db.url, &catalog_path(&dir), &format!("w-{started}"), &settings()).await);
        started += 1;
    }
    let client = reqwest::Client::new();
    let _: Vec<JobId> = futures::stream::iter(0..JOBS)
        .map(|i| {
            let (api, client) = (&api, &client);
            async move { api.enqueue(client, "archive", &format!("doc-{i}")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut random = Lcg(7);
    let mut kills = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while count(&db, "select count(*) from jobs where state <> 'succeeded'").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "jobs still unfinished after 240 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if kills < 60 {
            let victim = random.below(workers.len());
            workers[victim].process.kill().await;
            workers[victim] = Worker::start(&db.url, &catalog_path(&dir), &format!("w-{started}"), &settings()).await;
            started += 1;
            kills += 1;
        }
    }

    let succeeded = count(&db, "select count(*) from jobs where state = 'succeeded'").await;
    let running = count(&db, "select count(*) from jobs where state = 'running'").await;
    let rescued = count(&db, "select count(*) from job_attempts where outcome = 'lease_expired'").await;
    let mut calls: HashMap<String, usize> = HashMap::new();
    for request in target.received() {
        *calls.entry(request.body["jobId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let total_calls: usize = calls.values().sum();
    let extra = total_calls - calls.len();
    eprintln!(
        "workers killed: {kills}; jobs: {JOBS}, succeeded: {succeeded}, running: {running}; target calls: {total_calls} \
         ({extra} extra); attempts rescued after a kill: {rescued}"
    );
    assert_eq!((succeeded, running), (JOBS as i64, 0));
    assert_eq!(calls.len(), JOBS, "every job reached the target");
    assert!(extra as i64 <= rescued, "every extra execution is an attempt that was in flight at a kill");
    assert!(rescued <= kills as i64 * 8, "at most a worker's concurrency is in flight at each kill");
    let unrecorded = count(&db, "select count(*) from job_attempts where outcome is null").await;
    assert_eq!(unrecorded, 0, "every attempt was closed");
}

#[tokio::test]
async fn every_acknowledged_job_survives_api_kills_and_runs() {
    let db = TestDb::new().await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = [("DOCKET_API_ADDR", format!("127.0.0.1:{port}"))];
    let mut api = Api::start(&db.url, &catalog_path(&dir), &addr).await;
    let _worker = Worker::start(&db.url, &catalog_path(&dir), "w-api-kills", &[]).await;

    let acknowledged: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|c| {
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            let url = format!("http://127.0.0.1:{port}/customAction");
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let (mut sent, mut failed) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    let document = format!("doc-{c}-{sent}");
                    let response = client
                        .get(&url)
                        .query(&[("name", "noop"), ("documentId", document.as_str()), ("documentVersionId", "v")])
                        .header("apiKey", docket_tests::API_KEY)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            let id = JobId(body["jobId"].as_str().unwrap().parse().unwrap());
                            acknowledged.lock().unwrap().insert(id);
                        }
                        Ok(r) => assert!(r.status() != 500, "a 500 under load"),
                        Err(_) => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (sent, failed)
            })
        })
        .collect();

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.process.kill().await;
        api = Api::start(&db.url, &catalog_path(&dir), &addr).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut failed) = (0, 0);
    for task in load {
        let (s, f) = task.await.unwrap();
        sent += s;
        failed += f;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "api killed 5 times; requests sent: {sent}, acknowledged: {}, failed in transit: {failed}",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 50, "the load got through between kills");
    let pool = db.pool.clone();
    let ids: Vec<uuid::Uuid> = acknowledged.iter().map(|id| id.0).collect();
    wait_until("every acknowledged job to succeed", Duration::from_secs(120), || async {
        let done: i64 = sqlx::query_scalar("select count(*) from jobs where id = any($1) and state = 'succeeded'")
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap();
        (done == ids.len() as i64).then_some(())
    })
    .await;
}
