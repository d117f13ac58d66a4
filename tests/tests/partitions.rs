//! The day partitions of the history (`job_attempts` by the job's creation day,
//! `workfront_events` by the event's day): what the partitioning migration does with
//! rows written before it, and the workers' upkeep that makes partitions a week ahead
//! and drops them whole past retention, keeping the attempts of jobs still alive.

use std::borrow::Cow;

use chrono::{Days, Utc};
use docket::db::attempts;
use docket::db::partitions::{self, Partitioned};
use docket::domain::JobId;
use docket_tests::wait::DEADLINE;
use docket_tests::{catalog, catalog_path, wait_until, TestDb, Worker};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The first migration of the partitioned history.
const PARTITIONING: i64 = 20261204000006;

/// A UUIDv7 job id of `days` ago (a random one within that second).
fn id_of_days_ago(days: i64) -> Uuid {
    let at = Utc::now() - chrono::Duration::days(days);
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, at.timestamp() as u64, 0))
}

/// Inserts a job in `state` that finished `finished_days_ago` (null: still queued),
/// with one finished attempt.
async fn job_with_attempt(pool: &PgPool, id: Uuid, state: &str, finished_days_ago: Option<i64>) {
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, max_attempts, state, attempts, finished_at)
         values ($1, 'noop', 'd', 'v', 1, $2::job_state, 1, now() - make_interval(days => $3))",
    )
    .bind(id)
    .bind(state)
    .bind(finished_days_ago.map(|d| d as i32))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into job_attempts (job_id, attempt, worker_id, finished_at, outcome)
         values ($1, 1, 'old', now(), 'succeeded')",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
}

/// Inserts a recorded delivery of an event `days` ago.
async fn event(pool: &PgPool, obj_id: &str, days: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code,
                                       obj_id, new_state, old_state, triggers, job_ids)
         values ($1, 's', extract(epoch from now() - make_interval(days => $2))::bigint, 0, 'UPDATE', 'DOCU',
                 $3, '{}', '{}', '{}', '{}')",
    )
    .bind(id)
    .bind(days as i32)
    .bind(obj_id)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// The partition a row of `table` is in.
