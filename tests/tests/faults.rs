//! Fault scenarios under load, bounded in time: workers killed at random while they
//! run jobs, the api killed and restarted while requests arrive, the database and a
//! transaction-mode pooler in front of it stopped and restarted. Each reports its
//! counts and fails on any loss.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docket::domain::JobId;
use docket_tests::db::seconds_to_first_start;
use docket_tests::{catalog, catalog_path, wait_until, Api, Reply, Target, TestDb, Worker};

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

/// `GET /customAction` of the noop action for `document`.
fn noop_request(client: &reqwest::Client, url: &str, document: &str) -> reqwest::RequestBuilder {
    client
        .get(url)
        .query(&[("name", "noop"), ("documentId", document), ("documentVersionId", "v")])
        .header("apiKey", docket_tests::API_KEY)
}

/// Clients sending `/customAction` (noop, a new document each time) until stopped.
/// Every reply must be JSON: `success` with a job id (recorded), or `failure`.
/// Transport errors (the api is down) count under status 0.
struct Load {
    acknowledged: Arc<Mutex<HashSet<JobId>>>,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, clients: usize) -> Self {
        let acknowledged: Arc<Mutex<HashSet<JobId>>> = Arc::default();
        let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|c| {
                let (acknowledged, statuses, stop) = (acknowledged.clone(), statuses.clone(), stop.clone());
                let url = format!("{base}/customAction");
                tokio::spawn(async move {
                    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let document = format!("doc-{c}-{n}");
                        let Ok(response) = noop_request(&client, &url, &document).send().await else {
                            *statuses.lock().unwrap().entry(0).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let status = response.status().as_u16();
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                        let body: serde_json::Value = response.json().await.expect("replies are JSON");
                        if status == 200 {
                            let id = JobId(body["jobId"].as_str().unwrap().parse().unwrap());
                            acknowledged.lock().unwrap().insert(id);
                        } else {
                            assert_eq!(body["status"], "failure", "{status}: {body}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
            })
            .collect();
        Self { acknowledged, statuses, stop, clients }
    }

    fn count(&self, status: u16) -> usize {
        self.statuses.lock().unwrap().get(&status).copied().unwrap_or(0)
    }

    /// Stops the clients; returns the acknowledged jobs and the count of each status.
    async fn finish(self) -> (HashSet<JobId>, HashMap<u16, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let statuses = self.statuses.lock().unwrap().clone();
        (acknowledged, statuses)
    }
}

/// Load from 4 clients; after a second `fault()`; once the api answers 503, 2 s more,
/// then `recover()`; the load goes on until the api has stored 20 more jobs without
/// being restarted. Returns the acknowledged jobs and the count of each status.
async fn outage_under_load(
    base: &str,
    fault: impl FnOnce(),
    recover: impl FnOnce(),
) -> (HashSet<JobId>, HashMap<u16, usize>) {
    let load = Load::start(base, 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    fault();
    wait_until("the api to answer 503 during the outage", Duration::from_secs(60), || async {
        (load.count(503) > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    recover();
    let before = load.count(200);
    wait_until("the api to store jobs again without a restart", Duration::from_secs(60), || async {
        (load.count(200) > before + 20).then_some(())
    })
    .await;
    load.finish().await
}

/// Waits until every job in `ids` has succeeded.
async fn all_succeed(pool: &sqlx::PgPool, ids: &HashSet<JobId>) {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    wait_until("every acknowledged job to succeed", Duration::from_secs(120), || async {
        let done: i64 = sqlx::query_scalar("select count(*) from jobs where id = any($1) and state = 'succeeded'")
            .bind(&ids)
            .fetch_one(pool)
            .await
            .ok()?;
        (done == ids.len() as i64).then_some(())
    })
    .await;
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
    api.enqueue_many(&reqwest::Client::new(), "archive", JOBS).await;

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

    let load = Load::start(&api.base, 4);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.process.kill().await;
        api = Api::start(&db.url, &catalog_path(&dir), &addr).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acknowledged, statuses) = load.finish().await;
    eprintln!(
        "api killed 5 times; replies by status (0: failed in transit) {statuses:?}; acknowledged {}",
        acknowledged.len()
    );
    assert!(statuses.keys().all(|s| *s == 200 || *s == 0), "only successes and dropped connections: {statuses:?}");
    assert!(acknowledged.len() > 50, "the load got through between kills");
    all_succeed(&db.pool, &acknowledged).await;
}

#[tokio::test]
async fn a_database_restart_under_load_loses_no_acknowledged_job() {
    let cluster = docket_tests::cluster::Cluster::start();
    let url = cluster.url("docket");
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    let api = Api::start(&url, &catalog_path(&dir), &[("DOCKET_API_DB_ACQUIRE_TIMEOUT", "1s".into())]).await;
    // Polling every 10 minutes: only a notification (or a reconnect) starts a job.
    let quiet = || vec![("DOCKET_WORKER_POLL_INTERVAL", "10m".to_owned())];
    let workers = [
        Worker::start(&url, &catalog_path(&dir), "w-db-1", &quiet()).await,
        Worker::start(&url, &catalog_path(&dir), "w-db-2", &quiet()).await,
    ];

    let (acknowledged, statuses) =
        outage_under_load(&api.base, || cluster.stop_immediately(), || cluster.restart()).await;

    // Both workers listen again; a job queued now is started by its notification.
    for worker in &workers {
        wait_until("the worker to LISTEN again", Duration::from_secs(60), || async {
            (worker.process.logs().iter().filter(|l| l.contains("listening for new jobs")).count() >= 2).then_some(())
        })
        .await;
    }
    let db = docket::db::connect_and_migrate(&url, &docket::db::PoolSettings::default()).await.unwrap().pool().clone();
    let probe = api.enqueue(&reqwest::Client::new(), "noop", "after-recovery").await;
    let waited = seconds_to_first_start(&db, probe).await;
    // Workers poll every 10 minutes, so any start well under that was woken by a
    // notification; the bound is generous for a busy 2-core CI (the time itself is
    // printed here and measured by docket-bench, not asserted).
    assert!(waited < 30.0, "the job queued after recovery started after {waited:.3} s (not by notification)");

    all_succeed(&db, &acknowledged).await;
    eprintln!(
        "database restarted under load: replies {statuses:?}; acknowledged {} jobs, all succeeded; \
         a job queued after recovery started {waited:.3} s after it was queued",
        acknowledged.len()
    );
    assert!(statuses.keys().all(|s| *s == 200 || *s == 503), "only 200 and 503 (the api stayed up): {statuses:?}");
}

#[tokio::test]
async fn a_pooler_restart_under_load_loses_no_acknowledged_job() {
    // Its own cluster, like the database-restart scenario: the wake-up time measures
    // notifications, not this machine's fsyncs.
    let cluster = docket_tests::cluster::Cluster::start();
    let db = TestDb::on_server(&cluster.server_url(), "docket_test").await;
    let bouncer = docket_tests::pooler::PgBouncer::start("127.0.0.1", cluster.port, 4);
    let via = bouncer.url(&db.name);
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    let pooled = || vec![("DOCKET_DB_POOLER", "transaction".to_owned())];
    let mut api_env = pooled();
    api_env.push(("DOCKET_API_DB_ACQUIRE_TIMEOUT", "1s".into()));
    let api = Api::start(&via, &catalog_path(&dir), &api_env).await;
    // Polling every 10 minutes: only a notification starts a job; LISTEN is direct.
    let worker_env = || {
        let mut env = pooled();
        env.push(("DOCKET_WORKER_POLL_INTERVAL", "10m".to_owned()));
        env.push(("DOCKET_LISTEN_DATABASE_URL", db.url.clone()));
        env
    };
    let _workers = [
        Worker::start(&via, &catalog_path(&dir), "w-pgb-1", &worker_env()).await,
        Worker::start(&via, &catalog_path(&dir), "w-pgb-2", &worker_env()).await,
    ];

    let (acknowledged, statuses) = outage_under_load(&api.base, || bouncer.kill(), || bouncer.restart()).await;

    let probe = api.enqueue(&reqwest::Client::new(), "noop", "after-recovery").await;
    let waited = seconds_to_first_start(&db.pool, probe).await;
    // Workers poll every 10 minutes, so any start well under that was woken by a
    // notification; the bound is generous for a busy 2-core CI (the time itself is
    // printed here and measured by docket-bench, not asserted).
    assert!(waited < 30.0, "the job queued after recovery started after {waited:.3} s (not by notification)");

    all_succeed(&db.pool, &acknowledged).await;
    eprintln!(
        "pooler killed and restarted under load: replies {statuses:?}; acknowledged {} jobs, all succeeded; \
         a job queued after recovery started {waited:.3} s after it was queued",
        acknowledged.len()
    );
    assert!(statuses.keys().all(|s| *s == 200 || *s == 503), "only 200 and 503 (the api stayed up): {statuses:?}");
}

/// 60 s at a fixed 500 requests/s against the api and two workers: no 5xx, no lost
/// job, reply p99 under 50 ms, memory flat. Runs alone, on the release build (it
/// measures time): `cargo build --release --workspace && cargo test --release -p
/// docket-tests --test faults -- --ignored --nocapture soak`.
#[tokio::test]
#[ignore = "60 s soak; CI runs it on its own, after the other tests"]
async fn soak_500_requests_per_second_for_60_seconds() {
    const RATE: u64 = 500;
    const SECONDS: u64 = 60;
    // By default a cluster of the soak's own, with fsync off, so that it measures
    // Docket and not this machine's disk: on this VM a WAL fsync now and then takes
    // 0.1-1 s, which no durable commit can hide (the soak's p99 on the shared server
    // ranged from 3.4 to 620 ms between runs, with today's binaries and with older
    // ones alike). DOCKET_SOAK_SERVER=postgres://… runs it against a real server.
    let (_cluster, server) = match std::env::var("DOCKET_SOAK_SERVER") {
        Ok(server) => (None, server),
        Err(_) => {
            let cluster = docket_tests::cluster::Cluster::start();
            let server = cluster.server_url();
            (Some(cluster), server)
        }
    };
    let db = TestDb::on_server(&server, "docket_soak").await;
    let dir = catalog("[[action]]\nname = \"noop\"\nkind = \"noop\"\ndedupe = false\n");
    let api = Api::start(&db.url, &catalog_path(&dir), &[("RUST_LOG", "warn,docket_api::startup=info".into())]).await;
    let quiet = || vec![("RUST_LOG", "warn,docket_worker::runner=info,docket_worker::listener=info".to_owned())];
    let workers = [
        Worker::start(&db.url, &catalog_path(&dir), "w-soak-1", &quiet()).await,
        Worker::start(&db.url, &catalog_path(&dir), "w-soak-2", &quiet()).await,
    ];
    let rss = |pid: nix::unistd::Pid| -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1));
        kib.and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
    };
    let pids: Vec<_> = std::iter::once(api.process.pid()).chain(workers.iter().map(|w| w.process.pid())).collect();

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let url = format!("{}/customAction", api.base);
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let ids: Arc<Mutex<Vec<uuid::Uuid>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut requests = Vec::new();
    let mut rss_early = Vec::new();
    let started = tokio::time::Instant::now();
    for n in 0..RATE * SECONDS {
        ticker.tick().await;
        if n == RATE * 15 {
            rss_early = pids.iter().map(|p| rss(*p)).collect();
        }
        let (client, url, latencies, statuses, ids) =
            (client.clone(), url.clone(), latencies.clone(), statuses.clone(), ids.clone());
        requests.push(tokio::spawn(async move {
            let sent = std::time::Instant::now();
            let document = format!("soak-{n}");
            let response = noop_request(&client, &url, &document).send().await;
            let status = response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if let Ok(r) = response {
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                if let Some(id) = body["jobId"].as_str() {
                    ids.lock().unwrap().push(id.parse().unwrap());
                }
            }
            latencies.lock().unwrap().push(sent.elapsed().as_secs_f64() * 1000.0);
            *statuses.lock().unwrap().entry(status).or_default() += 1;
        }));
    }
    for request in requests {
        request.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_late: Vec<f64> = pids.iter().map(|p| rss(*p)).collect();
    let ids = ids.lock().unwrap().clone();
    wait_until("every soak job to succeed", Duration::from_secs(120), || async {
        let done: i64 = sqlx::query_scalar("select count(*) from jobs where id = any($1) and state = 'succeeded'")
            .bind(&ids)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (done == ids.len() as i64).then_some(())
    })
    .await;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let statuses = statuses.lock().unwrap().clone();
    eprintln!(
        "soak: {} requests in {elapsed:.1} s ({:.0}/s); replies {statuses:?}; latency p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms; jobs acknowledged and succeeded: {}; RSS MiB at 15 s {rss_early:.1?}, at the end {rss_late:.1?}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        p(0.5),
        p(0.99),
        p(1.0),
        ids.len()
    );
    assert_eq!(
        statuses.get(&200).copied(),
        Some((RATE * SECONDS) as usize),
        "every request answered 200: {statuses:?}"
    );
    assert_eq!(ids.len(), (RATE * SECONDS) as usize, "no lost job");
    assert!(p(0.99) < 50.0, "reply p99 {:.1} ms", p(0.99));
    for (early, late) in rss_early.iter().zip(&rss_late) {
        assert!(*late <= early * 1.25 + 4.0, "memory grew from {early:.1} to {late:.1} MiB");
    }
}
