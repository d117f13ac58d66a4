//! The measured scenarios. Each starts from a fresh database and the real
//! `docket-api` / `docket-worker` processes, and returns its figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use docket::db::jobs::{self, NewJob};
use docket::domain::{DocumentId, DocumentVersionId, JobId};
use docket_harness::pooler::PgBouncer;
use docket_harness::{Api, TestDb, Worker};
use sqlx::postgres::PgPoolOptions;

use crate::probe;
use crate::procfs;
use crate::stats::{percentiles, Percentiles};

/// The catalog every scenario uses: one action that succeeds at once.
pub const CATALOG: &str = "[[action]]\nname = \"noop\"\nkind = \"noop\"\n";
/// The same action with a concurrency limit that never binds: what the limited claim
/// path (`docket_claim_group`: lock, count, claim) costs by itself.
pub const LIMITED_CATALOG: &str = "[[action]]\nname = \"noop\"\nkind = \"noop\"\nmax_concurrency = 100000\n";
/// The same with a rate that never binds either (issue #24's "limited action"): the
/// bucket too, and claims only for free slots (a rate is about when attempts start).
pub const RATED_CATALOG: &str = "[[action]]\nname = \"noop\"\nkind = \"noop\"\nmax_concurrency = 100000\n\
                                 rate = \"100000/1s\"\nburst = 100000\n";

/// Log only what the harness waits for (start-up lines) and warnings.
const QUIET: &str = "warn,docket_api::startup=info,docket_worker::runner=info,docket_worker::listener=info";

pub struct Setup {
    pub server: String,
    pub catalog: std::path::PathBuf,
    /// [`LIMITED_CATALOG`].
    pub limited_catalog: std::path::PathBuf,
    /// [`RATED_CATALOG`].
    pub rated_catalog: std::path::PathBuf,
    /// [`crate::events::CATALOG`]: [`CATALOG`] plus a trigger.
    pub events_catalog: std::path::PathBuf,
    /// Extra environment for the processes (e.g. settings under comparison).
    pub env: Vec<(String, String)>,
    /// When set, api and workers reach Postgres through this PgBouncer (transaction
    /// mode, `DOCKET_DB_POOLER=transaction`); the workers LISTEN directly.
    pub bouncer: Option<PgBouncer>,
}

