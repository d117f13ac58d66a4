//! Per action and minute samples for the dashboard's charts (`queue_samples`): what
//! waited and ran, what ended. Written by the api's sampler, read by the overview.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// One action's minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub minute: DateTime<Utc>,
    pub action: String,
    /// Queued, retrying and running when last sampled in that minute; `None` if no
    /// api sampled then.
    pub queued: Option<i64>,
    pub retrying: Option<i64>,
    pub running: Option<i64>,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl Sample {
    /// Queued and retrying together (`None` if not sampled).
    pub fn waiting(&self) -> Option<i64> {
        Some(self.queued? + self.retrying?)
    }
}

/// Samples the current minute (waiting and running now, ended since the minute
/// began), finishes the previous minute's ended counts, and deletes samples older
/// than 8 days. One api does it at a time (a transaction-level advisory lock); the
/// others return false at once.
pub async fn record(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let sampler: bool = sqlx::query_scalar!(r#"select pg_try_advisory_xact_lock(100111099107101118) as "locked!""#)
        .fetch_one(&mut *conn)
        .await?;
    if !sampler {
        return Ok(false);
    }
    sqlx::query!(
        r#"with now_minute as (select date_trunc('minute', now()) as minute),
           waiting as (
               select j.action, count(*) filter (where j.state = 'queued') as queued,
                      count(*) filter (where j.state = 'retrying') as retrying
               from docket_waiting_actions() w (action)
               join jobs j on j.action = w.action and j.state in ('queued', 'retrying')
               group by j.action
           ), running as (
               select action, count(*) as n from jobs where state = 'running' group by action
           ), ended as (
               select action, count(*) filter (where state = 'succeeded') as succeeded,
                      count(*) filter (where state = 'failed') as failed,
                      count(*) filter (where state = 'cancelled') as cancelled
               from jobs, now_minute where finished_at >= now_minute.minute group by action
           ), actions as (
               select action from waiting union select action from running union select action from ended
           )
           insert into queue_samples (minute, action, queued, retrying, running, succeeded, failed, cancelled,
                                      sampled_at)
           select m.minute, a.action, coalesce(w.queued, 0), coalesce(w.retrying, 0), coalesce(r.n, 0),
                  coalesce(e.succeeded, 0), coalesce(e.failed, 0), coalesce(e.cancelled, 0), now()
           from actions a cross join now_minute m
           left join waiting w on w.action = a.action
           left join running r on r.action = a.action
           left join ended e on e.action = a.action
           on conflict (minute, action) do update
           set queued = excluded.queued, retrying = excluded.retrying, running = excluded.running,
               succeeded = excluded.succeeded, failed = excluded.failed, cancelled = excluded.cancelled,
               sampled_at = excluded.sampled_at"#
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"with previous as (select date_trunc('minute', now()) - interval '1 minute' as minute)
           insert into queue_samples (minute, action, succeeded, failed, cancelled)
           select p.minute, j.action, count(*) filter (where j.state = 'succeeded'),
                  count(*) filter (where j.state = 'failed'), count(*) filter (where j.state = 'cancelled')
           from jobs j, previous p
           where j.finished_at >= p.minute and j.finished_at < p.minute + interval '1 minute'
           group by p.minute, j.action
           on conflict (minute, action) do update
           set succeeded = excluded.succeeded, failed = excluded.failed, cancelled = excluded.cancelled"#
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("delete from queue_samples where minute < now() - interval '8 days'").execute(&mut *conn).await?;
    Ok(true)
}

/// Every sample since `since`, oldest first.
pub async fn since(executor: impl PgExecutor<'_>, since: DateTime<Utc>) -> Result<Vec<Sample>, sqlx::Error> {
    sqlx::query_as!(
        Sample,
        r#"select minute, action, queued, retrying, running, succeeded, failed, cancelled
           from queue_samples where minute >= $1 order by minute, action"#,
        since
    )
    .fetch_all(executor)
    .await
}
