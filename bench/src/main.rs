//! `docket-bench`: measures Docket on this machine with the real processes against a
//! local Postgres, and prints medians (with min and max) over repeated runs.

mod big;
mod events;
mod probe;
mod procfs;
mod retention;
mod scenarios;
mod stats;
mod wrk;

use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use scenarios::Setup;
use stats::{summarize, Percentiles, Summary};

/// Benchmarks Docket: baseline INSERTs, enqueue over HTTP, Workfront event intake,
/// drain, latency, scale.
#[derive(Debug, Parser)]
#[command(name = "docket-bench")]
struct Args {
    /// Postgres server URL without database name; each scenario run gets a fresh
    /// database there, dropped afterwards.
    #[arg(long, env = "DOCKET_BENCH_SERVER", default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// Scenarios to run (comma-separated): baseline, enqueue, events, limit, drain,
    /// limited, latency, scale, big. `events` (POST /workfront/events, then a burst)
    /// runs `baseline` and `enqueue` too (its figures are ratios to them); `drain`
    /// runs `limit` too (its figures are ratios to it);
    /// `limited` drains an action whose concurrency limit never binds, then one whose
    /// concurrency limit and rate never bind (the cost of the limited claim path);
    /// `big` fills the table (--big-finished …) and times what
    /// must not grow with it.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,enqueue,events,limit,drain,limited,latency,scale,big"
    )]
    only: Vec<String>,
    /// Repetitions of each scenario.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Small sizes and one run: a smoke test for CI (figures are not meaningful).
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Requests for `enqueue`, deliveries for `events` and rows for `baseline`.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Seconds of `enqueue`'s and `events`' second runs, driven by wrk (when installed).
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u64,
    /// Concurrent clients for `enqueue` and `events`, connections for `baseline`.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Deliveries sent all at once in `events`' burst (a bulk edit in Workfront).
    #[arg(long, default_value_t = 1_000)]
    burst: usize,
    /// Jobs for `drain` and `scale`.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker processes for `drain`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// DOCKET_WORKER_CONCURRENCY of each worker in the tuned `drain` and in `scale`
    /// (`drain` also runs with the worker's default).
    #[arg(long, default_value_t = 256)]
    worker_concurrency: usize,
    /// Connections of the raw `limit` loop (each claims and completes in batches).
    #[arg(long, default_value_t = 4)]
    limit_connections: usize,
    /// Jobs per claim in the raw `limit` loop.
    #[arg(long, default_value_t = 256)]
    limit_batch: i64,
    /// Jobs queued one at a time for `latency`.
    #[arg(long, default_value_t = 300)]
    latency_jobs: usize,
    /// Seconds of idle worker CPU measured after `latency`.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Old jobs (with an attempt each) in `big`: one in 30 failed, a few cancelled or
    /// retrying, the rest succeeded. With the defaults `jobs` holds 10M rows.
    #[arg(long, default_value_t = 8_999_000)]
    big_finished: u64,
    /// Due jobs of `archive` in `big`.
    #[arg(long, default_value_t = 1_000_000)]
    big_due_a: u64,
    /// Due jobs of `print` in `big` (the claim is timed on these).
    #[arg(long, default_value_t = 1_000)]
    big_due_b: u64,
    /// Operator actions in `big`'s audit trail.
    #[arg(long, default_value_t = 100_000)]
    big_audit: u64,
    /// Extra KEY=VALUE environment for the api and worker processes (repeatable), to
    /// compare settings, e.g. --env DOCKET_API_INSERT_BATCH=1.
    #[arg(long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Run api and workers through a PgBouncer of the benchmark's own (Debian package
    /// `pgbouncer`, transaction mode, this many server connections) with
    /// DOCKET_DB_POOLER=transaction; the workers LISTEN directly. 0: no pooler.
    #[arg(long, default_value_t = 0)]
    pgbouncer: u32,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

#[derive(Serialize)]
struct Figure {
    name: String,
    unit: &'static str,
    #[serde(flatten)]
    summary: Summary,
    runs: Vec<f64>,
}