async fn partition_of(pool: &PgPool, table: &str, key: &str, id: Uuid) -> Option<String> {
    sqlx::query_scalar(&format!("select tableoid::regclass::text from {table} where {key} = $1 limit 1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn partition_names(pool: &PgPool, table: Partitioned) -> Vec<String> {
    partitions::sizes(pool, table).await.unwrap().into_iter().map(|p| p.name).collect()
}

fn day_partition(table: Partitioned, days_from_today: i64) -> String {
    let day = Utc::now().date_naive().checked_add_signed(chrono::Duration::days(days_from_today)).unwrap();
    format!("{}_p{}", table.table(), day.format("%Y%m%d"))
}

#[tokio::test]
async fn rows_written_before_partitioning_stay_readable_and_leave_with_their_partition() {
    // A database migrated up to the partitioning, with history in it.
    let name = format!("docket_test_{}", Uuid::new_v4().simple());
    let server = docket_tests::db::server_url();
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    sqlx::raw_sql(&format!("create database \"{name}\"")).execute(&mut admin).await.unwrap();
    let url = format!("{server}/{name}");
    let pool = PgPool::connect(&url).await.unwrap();
    let mut before =
        sqlx::migrate::Migrator::new(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations")))
            .await
            .unwrap();
    before.migrations = Cow::Owned(before.migrations.iter().filter(|m| m.version < PARTITIONING).cloned().collect());
    before.run(&pool).await.unwrap();

    let (old_alive, old_pruned, today) = (id_of_days_ago(10), id_of_days_ago(11), id_of_days_ago(0));
    // Not UUIDv7, and after every day's range.
    let other = Uuid::parse_str("f0000000-0000-4000-8000-000000000001").unwrap();
    for id in [old_alive, old_pruned, today, other] {
        job_with_attempt(&pool, id, "failed", Some(1)).await;
    }
    let old_event = event(&pool, "old", 10).await;
    let new_event = event(&pool, "new", 0).await;

    // The partitioning migration, as a starting api or worker runs it.
    let migrated = docket::db::connect_and_migrate(&url, &docket::db::PoolSettings::default()).await.unwrap();
    let where_is = |table: &'static str, key: &'static str, id: Uuid| partition_of(&pool, table, key, id);
    assert_eq!(where_is("job_attempts", "job_id", old_alive).await.as_deref(), Some("job_attempts_legacy"));
    assert_eq!(
        where_is("job_attempts", "job_id", today).await,
        Some(day_partition(Partitioned::JobAttempts, 0)),
        "today's attempts move to today's partition"
    );
    assert_eq!(where_is("job_attempts", "job_id", other).await.as_deref(), Some("job_attempts_default"));
    assert_eq!(where_is("workfront_events", "id", old_event).await.as_deref(), Some("workfront_events_legacy"));
    assert_eq!(
        where_is("workfront_events", "id", new_event).await,
        Some(day_partition(Partitioned::WorkfrontEvents, 0))
    );
    for id in [old_alive, old_pruned, today, other] {
        assert_eq!(attempts::list(&pool, JobId(id)).await.unwrap().len(), 1, "every attempt is still read");
    }
    // A week ahead, for both tables.
    for table in Partitioned::ALL {
        let names = partition_names(&pool, table).await;
        for days in 0..=7 {
            assert!(names.contains(&day_partition(table, days)), "{names:?} lacks day +{days}");
        }
    }

    // The legacy partition ends today: dropped once "today" is past retention. The
    // attempts of a job still alive move to the default partition; those of a pruned
    // job go with it.
    sqlx::query("delete from jobs where id = $1").bind(old_pruned).execute(&pool).await.unwrap();
    let dropped = partitions::drop_oldest(&pool, Partitioned::JobAttempts, Utc::now()).await.unwrap();
    assert_eq!(dropped.as_deref(), Some("job_attempts_legacy"));
    assert_eq!(where_is("job_attempts", "job_id", old_alive).await.as_deref(), Some("job_attempts_default"));
    assert_eq!(attempts::list(&pool, JobId(old_alive)).await.unwrap().len(), 1);
    assert_eq!(attempts::list(&pool, JobId(old_pruned)).await.unwrap().len(), 0);
    assert_eq!(partitions::drop_oldest(&pool, Partitioned::JobAttempts, Utc::now()).await.unwrap(), None);
    let dropped = partitions::drop_oldest(&pool, Partitioned::WorkfrontEvents, Utc::now()).await.unwrap();
    assert_eq!(dropped.as_deref(), Some("workfront_events_legacy"));
    assert_eq!(where_is("workfront_events", "id", old_event).await, None);
    assert!(where_is("workfront_events", "id", new_event).await.is_some());

    migrated.pool().close().await;
    pool.close().await;
    sqlx::raw_sql(&format!("drop database \"{name}\" with (force)")).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn a_day_partition_made_late_takes_in_the_rows_that_waited_in_the_default_one() {
    let db = TestDb::new().await;
    let id = id_of_days_ago(20);
    job_with_attempt(&db.pool, id, "succeeded", Some(19)).await;
    assert_eq!(partition_of(&db.pool, "job_attempts", "job_id", id).await.as_deref(), Some("job_attempts_default"));
    let day = Utc::now().date_naive() - Days::new(20);
    assert!(partitions::add_day(&db.pool, Partitioned::JobAttempts, day).await.unwrap());
    assert_eq!(
        partition_of(&db.pool, "job_attempts", "job_id", id).await,
        Some(day_partition(Partitioned::JobAttempts, -20))
    );
    assert!(!partitions::add_day(&db.pool, Partitioned::JobAttempts, day).await.unwrap(), "made once");
}

#[tokio::test]
async fn workers_keep_day_partitions_a_week_ahead_and_drop_them_past_retention() {
    let db = TestDb::new().await;
    let today = Utc::now().date_naive();
    partitions::add_day(&db.pool, Partitioned::JobAttempts, today - Days::new(40)).await.unwrap();
    partitions::add_day(&db.pool, Partitioned::WorkfrontEvents, today - Days::new(3)).await.unwrap();
    // Created 40 days ago: one pruned by its retention (succeeded 35 days ago), one
    // alive (failed yesterday, kept 30 days); one not UUIDv7, pruned.
    let (pruned, alive) = (id_of_days_ago(40), id_of_days_ago(40));
    let other = Uuid::parse_str("f0000000-0000-4000-8000-000000000002").unwrap();
    job_with_attempt(&db.pool, pruned, "succeeded", Some(35)).await;
    job_with_attempt(&db.pool, alive, "failed", Some(1)).await;
    job_with_attempt(&db.pool, other, "succeeded", Some(35)).await;
    let old_event = event(&db.pool, "old", 3).await;
    let new_event = event(&db.pool, "new", 0).await;
    // The last day ahead is missing, as if the database had been a day without workers.
    for table in Partitioned::ALL {
        sqlx::query(&format!("drop table {}", day_partition(table, 7))).execute(&db.pool).await.unwrap();
    }

    let dir = catalog("[[action]]\nname = \"other\"\nkind = \"noop\"\n");
    let _worker = Worker::start(
        &db.url,
        &catalog_path(&dir),
        "w-partitions",
        &[("DOCKET_RETENTION_INTERVAL", "200ms".into()), ("DOCKET_RETENTION_EVENTS", "1d".into())],
    )
    .await;
    let old_attempts = day_partition(Partitioned::JobAttempts, -40);
    let old_events = day_partition(Partitioned::WorkfrontEvents, -3);
    wait_until("old partitions dropped, new ones made, pruned jobs' attempts gone", DEADLINE, || async {
        let attempts = partition_names(&db.pool, Partitioned::JobAttempts).await;
        let events = partition_names(&db.pool, Partitioned::WorkfrontEvents).await;
        let left: i64 = sqlx::query_scalar("select count(*) from job_attempts").fetch_one(&db.pool).await.unwrap();
        (!attempts.contains(&old_attempts)
            && !events.contains(&old_events)
            && attempts.contains(&day_partition(Partitioned::JobAttempts, 7))
            && events.contains(&day_partition(Partitioned::WorkfrontEvents, 7))
            && left == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        partition_of(&db.pool, "job_attempts", "job_id", alive).await.as_deref(),
        Some("job_attempts_default"),
        "a live job's attempts outlive their partition"
    );
    assert_eq!(attempts::list(&db.pool, JobId(alive)).await.unwrap().len(), 1);
    for gone in [pruned, other] {
        assert_eq!(attempts::list(&db.pool, JobId(gone)).await.unwrap().len(), 0);
    }
    assert_eq!(partition_of(&db.pool, "workfront_events", "id", old_event).await, None);
    assert!(partition_of(&db.pool, "workfront_events", "id", new_event).await.is_some(), "today's event stays");
}