impl Setup {
    /// The environment of a process on `db`.
    pub(crate) fn env(&self, db: &TestDb, more: &[(&'static str, String)]) -> Vec<(&str, String)> {
        let mut env: Vec<(&str, String)> = vec![("RUST_LOG", QUIET.to_owned())];
        if self.bouncer.is_some() {
            env.push(("DOCKET_DB_POOLER", "transaction".to_owned()));
            env.push(("DOCKET_LISTEN_DATABASE_URL", db.url.clone()));
        }
        env.extend(more.iter().cloned());
        env.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        env
    }

    /// The `DATABASE_URL` of the api and workers: the pooler's when there is one.
    pub(crate) fn url(&self, db: &TestDb) -> String {
        match &self.bouncer {
            Some(bouncer) => bouncer.url(&db.name),
            None => db.url.clone(),
        }
    }

    pub(crate) async fn database(&self) -> anyhow::Result<TestDb> {
        Ok(TestDb::on_server(&self.server, "docket_bench").await)
    }
}

pub struct Usage {
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

pub(crate) fn usage(process: &docket_harness::process::Process) -> Usage {
    let pid = process.pid().as_raw() as u32;
    Usage {
        peak_rss_mib: procfs::peak_rss_mib(pid).unwrap_or(f64::NAN),
        cpu_seconds: procfs::cpu_seconds(pid).unwrap_or(f64::NAN),
    }
}

pub struct Baseline {
    pub rows_per_second: f64,
    pub wal_bytes_per_row: f64,
}

/// Raw single-row INSERTs over `concurrency` connections, each committed on its own.
pub async fn baseline(setup: &Setup, rows: usize, concurrency: usize) -> anyhow::Result<Baseline> {
    let db = setup.database().await?;
    let pool = PgPoolOptions::new().max_connections(concurrency as u32).connect(&db.url).await?;
    let wal_before = probe::wal_position(&pool).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, next) = (pool.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= rows {
                        return anyhow::Ok(());
                    }
                    probe::raw_insert(&pool, n).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let wal = probe::wal_position(&pool).await? - wal_before;
    ensure!(probe::count_jobs(&pool).await? == rows as i64, "baseline stored a wrong number of rows");
    pool.close().await;
    Ok(Baseline { rows_per_second: rows as f64 / elapsed, wal_bytes_per_row: wal as f64 / rows as f64 })
}

/// The same single-row INSERTs as fast as a client can send them: pgbench (prepared
/// statements, `concurrency` clients on 2 threads, each insert its own transaction).
/// `None` when pgbench is not installed.
pub async fn pgbench_baseline(setup: &Setup, rows: usize, concurrency: usize) -> anyhow::Result<Option<f64>> {
    if std::process::Command::new("pgbench").arg("--version").output().is_err() {
        return Ok(None);
    }
    let db = setup.database().await?;
    let script = std::env::temp_dir().join(format!("docket-bench-insert-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set n random(1, 2000000000)\n\
         insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts) \
         values (docket_uuid_v7(), 'noop', 'doc-' || :n, 'v1', 'bench@example.com', 8);\n",
    )?;
    let per_client = (rows / concurrency).max(1);
    let output = tokio::process::Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=prepared", "--jobs=2"])
        .arg(format!("--client={concurrency}"))
        .arg(format!("--transactions={per_client}"))
        .arg(format!("--file={}", script.display()))
        .arg(&db.url)
        .output()
        .await?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "pgbench failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|rest| rest.split_whitespace().next()))
        .and_then(|n| n.parse::<f64>().ok())
        .context("no tps line in pgbench's output")?;
    ensure!(
        probe::count_jobs(&db.pool).await? == (per_client * concurrency) as i64,
        "pgbench stored a wrong number of rows"
    );
    Ok(Some(tps))
}

pub struct Enqueue {
    pub requests_per_second: f64,
    pub latency_ms: Percentiles,
    pub errors: usize,
    pub wal_bytes_per_job: f64,
    pub api: Usage,
}

/// Sends `total` requests, built by `request(client, n)` for n in 0..total, from
/// `concurrency` tasks over real HTTP. Returns the latencies (ms) of the 200s, how many
/// got anything else, and the seconds it all took. The one load loop of `enqueue` and
/// `events`.
pub async fn drive(
    client: &reqwest::Client,
    total: usize,
    concurrency: usize,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> anyhow::Result<(Vec<f64>, usize, f64)> {
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, request) = (client.clone(), next.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return (latencies, errors);
                    }
                    let sent = Instant::now();
                    match request(&client, n).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                        }
                        _ => errors += 1,
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok((latencies, errors, start.elapsed().as_secs_f64()))
}

/// `requests` GET /customAction calls at `concurrency` over real HTTP; checks that
/// exactly that many rows exist afterwards.
pub async fn enqueue(setup: &Setup, requests: usize, concurrency: usize) -> anyhow::Result<Enqueue> {
    let db = setup.database().await?;
    let api = Api::start(&setup.url(&db), &setup.catalog, &setup.env(&db, &[])).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let url = format!("{}/customAction", api.base);
    let wal_before = probe::wal_position(&db.pool).await?;
    let (mut latencies, errors, elapsed) = drive(&client, requests, concurrency, move |client, n| {
        let document = format!("doc-{n}");
        client
            .get(&url)
            .query(&[("name", "noop"), ("documentId", document.as_str()), ("documentVersionId", "v1")])
            .header("apiKey", docket_harness::API_KEY)
            .header("username", "bench@example.com")
    })
    .await?;
    let wal = probe::wal_position(&db.pool).await? - wal_before;
    let stored = probe::count_jobs(&db.pool).await?;
    ensure!(stored == (requests - errors) as i64, "{stored} rows for {} successful requests", requests - errors);
    Ok(Enqueue {
        requests_per_second: requests as f64 / elapsed,
        latency_ms: percentiles(&mut latencies),
        errors,
        wal_bytes_per_job: wal as f64 / stored.max(1) as f64,
        api: usage(&api.process),
    })
}

pub struct Limit {
    pub jobs_per_second: f64,
    pub wal_bytes_per_job: f64,
}

/// The physical limit of a drain on this machine: no Docket process, only the raw
/// claim (with attempt rows) and completion SQL on the same schema, `connections`
/// loops claiming `batch` jobs at a time, over the same `jobs_count` queued jobs.
pub async fn limit(setup: &Setup, jobs_count: usize, connections: usize, batch: i64) -> anyhow::Result<Limit> {
    let db = setup.database().await?;
    queue_noop_jobs(&db, jobs_count).await?.commit().await?;
    sqlx::query("analyze jobs").execute(&db.pool).await?;
    let pool = PgPoolOptions::new().max_connections(connections as u32).connect(&db.url).await?;
    let wal_before = probe::wal_position(&pool).await?;
    let start = Instant::now();
    let loops: Vec<_> = (0..connections)
        .map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let worker = format!("limit-{n}");
                loop {
                    let claimed = probe::raw_claim(&pool, &worker, batch).await?;
                    if claimed.is_empty() {
                        return anyhow::Ok(());
                    }
                    probe::raw_complete(&pool, &worker, &claimed).await?;
                }
            })
        })
        .collect();
    for task in loops {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let wal = probe::wal_position(&pool).await? - wal_before;
    let (succeeded, attempts, _) = probe::completion_counts(&pool).await?;
    ensure!(succeeded == jobs_count as i64 && attempts == succeeded, "limit: {succeeded} succeeded of {jobs_count}");
    pool.close().await;
    Ok(Limit { jobs_per_second: jobs_count as f64 / elapsed, wal_bytes_per_job: wal as f64 / jobs_count as f64 })
}