#[derive(Default)]
struct Report {
    figures: Vec<(String, &'static str, Vec<f64>)>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, unit: &'static str, value: f64) {
        let name = name.into();
        match self.figures.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, values)) => values.push(value),
            None => self.figures.push((name, unit, vec![value])),
        }
    }

    fn add_percentiles(&mut self, name: &str, p: Percentiles) {
        self.add(format!("{name} p50"), "ms", p.p50);
        self.add(format!("{name} p95"), "ms", p.p95);
        self.add(format!("{name} p99"), "ms", p.p99);
        self.add(format!("{name} max"), "ms", p.max);
    }

    fn figures(&self) -> Vec<Figure> {
        self.figures
            .iter()
            .map(|(name, unit, runs)| Figure { name: name.clone(), unit, summary: summarize(runs), runs: runs.clone() })
            .collect()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.runs = 1;
        args.requests = args.requests.min(500);
        args.wrk_seconds = args.wrk_seconds.min(1);
        args.burst = args.burst.min(100);
        args.jobs = args.jobs.min(2_000);
        args.latency_jobs = args.latency_jobs.min(20);
        args.idle_seconds = args.idle_seconds.min(2);
        args.big_finished = args.big_finished.min(30_000);
        args.big_due_a = args.big_due_a.min(3_000);
        args.big_due_b = args.big_due_b.min(100);
        args.big_audit = args.big_audit.min(1_000);
    }
    let dir = tempfile_dir()?;
    let catalog = dir.join("actions.toml");
    std::fs::write(&catalog, scenarios::CATALOG)?;
    let limited_catalog = dir.join("limited.toml");
    std::fs::write(&limited_catalog, scenarios::LIMITED_CATALOG)?;
    let rated_catalog = dir.join("rated.toml");
    std::fs::write(&rated_catalog, scenarios::RATED_CATALOG)?;
    let events_catalog = dir.join("events.toml");
    std::fs::write(&events_catalog, events::CATALOG)?;
    let big_catalog = dir.join("big.toml");
    std::fs::write(&big_catalog, big::CATALOG)?;
    let bouncer = (args.pgbouncer > 0).then(|| {
        let server = sqlx::postgres::PgConnectOptions::from_str(&args.server).expect("--server is a Postgres URL");
        docket_harness::pooler::PgBouncer::start(server.get_host(), server.get_port(), args.pgbouncer)
    });
    let setup = Setup {
        server: args.server.clone(),
        catalog,
        limited_catalog,
        rated_catalog,
        events_catalog,
        env: args.env.clone(),
        bouncer,
    };
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let mut report = Report::default();

    for run in 1..=args.runs {
        eprintln!("run {run}/{}", args.runs);
        let mut baseline_rate = None;
        let mut pgbench_rate = None;
        if wants("baseline") || wants("enqueue") || wants("events") {
            let b = scenarios::baseline(&setup, args.requests, args.concurrency).await?;
            report.add(format!("baseline: raw INSERTs, C={}", args.concurrency), "rows/s", b.rows_per_second);
            report.add("baseline: WAL per row", "bytes", b.wal_bytes_per_row);
            baseline_rate = Some(b.rows_per_second);
            if let Some(tps) = scenarios::pgbench_baseline(&setup, args.requests, args.concurrency).await? {
                report.add(format!("baseline: pgbench single-row INSERTs, C={}", args.concurrency), "rows/s", tps);
                report.add("baseline: sqlx / pgbench", "x", b.rows_per_second / tps);
                pgbench_rate = Some(tps);
            }
        }
        let mut enqueue_rate = None;
        if wants("enqueue") || wants("events") {
            let e = scenarios::enqueue(&setup, args.requests, args.concurrency).await?;
            report.add(format!("enqueue: GET /customAction, C={}", args.concurrency), "req/s", e.requests_per_second);
            if let Some(b) = baseline_rate {
                report.add("enqueue / baseline", "x", e.requests_per_second / b);
            }
            if let Some(p) = pgbench_rate {
                report.add("enqueue / pgbench baseline", "x", e.requests_per_second / p);
            }
            report.add_percentiles("enqueue latency", e.latency_ms);
            report.add("enqueue errors", "count", e.errors as f64);
            report.add("enqueue: WAL per job", "bytes", e.wal_bytes_per_job);
            report.add("api peak RSS under enqueue", "MiB", e.api.peak_rss_mib);
            report.add("api CPU during enqueue", "s", e.api.cpu_seconds);
            enqueue_rate = Some(e.requests_per_second);
            let duration = Duration::from_secs(args.wrk_seconds);
            if let Some(w) = wrk::enqueue(&setup, duration, args.concurrency).await? {
                let name = format!("enqueue (wrk): GET /customAction, C={}", args.concurrency);
                report.add(name, "req/s", w.requests_per_second);
                if let Some(p) = pgbench_rate {
                    report.add("enqueue (wrk) / pgbench baseline", "x", w.requests_per_second / p);
                }
                report.add("enqueue (wrk) errors", "count", w.errors as f64);
            }
        }
        if wants("events") {
            let e = events::intake(&setup, args.requests, args.concurrency).await?;
            let rate = e.deliveries_per_second;
            report.add(format!("events: POST /workfront/events, C={}", args.concurrency), "deliveries/s", rate);
            if let Some(q) = enqueue_rate {
                report.add("events / enqueue (same run)", "x", rate / q);
            }
            if let Some(p) = pgbench_rate {
                report.add("events / pgbench baseline", "x", rate / p);
            }
            report.add_percentiles("events latency", e.latency_ms);
            report.add("events errors", "count", e.errors as f64);
            report.add("events: WAL per delivery", "bytes", e.wal_bytes_per_delivery);
            report.add("api peak RSS under events", "MiB", e.api.peak_rss_mib);
            report.add("api CPU during events", "s", e.api.cpu_seconds);
            if let Some(w) = wrk::events(&setup, Duration::from_secs(args.wrk_seconds), args.concurrency).await? {
                let name = format!("events (wrk): POST /workfront/events, C={}", args.concurrency);
                report.add(name, "deliveries/s", w.requests_per_second);
                if let Some(p) = pgbench_rate {
                    report.add("events (wrk) / pgbench baseline", "x", w.requests_per_second / p);
                }
                report.add("events (wrk) errors", "count", w.errors as f64);
            }
            let b = events::burst(&setup, args.burst).await?;
            let burst = format!("events burst of {}", args.burst);
            report.add_percentiles(&format!("{burst}: latency"), b.latency_ms);
            report.add(format!("{burst}: answered 200, one new job each"), "count", b.answered as f64);
            report.add(format!("{burst}: jobs stored"), "count", b.jobs as f64);
            report.add(format!("{burst}: last answer after"), "s", b.seconds);
        }
        let mut limit_rate = None;
        if wants("limit") || wants("drain") {
            let l = scenarios::limit(&setup, args.jobs, args.limit_connections, args.limit_batch).await?;
            report.add(
                format!("limit: raw claim+complete, C={}, batch {}", args.limit_connections, args.limit_batch),
                "jobs/s",
                l.jobs_per_second,
            );
            report.add("limit: WAL per job", "bytes", l.wal_bytes_per_job);
            limit_rate = Some(l.jobs_per_second);
        }
        if wants("drain") {
            let d = scenarios::drain(&setup, args.jobs, args.workers, None, &setup.catalog).await?;
            report.add(format!("drain: default settings, {} workers", args.workers), "jobs/s", d.jobs_per_second);
            if let Some(l) = limit_rate {
                report.add("drain (default settings) / limit", "x", d.jobs_per_second / l);
            }
            report.add("drain (default settings): WAL per job", "bytes", d.wal_bytes_per_job);
            let d = scenarios::drain(&setup, args.jobs, args.workers, Some(args.worker_concurrency), &setup.catalog)
                .await?;
            report.add(
                format!("drain: concurrency {}, {} workers", args.worker_concurrency, args.workers),
                "jobs/s",
                d.jobs_per_second,
            );
            if let Some(l) = limit_rate {
                report.add(
                    format!("drain (concurrency {}) / limit", args.worker_concurrency),
                    "x",
                    d.jobs_per_second / l,
                );
            }
            report.add("drain: WAL per job", "bytes", d.wal_bytes_per_job);
            report.add("worker peak RSS under drain", "MiB", d.worker.peak_rss_mib);
            report.add("workers' CPU during drain", "s", d.worker.cpu_seconds);
        }
        if wants("limited") {
            let kinds =
                [("max_concurrency", &setup.limited_catalog), ("max_concurrency and rate", &setup.rated_catalog)];
            for (limits, catalog) in kinds {
                let d = scenarios::drain(&setup, args.jobs, args.workers, None, catalog).await?;
                report.add(
                    format!(
                        "drain: limited action ({limits} never binding), default settings, {} workers",
                        args.workers
                    ),
                    "jobs/s",
                    d.jobs_per_second,
                );
                if let Some(l) = limit_rate {
                    report.add(format!("drain (limited action, {limits}) / limit"), "x", d.jobs_per_second / l);
                }
            }
        }
        if wants("latency") {
            let l = scenarios::latency(&setup, args.latency_jobs, Duration::from_secs(args.idle_seconds)).await?;
            report.add_percentiles("latency queued->started", l.queued_to_started_ms);
            report.add_percentiles("latency reply->succeeded", l.reply_to_succeeded_ms);
            report.add(format!("idle worker CPU over {}s", args.idle_seconds), "% core", l.idle_worker_cpu_percent);
        }
        if wants("scale") {
            let mut single = None;
            for workers in [1usize, 2, 4] {
                let d =
                    scenarios::drain(&setup, args.jobs, workers, Some(args.worker_concurrency), &setup.catalog).await?;
                report.add(format!("scale: {workers} worker process(es)"), "jobs/s", d.jobs_per_second);
                match single {
                    None => single = Some(d.jobs_per_second),
                    Some(one) if workers == 4 => report.add("scale: 4 vs 1", "x", d.jobs_per_second / one),
                    Some(_) => {}
                }
            }
        }
        if wants("big") {
            let size = big::Size {
                finished: args.big_finished,
                due_a: args.big_due_a,
                due_b: args.big_due_b,
                audit_rows: args.big_audit,
            };
            let b = big::big(&setup, &big_catalog, size).await?;
            report.add("big: rows in jobs", "rows", b.rows as f64);
            report.add("big: fill and vacuum", "s", b.fill_seconds);
            report.add_percentiles("big: claim of a worker serving only print", b.claim_b_ms);
            report.add_percentiles("big: GET /metrics", b.scrape_ms);
            report.add_percentiles("big: GET /ops/stats", b.stats_ms);
            for (name, p) in b.page_ms {
                report.add_percentiles(&format!("big: {name}"), p);
            }
            report.add_percentiles("big: GET /ops/audit?jobId", b.audit_ms);
            report.add("big: bulk retry of failed archive jobs", "jobs", b.retried as f64);
            report.add("big: bulk retry", "jobs/s", b.retried as f64 / b.retry_seconds);
            report.add("big: pruned (succeeded, older than 15 days)", "rows", b.pruned as f64);
            report.add("big: pruning", "rows/s", b.prune_rows_per_second);
            for (k, c) in b.history.iter().enumerate() {
                report.add(format!("big: retention cycle {k}: jobs size"), "MB", c.jobs_mb);
                report.add(format!("big: retention cycle {k}: job_attempts size"), "MB", c.attempts_mb);
                report.add(format!("big: retention cycle {k}: workfront_events size"), "MB", c.events_mb);
                if k > 0 {
                    report.add(
                        format!("big: retention cycle {k}: jobs pruned"),
                        "rows/s",
                        c.pruned as f64 / c.prune_seconds.max(1e-9),
                    );
                    report.add(
                        format!("big: retention cycle {k}: day partitions dropped"),
                        "partitions",
                        c.dropped as f64,
                    );
                    report.add(format!("big: retention cycle {k}: dropping them"), "s", c.drop_seconds);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    print_report(&args, &report.figures())?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("docket-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn print_report(args: &Args, figures: &[Figure]) -> anyhow::Result<()> {
    if args.json {
        let out = serde_json::json!({
            "date": chrono::Utc::now().to_rfc3339(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "runs": args.runs,
            "quick": args.quick,
            "pgbouncer_server_connections": args.pgbouncer,
            "figures": figures,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let via = if args.pgbouncer > 0 {
        format!(", through PgBouncer (transaction mode, {} server connections)", args.pgbouncer)
    } else {
        String::new()
    };
    println!("docket-bench, {} run(s){via}, {}", args.runs, chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("{:<56} {:>12} {:>12} {:>12}  unit", "figure", "median", "min", "max");
    for f in figures {
        println!(
            "{:<56} {:>12.2} {:>12.2} {:>12.2}  {}",
            f.name, f.summary.median, f.summary.min, f.summary.max, f.unit
        );
    }
    Ok(())
}
