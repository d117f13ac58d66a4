-- Records a Workfront event delivery and starts its jobs in one statement: both
-- commit or neither. `notified` is an uncorrelated subquery: evaluated once, and only
-- if asked ($18) and a job was inserted (the notification is delivered at commit).
with event as (
    insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code,
                                  obj_id, new_state, old_state, triggers, job_ids)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    on conflict on constraint workfront_events_identity do nothing
    returning id
), started as (
    insert into jobs (id, action, document_id, document_version_id, max_attempts, dedupe, trigger, event_id,
                      traceparent)
    select j.id, j.action, $12, $13, j.budget, false, j.trigger, (select id from event), j.traceparent
    from unnest($11::uuid[], $14::text[], $15::text[], $16::int4[], $19::text[])
        as j(id, action, trigger, budget, traceparent)
    where exists (select 1 from event)
    returning 1
), notified as (
    select 1 from (select pg_notify($17, '')) as sent where $18 and exists (select 1 from started)
)
select (select id from event) as "inserted: Uuid", (select count(*) from notified) as "notified!"
