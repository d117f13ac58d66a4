//! The day partitions of the append-only history, `job_attempts` (by the job's UUIDv7
//! id: the day the job was created) and `workfront_events` (by the event's time):
//! created a week ahead, dropped whole once past retention, and their sizes. The DDL
//! is in the database functions of migration `20261204000006` (`docket_partition_add`,
//! `docket_partition_drop_one`, `docket_partitions`).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgExecutor;

/// A table partitioned by UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioned {
    JobAttempts,
    WorkfrontEvents,
}

impl Partitioned {
    pub const ALL: [Partitioned; 2] = [Partitioned::JobAttempts, Partitioned::WorkfrontEvents];

    pub fn table(self) -> &'static str {
        match self {
            Partitioned::JobAttempts => "job_attempts",
            Partitioned::WorkfrontEvents => "workfront_events",
        }
    }
}

/// Creates `table`'s partition for the UTC day `day` (taking in the rows that waited
/// for it in the default partition); false if a partition already covers that day.
pub async fn add_day(executor: impl PgExecutor<'_>, table: Partitioned, day: NaiveDate) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"select docket_partition_add($1, $2) as "added!""#, table.table(), day)
        .fetch_one(executor)
        .await
}

/// Drops the oldest partition of `table` whose range ended by `before` and returns its
/// name (`None`: there is none). Attempts of jobs that still exist move to the default
/// partition first. Fails (lock timeout) rather than hold up claims behind its lock.
pub async fn drop_oldest(
    executor: impl PgExecutor<'_>,
    table: Partitioned,
    before: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(r#"select docket_partition_drop_one($1, $2) as "dropped""#, table.table(), before)
        .fetch_one(executor)
        .await
}

/// Deletes up to `batch` attempts in the default partition whose job is gone. That
/// partition holds what no day partition covers: attempts of jobs that outlived their
/// day's partition, and of ids that are not UUIDv7. It stays small; its rows go with
/// their jobs, as all attempts did before partitioning.
pub async fn attempts_sweep_default(executor: impl PgExecutor<'_>, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"delete from job_attempts_default where ctid = any (array(
               select a.ctid from job_attempts_default a
               where not exists (select 1 from jobs j where j.id = a.job_id)
               limit $1))"#,
        batch,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// One partition: its day (`None` for the default and the pre-partitioning one) and
/// size on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSize {
    pub name: String,
    pub starts: Option<DateTime<Utc>>,
    pub ends: Option<DateTime<Utc>>,
    pub table_bytes: i64,
    pub index_bytes: i64,
}

/// Every partition of `table` (the default one last) with its size (0 for one dropped
/// while this reads).
pub async fn sizes(executor: impl PgExecutor<'_>, table: Partitioned) -> Result<Vec<PartitionSize>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select c.relname::text as "name!", p.starts, p.ends,
                  coalesce(pg_table_size(c.oid), 0) as "table_bytes!", coalesce(pg_indexes_size(c.oid), 0) as "index_bytes!"
           from pg_inherits i join pg_class c on c.oid = i.inhrelid
           left join docket_partitions($1) p on p.name = c.relname::text
           where i.inhparent = $1::text::regclass
           order by p.name is null, p.ends nulls first, c.relname"#,
        table.table(),
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PartitionSize {
            name: r.name,
            starts: r.starts,
            ends: r.ends,
            table_bytes: r.table_bytes,
            index_bytes: r.index_bytes,
        })
        .collect())
}