/// Stores `jobs_count` queued noop jobs in one transaction, left open for the caller
/// to commit.
async fn queue_noop_jobs(db: &TestDb, jobs_count: usize) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let document_id = DocumentId::parse("doc").expect("valid");
    let version_id = DocumentVersionId::parse("v1").expect("valid");
    let batch: Vec<NewJob> = (0..jobs_count)
        .map(|_| NewJob {
            id: JobId::new(),
            action: "noop".into(),
            document_id: document_id.clone(),
            document_version_id: version_id.clone(),
            requested_by: None,
            max_attempts: 8,
            dedupe: false,
            traceparent: None,
        })
        .collect();
    let mut tx = db.pool.begin().await?;
    for chunk in batch.chunks(10_000) {
        jobs::insert_many(&mut *tx, chunk, false).await?;
    }
    Ok(tx)
}

pub struct Drain {
    pub jobs_per_second: f64,
    pub wal_bytes_per_job: f64,
    pub worker: Usage,
}

/// `jobs` queued noop jobs (inserted in bulk, one commit), `workers` processes with
/// `concurrency` slots each (`None`: the worker's default): jobs/s from the commit to
/// the last job finished, with every attempt recorded.
pub async fn drain(
    setup: &Setup,
    jobs_count: usize,
    workers: usize,
    concurrency: Option<usize>,
    catalog: &std::path::Path,
) -> anyhow::Result<Drain> {
    let db = setup.database().await?;
    let mut running = Vec::new();
    for i in 0..workers {
        let slots: Vec<(&'static str, String)> =
            concurrency.map(|c| ("DOCKET_WORKER_CONCURRENCY", c.to_string())).into_iter().collect();
        let env = setup.env(&db, &slots);
        running.push(Worker::start(&setup.url(&db), catalog, &format!("bench-{i}"), &env).await);
    }
    let tx = queue_noop_jobs(&db, jobs_count).await?;
    let wal_before = probe::wal_position(&db.pool).await?;
    tx.commit().await?;
    let started = probe::db_now(&db.pool).await?;
    jobs::notify(&db.pool).await?;
    // The end is read from the jobs' `finished_at`, so how often this polls does not
    // change the figure. It asks the workers (their attempt counters), not the
    // database, until every attempt ended, so that it takes nothing from the database
    // that the raw `limit` loop does not pay; then the database, until every result
    // is written.
    let deadline = Instant::now() + Duration::from_secs(600);
    let client = reqwest::Client::new();
    let health: Vec<&str> = running.iter().map(|w| w.health.as_str()).collect();
    while probe::attempts_ended(&client, &health).await? < jobs_count as u64 {
        ensure!(Instant::now() < deadline, "drain did not finish within 10 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while probe::count_unfinished(&db.pool).await? > 0 {
        ensure!(Instant::now() < deadline, "drain did not finish within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = probe::last_finished(&db.pool).await?.context("no job finished")?;
    let wal = probe::wal_position(&db.pool).await? - wal_before;
    let (succeeded, attempts, succeeded_attempts) = probe::completion_counts(&db.pool).await?;
    ensure!(
        succeeded == jobs_count as i64 && attempts == succeeded && succeeded_attempts == succeeded,
        "drain: {succeeded} succeeded, {attempts} attempts for {jobs_count} jobs"
    );
    let seconds = (finished - started).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6;
    let worker =
        running.iter().map(|w| usage(&w.process)).fold(Usage { peak_rss_mib: 0.0, cpu_seconds: 0.0 }, |a, u| Usage {
            peak_rss_mib: a.peak_rss_mib.max(u.peak_rss_mib),
            cpu_seconds: a.cpu_seconds + u.cpu_seconds,
        });
    Ok(Drain {
        jobs_per_second: jobs_count as f64 / seconds,
        wal_bytes_per_job: wal as f64 / jobs_count as f64,
        worker,
    })
}

pub struct Latency {
    pub queued_to_started_ms: Percentiles,
    pub reply_to_succeeded_ms: Percentiles,
    pub idle_worker_cpu_percent: f64,
}

/// Jobs queued one at a time to an idle worker; then the worker's CPU while idle.
pub async fn latency(setup: &Setup, jobs_count: usize, idle: Duration) -> anyhow::Result<Latency> {
    let db = setup.database().await?;
    let api = Api::start(&setup.url(&db), &setup.catalog, &setup.env(&db, &[])).await;
    let worker = Worker::start(&setup.url(&db), &setup.catalog, "bench-latency", &setup.env(&db, &[])).await;
    let client = reqwest::Client::new();
    let mut replies = std::collections::HashMap::new();
    for i in 0..jobs_count {
        let id = api.enqueue(&client, "noop", &format!("doc-{i}")).await;
        replies.insert(id.0, chrono::Utc::now());
        // Let the worker go idle again before the next job.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while probe::count_unfinished(&db.pool).await? > 0 {
        ensure!(Instant::now() < deadline, "latency jobs did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut queued_to_started = Vec::new();
    let mut reply_to_succeeded = Vec::new();
    for (id, created, started, finished) in probe::job_times(&db.pool).await? {
        let ms = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
        queued_to_started.push(ms(started.context("attempt row")? - created));
        reply_to_succeeded.push(ms(finished.context("finished")? - replies[&id]));
    }
    let pid = worker.process.pid().as_raw() as u32;
    let cpu_before = procfs::cpu_seconds(pid).unwrap_or(f64::NAN);
    tokio::time::sleep(idle).await;
    let cpu_after = procfs::cpu_seconds(pid).unwrap_or(f64::NAN);
    Ok(Latency {
        queued_to_started_ms: percentiles(&mut queued_to_started),
        reply_to_succeeded_ms: percentiles(&mut reply_to_succeeded),
        idle_worker_cpu_percent: (cpu_after - cpu_before) / idle.as_secs_f64() * 100.0,
    })
}
