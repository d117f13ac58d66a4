-- Records Workfront event deliveries and starts their jobs in one statement: all
-- commit or none (group commit across deliveries). $1..$12: one element per delivery
-- (its position, id, identity, states, and the triggers it matched and the ids of
-- their jobs, each a comma-separated list: trigger names and uuids hold no comma);
-- $13..$20: one per job (the id of its delivery, its own id, action, trigger, attempt
-- budget, trace context, document). Sent ready-made, so the statement groups and
-- joins nothing (for a batch of 8 deliveries, EXPLAIN ANALYZE had spent 0.13 ms
-- building the grouping's sorts and hash tables). A delivery whose identity is already
-- stored (or appears earlier in the same batch) inserts nothing: its jobs are not
-- started, and it is absent from `inserted`. `notified` is evaluated once, only if
-- asked ($22) and a job was inserted (the notification is delivered at commit).
with event as (
    insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code,
                                  obj_id, new_state, old_state, triggers, job_ids)
    select d.id, d.subscription_id, d.event_second, d.event_nano, d.event_type, d.obj_code, d.obj_id,
           d.new_state, d.old_state, string_to_array(d.triggers, ','), string_to_array(d.job_ids, ',')::uuid[]
    from unnest($1::int4[], $2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::text[], $7::text[], $8::text[],
                $9::jsonb[], $10::jsonb[], $11::text[], $12::text[])
        as d(n, id, subscription_id, event_second, event_nano, event_type, obj_code, obj_id, new_state, old_state,
             triggers, job_ids)
    order by d.n
    on conflict on constraint workfront_events_identity do nothing
    returning id
), started as (
    insert into jobs (id, action, document_id, document_version_id, max_attempts, dedupe, trigger, event_id,
                      traceparent)
    select j.id, j.action, j.document_id, j.version_id, j.budget, false, j.trigger, j.event_id, j.traceparent
    from unnest($13::uuid[], $14::uuid[], $15::text[], $16::text[], $17::int4[], $18::text[], $19::text[],
                $20::text[])
        as j(event_id, id, action, trigger, budget, traceparent, document_id, version_id)
    where j.event_id in (select id from event)
    returning 1
), notified as (
    select 1 from (select pg_notify($21, '')) as sent where $22 and exists (select 1 from started)
)
select array(select id from event) as "inserted!: Vec<Uuid>", (select count(*) from notified) as "notified!"
