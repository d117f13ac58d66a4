//! Workfront event deliveries: recording them with the jobs they start (one statement),
//! finding a redelivery's first answer, what a job's templates read about its event,
//! and retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::JobId;
use crate::events::{event_time_of, Event};
use crate::template::{EventContext, State};

/// A job a trigger starts.
#[derive(Debug, Clone)]
pub struct NewEventJob {
    pub id: JobId,
    pub action: String,
    pub trigger: String,
    pub max_attempts: u32,
    /// The span that queued it (the intake's), which its attempts continue.
    pub traceparent: Option<crate::trace::TraceParent>,
}

/// What a delivery came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub event_id: Uuid,
    /// The triggers it matched and the jobs they started (for a redelivery: the
    /// first delivery's).
    pub triggers: Vec<String>,
    pub job_ids: Vec<JobId>,
    /// A redelivery of an event already recorded: nothing new was stored.
    pub duplicate: bool,
}

/// One delivery to record: the event, the document it names (if any) and the jobs
/// its matching triggers start.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Event,
    pub document: Option<(String, String)>,
    pub jobs: Vec<NewEventJob>,
}

impl Delivery {
    /// The triggers that matched, each once, in the order they matched.
    fn triggers(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for job in &self.jobs {
            if !names.contains(&job.trigger) {
                names.push(job.trigger.clone());
            }
        }
        names
    }
}

/// Records deliveries and starts their jobs, in one statement (so all commit, or
/// none: group commit across deliveries), and returns what each came to, in order.
/// With `notify`, the statement also notifies workers if it started a job (saves a
/// round trip when the queue was quiet; otherwise the caller's notifier sends one
/// notification for many deliveries, since Postgres serialises commits that notify).
/// A redelivery (the same subscription, event time, object and event type, stored
/// before or earlier in the batch) stores nothing and gets the first delivery's
/// record; two identical deliveries at once are serialized by the identity's unique
/// index, the second waiting for the first to commit.
pub async fn record_many(
    conn: &mut PgConnection,
    deliveries: &[Delivery],
    notify: bool,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let ids: Vec<Uuid> = deliveries.iter().map(|_| Uuid::now_v7()).collect();
    let positions: Vec<i32> = (0..deliveries.len() as i32).collect();
    let events: Vec<&Event> = deliveries.iter().map(|d| &d.event).collect();
    let matched: Vec<Vec<String>> = deliveries.iter().map(Delivery::triggers).collect();
    let documents: Vec<(&str, &str)> =
        deliveries.iter().map(|d| d.document.as_ref().map_or(("", ""), |(id, v)| (id.as_str(), v.as_str()))).collect();
    let jobs: Vec<(Uuid, &NewEventJob, (&str, &str))> = deliveries
        .iter()
        .zip(&ids)
        .zip(&documents)
        .flat_map(|((d, id), document)| d.jobs.iter().map(move |job| (*id, job, *document)))
        .collect();
    // Comma-separated lists ($11, $12): trigger names are ASCII letters, digits, '_',
    // '-' and '.' (the catalog checks), and uuids hold no comma.
    let job_lists: Vec<String> =
        deliveries.iter().map(|d| d.jobs.iter().map(|j| j.id.0.to_string()).collect::<Vec<_>>().join(",")).collect();
    let row = sqlx::query_file!(
        "src/db/sql/events/record_many.sql",
        &positions,
        &ids,
        &events.iter().map(|e| e.subscription_id.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| e.epoch_second).collect::<Vec<_>>(),
        &events.iter().map(|e| e.nano as i32).collect::<Vec<_>>(),
        &events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| e.obj_code.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| e.obj_id.as_str()).collect::<Vec<_>>() as &[&str],
        &events.iter().map(|e| serde_json::Value::Object(e.new_state.clone())).collect::<Vec<_>>(),
        &events.iter().map(|e| serde_json::Value::Object(e.old_state.clone())).collect::<Vec<_>>(),
        &matched.iter().map(|names| names.join(",")).collect::<Vec<_>>(),
        &job_lists,
        &jobs.iter().map(|j| j.0).collect::<Vec<_>>(),
        &jobs.iter().map(|j| j.1.id.0).collect::<Vec<_>>(),
        &jobs.iter().map(|j| j.1.action.as_str()).collect::<Vec<_>>() as &[&str],
        &jobs.iter().map(|j| j.1.trigger.as_str()).collect::<Vec<_>>() as &[&str],
        &jobs.iter().map(|j| j.1.max_attempts as i32).collect::<Vec<_>>(),
        &jobs.iter().map(|j| j.1.traceparent.map(|t| t.to_string())).collect::<Vec<_>>() as &[Option<String>],
        &jobs.iter().map(|j| j.2 .0).collect::<Vec<_>>() as &[&str],
        &jobs.iter().map(|j| j.2 .1).collect::<Vec<_>>() as &[&str],
        crate::JOBS_CHANNEL,
        notify,
    )
    .fetch_one(&mut *conn)
    .await?;
    let inserted: std::collections::HashSet<Uuid> = row.inserted.into_iter().collect();
    let mut recorded = Vec::with_capacity(deliveries.len());
    for ((delivery, id), triggers) in deliveries.iter().zip(ids).zip(matched) {
        recorded.push(if inserted.contains(&id) {
            Recorded { event_id: id, triggers, job_ids: delivery.jobs.iter().map(|j| j.id).collect(), duplicate: false }
        } else {
            first_delivery(conn, &delivery.event).await?
        });
    }
    Ok(recorded)
}

