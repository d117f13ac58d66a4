//! Retention cycles in the `big` scenario: the history's day partitions for the
//! filled month, Workfront event records beside the jobs, then cycles that each add a
//! day of finished jobs (with attempts and events) and retire the oldest day the way
//! the workers' upkeep does (jobs pruned in batches, a day partition of attempts and
//! of events dropped whole, vacuum as autovacuum would), measuring the tables' sizes
//! after each. The sizes stay flat if retention leaves no bloat behind.

use std::time::Instant;

use chrono::{Days, Utc};
use docket::db::partitions::{self, Partitioned};
use docket::db::{events, ops};
use docket::domain::JobState;
use sqlx::PgPool;

/// Days of history the fill spans (`big`'s finished jobs are 1–30 days old).
const FILLED_DAYS: u64 = 31;
/// One event record per this many finished jobs.
const JOBS_PER_EVENT: u64 = 10;

/// Day partitions for the filled month (as the workers would have made them, a week
/// ahead, through that month), then event records spread over it (received when
/// they happened): `finished / JOBS_PER_EVENT` of them, the size of a real `newState`.
pub async fn prepare(pool: &PgPool, finished: u64) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    for table in Partitioned::ALL {
        for back in 0..=FILLED_DAYS {
            partitions::add_day(pool, table, today - Days::new(back)).await?;
        }
    }
    sqlx::query(
        "insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code, obj_id,
                                       new_state, old_state, triggers, job_ids, received_at)
         select gen_random_uuid(), 'sub-1', extract(epoch from t)::bigint, 0, 'UPDATE', 'DOCU', 'doc-' || i,
                jsonb_build_object('ID', 'doc-' || i, 'name', 'contract-' || i || '.pdf', 'currentVersionID', 'v1',
                                   'description', repeat('x', 200)),
                jsonb_build_object('ID', 'doc-' || i), array['became-approved'], '{}', t
         from (select i, now() - interval '30 days' + (i * interval '29 days' / $1) as t
               from generate_series(1, $1) i) s",
    )
    .bind((finished / JOBS_PER_EVENT).max(1) as i64)
    .execute(pool)
    .await?;
    sqlx::query("vacuum analyze workfront_events").execute(pool).await?;
    Ok(())
}

/// Sizes after one cycle (cycle 0: before the first).
#[derive(Debug, Clone)]
pub struct Cycle {
    pub jobs_mb: f64,
    pub attempts_mb: f64,
    pub events_mb: f64,
    /// Jobs pruned and the time the prune took (batches of 1,000, as the workers).
    pub pruned: u64,
    pub prune_seconds: f64,
    /// Day partitions dropped (attempts and events) and the time that took.
    pub dropped: usize,
    pub drop_seconds: f64,
}

/// Runs `cycles` retention cycles on a database `prepare`d and filled with
/// `finished` jobs over 30 days. Cycle k adds a day of jobs (`finished / 29`, with an
/// attempt each and their events) and applies a retention of 30 − k days.
pub async fn cycles(pool: &PgPool, finished: u64, cycles: u64) -> anyhow::Result<Vec<Cycle>> {
    let per_day = (finished / 29).max(1) as i64;
    let mut out = vec![measure(pool, 0, 0.0, 0, 0.0).await?];
    for k in 1..=cycles {
        sqlx::query(
            "with new as (
                 insert into jobs (id, action, document_id, document_version_id, requested_by, state, attempts,
                                   max_attempts, run_at, created_at, updated_at, finished_at)
                 select docket_uuid_v7(), 'archive', 'cycle-doc-' || i, 'v1', 'user' || (i % 5000) || '@example.com',
                        'succeeded', 1, 1, now(), now(), now(), now()
                 from generate_series(1, $1) i
                 returning id, created_at, finished_at
             )
             insert into job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
             select id, 1, 'w-big', created_at, finished_at, 'succeeded' from new",
        )
        .bind(per_day)
        .execute(pool)
        .await?;
        sqlx::query(
            "insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code,
                                           obj_id, new_state, old_state, triggers, job_ids)
             select docket_uuid_v7(), 'sub-1', extract(epoch from now())::bigint, i, 'UPDATE', 'DOCU',
                    'cycle-' || $2 || '-doc-' || i,
                    jsonb_build_object('ID', 'cycle-' || $2 || '-doc-' || i, 'name', 'contract-' || i || '.pdf',
                                       'currentVersionID', 'v1', 'description', repeat('x', 200)),
                    jsonb_build_object('ID', 'cycle-' || $2 || '-doc-' || i), array['became-approved'], '{}'
             from generate_series(1, $1) i",
        )
        .bind((per_day as u64 / JOBS_PER_EVENT).max(1) as i64)
        .bind(k as i64)
        .execute(pool)
        .await?;

        let age = std::time::Duration::from_secs((30 - k.min(29)) * 86_400);
        let t = Instant::now();
        let mut pruned = 0;
        let states = [JobState::Succeeded, JobState::Failed, JobState::Cancelled];
        loop {
            let n = ops::jobs_prune(pool, &states, age, 1000).await?;
            pruned += n;
            if n < 1000 {
                break;
            }
        }
        let prune_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let before = Utc::now() - chrono::Duration::from_std(age)?;
        let mut dropped = 0;
        for table in Partitioned::ALL {
            while partitions::drop_oldest(pool, table, before).await?.is_some() {
                dropped += 1;
            }
        }
        while partitions::attempts_sweep_default(pool, 1000).await? == 1000 {}
        while events::prune(pool, age, 1000).await? == 1000 {}
        let drop_seconds = t.elapsed().as_secs_f64();
        // What autovacuum does between cycles, so that freed space is reused.
        sqlx::query("vacuum jobs").execute(pool).await?;
        out.push(measure(pool, pruned, prune_seconds, dropped, drop_seconds).await?);
    }
    Ok(out)
}

async fn measure(
    pool: &PgPool,
    pruned: u64,
    prune_seconds: f64,
    dropped: usize,
    drop_seconds: f64,
) -> anyhow::Result<Cycle> {
    let mb = |bytes: i64| bytes as f64 / 1_048_576.0;
    let jobs: i64 = sqlx::query_scalar("select pg_total_relation_size('jobs')").fetch_one(pool).await?;
    let total =
        |parts: Vec<partitions::PartitionSize>| parts.iter().map(|p| p.table_bytes + p.index_bytes).sum::<i64>();
    Ok(Cycle {
        jobs_mb: mb(jobs),
        attempts_mb: mb(total(partitions::sizes(pool, Partitioned::JobAttempts).await?)),
        events_mb: mb(total(partitions::sizes(pool, Partitioned::WorkfrontEvents).await?)),
        pruned,
        prune_seconds,
        dropped,
        drop_seconds,
    })
}
