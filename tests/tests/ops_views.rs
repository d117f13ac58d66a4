//! The operators' jobs list at scale, in the database layer: each filter alone reads a
//! page's worth of index entries and rows, not the table. Counted in the list's own
//! transaction (`pg_stat_get_xact_tuples_returned` of `jobs` and its indexes), so the
//! test measures work, not time; `docket-bench --only big` times the same at 10M rows.

use std::time::Duration;

use chrono::Utc;
use docket::db::ops::{self, JobFilter};
use docket::domain::JobState;
use docket_tests::TestDb;

/// 20,000 old jobs (one in 30 failed; five each of a rare action, a rare requester,
/// cancelled and retrying, all among the oldest), then a waiting backlog of 5,000
/// newer jobs without a requester, three of them running: the shape that made a rare
/// filter, or a state behind the backlog, walk the whole primary key.
async fn history_and_backlog(db: &TestDb) {
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, requested_by, state, attempts,
                           max_attempts, run_at, created_at, finished_at)
         select docket_uuid_v7(), case when i <= 5 then 'rare' else 'bulk' end, 'doc-' || i, 'v1',
                case when i <= 5 then 'rare@example.com' else 'user' || (i % 100) || '@example.com' end,
                s.state, 1, 3, case when s.state = 'retrying' then now() + interval '1 hour' else now() end,
                now() - interval '1 day', case when s.state <> 'retrying' then now() end
         from generate_series(1, 20000) i
         cross join lateral (
             select case when i between 6 and 10 then 'cancelled'::job_state
                         when i between 11 and 15 then 'retrying' when i % 30 = 1 then 'failed'
                         else 'succeeded' end as state
         ) s",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into jobs (id, action, document_id, document_version_id, max_attempts)
         select docket_uuid_v7(), 'bulk', 'due-' || i, 'v1', 3 from generate_series(1, 5000) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "update jobs set state = 'running', attempts = 1, lease_owner = 'w1', lease_expires_at = now() + interval '1 minute'
         where id in (select id from jobs where state = 'queued' order by id limit 3)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("vacuum analyze jobs").execute(&db.pool).await.unwrap();
}

/// The first page (50) of the list by `filter`: how many jobs it found, and how many
/// index entries and rows (sequential scans) it read. (A difference: the counters
/// of the transaction also hold what this connection read before and has not yet
/// reported.)
async fn first_page_reads(db: &TestDb, filter: &JobFilter) -> (usize, i64) {
    const READ: &str = "select pg_stat_get_xact_tuples_returned('jobs'::regclass)
                               + (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)::int8
                                  from pg_index where indrelid = 'jobs'::regclass)";
    let mut tx = db.pool.begin().await.unwrap();
    let before: i64 = sqlx::query_scalar(READ).fetch_one(&mut *tx).await.unwrap();
    ops::statement_timeout(&mut tx, Duration::from_secs(10)).await.unwrap();
    let page = ops::jobs_list(&mut *tx, filter, None, 50).await.unwrap();
    let after: i64 = sqlx::query_scalar(READ).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    (page.len(), after - before)
}

#[tokio::test]
async fn the_jobs_list_by_any_one_filter_reads_a_page_not_the_table() {
    let db = TestDb::new().await;
    history_and_backlog(&db).await;
    let by = |f: fn(&mut JobFilter)| {
        let mut filter = JobFilter::default();
        f(&mut filter);
        filter
    };
    let since = Utc::now() - chrono::Duration::days(3);
    let cases = [
        ("newest", by(|_| {}), 50),
        ("state=queued", by(|f| f.state = Some(JobState::Queued)), 50),
        ("state=running", by(|f| f.state = Some(JobState::Running)), 3),
        ("state=retrying", by(|f| f.state = Some(JobState::Retrying)), 5),
        ("state=succeeded", by(|f| f.state = Some(JobState::Succeeded)), 50),
        ("state=failed", by(|f| f.state = Some(JobState::Failed)), 50),
        ("state=cancelled", by(|f| f.state = Some(JobState::Cancelled)), 5),
        ("action=rare", by(|f| f.action = Some("rare".into())), 5),
        ("action=absent", by(|f| f.action = Some("absent".into())), 0),
        ("action=bulk", by(|f| f.action = Some("bulk".into())), 50),
        ("requestedBy frequent", by(|f| f.requested_by = Some("user7@example.com".into())), 50),
        ("requestedBy rare", by(|f| f.requested_by = Some("rare@example.com".into())), 5),
        ("requestedBy nobody", by(|f| f.requested_by = Some("nobody@example.com".into())), 0),
        ("documentId", by(|f| f.document_id = Some("doc-17".into())), 1),
        ("trigger never fired", by(|f| f.trigger = Some("became-approved".into())), 0),
    ];
    for (name, filter, expected) in cases {
        let (found, read) = first_page_reads(&db, &filter).await;
        assert_eq!(found, expected, "{name}: found {found} jobs");
        // A page is at most 50 ids from each of the two branches, each read again by
        // its key, and the three running jobs; the table holds 25,000.
        assert!(read <= 200, "{name}: the first page read {read} index entries and rows");
    }
    let mut failed_lately = JobFilter { state: Some(JobState::Failed), ..JobFilter::default() };
    failed_lately.created_since = Some(since);
    let (found, read) = first_page_reads(&db, &failed_lately).await;
    assert_eq!(found, 50);
    assert!(read <= 200, "failed, created in the last 3 days: read {read} index entries and rows");
}