/// What the first delivery of `event`'s identity recorded (a redelivery's answer).
async fn first_delivery(conn: &mut PgConnection, event: &Event) -> Result<Recorded, sqlx::Error> {
    let first = sqlx::query!(
        r#"select id, triggers, job_ids as "job_ids: Vec<JobId>" from workfront_events
           where subscription_id = $1 and event_second = $2 and event_nano = $3 and obj_code = $4
             and obj_id = $5 and event_type = $6"#,
        event.subscription_id,
        event.epoch_second,
        event.nano as i32,
        event.obj_code,
        event.obj_id,
        event.event_type.as_str(),
    )
    .fetch_one(conn)
    .await?;
    Ok(Recorded { event_id: first.id, triggers: first.triggers, job_ids: first.job_ids, duplicate: true })
}

/// A recorded delivery, as operators see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WorkfrontEvent)]
pub struct EventRow {
    pub id: Uuid,
    pub subscription_id: String,
    pub event_type: String,
    pub obj_code: String,
    #[serde(rename = "objID")]
    pub obj_id: String,
    /// RFC 3339, to the millisecond (nanoseconds when finer digits are set).
    pub event_time: String,
    pub received_at: DateTime<Utc>,
    pub triggers: Vec<String>,
    pub job_ids: Vec<JobId>,
}

/// One recorded delivery, or `None` (pruned, or never).
pub async fn get(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<EventRow>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id, subscription_id, event_second, event_nano, event_type, obj_code, obj_id, received_at,
                  triggers, job_ids as "job_ids: Vec<JobId>"
           from workfront_events where id = $1"#,
        id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| EventRow {
        id: r.id,
        subscription_id: r.subscription_id,
        event_type: r.event_type,
        obj_code: r.obj_code,
        obj_id: r.obj_id,
        event_time: crate::events::rfc3339(event_time_of(r.event_second, r.event_nano as u32)),
        received_at: r.received_at,
        triggers: r.triggers,
        job_ids: r.job_ids,
    }))
}

/// What a job's templates read about the event that started it or the chain it
/// follows (its own, else its parent's, and so on up): `None` for a menu click's
/// chain, or once the event has been pruned.
pub async fn context_of(executor: impl PgExecutor<'_>, job: JobId) -> Result<Option<EventContext>, sqlx::Error> {
    let row = sqlx::query!(
        r#"with recursive chain as (
               select id, parent_id, trigger, event_id, 0 as depth from jobs where id = $1
               union all
               select j.id, j.parent_id, j.trigger, j.event_id, c.depth + 1
               from jobs j join chain c on j.id = c.parent_id
               where c.event_id is null and c.depth < 100
           )
           select c.trigger as "trigger!", e.subscription_id, e.event_second, e.event_nano, e.event_type,
                  e.obj_code, e.obj_id, e.new_state, e.old_state
           from chain c join workfront_events e on e.id = c.event_id
           limit 1"#,
        job.0,
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| EventContext {
        trigger: r.trigger,
        event_type: r.event_type,
        obj_code: r.obj_code,
        obj_id: r.obj_id,
        subscription_id: r.subscription_id,
        event_time: event_time_of(r.event_second, r.event_nano as u32),
        new_state: State::Json(object(r.new_state)),
        old_state: State::Json(object(r.old_state)),
    }))
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Deletes up to `batch` deliveries of the default partition received more than `age`
/// ago (events whose time no day partition covers; the day partitions are dropped
/// whole, [`super::partitions`]). Their jobs stay (and show the event as pruned).
pub async fn prune(executor: impl PgExecutor<'_>, age: Duration, batch: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"delete from workfront_events_default where id in (
               select id from workfront_events_default
               where received_at < now() - make_interval(secs => $1)
               order by received_at
               limit $2
               for update skip locked
           )"#,
        age.as_secs_f64(),
        batch,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Deliveries received in one minute.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventMinute {
    pub minute: DateTime<Utc>,
    pub received: i64,
}

/// Deliveries received per minute over the last hour, minutes without any left out
/// (the dashboard's overview; a range scan of the `received_at` index).
pub async fn per_minute_last_hour(executor: impl PgExecutor<'_>) -> Result<Vec<EventMinute>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select date_trunc('minute', received_at) as "minute!", count(*) as "count!"
           from workfront_events
           where received_at >= date_trunc('minute', now()) - interval '59 minutes'
           group by 1 order by 1"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| EventMinute { minute: r.minute, received: r.count }).collect())
}
