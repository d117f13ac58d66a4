-- Records Workfront event deliveries and starts their jobs in one statement: all
-- commit or none (group commit across deliveries). $1..$12: one element per delivery
-- (its position, id, identity, states, document); $13..$18: one per job (the position
-- of its delivery, id, action, trigger, attempt budget, trace context), in the order
-- the delivery's triggers matched; $21, $22: the triggers each delivery matched (the
-- position of its delivery, the name), each once. A delivery whose identity is already stored (or
-- appears earlier in the same batch) inserts nothing: its jobs are not started, and
-- it is absent from `inserted`. `notified` is evaluated once, only if asked ($20) and
-- a job was inserted (the notification is delivered at commit).
with jobs_in as (
    select * from unnest($13::int4[], $14::uuid[], $15::text[], $16::text[], $17::int4[], $18::text[])
        with ordinality as j(n, id, action, trigger, budget, traceparent, k)
), triggers_of as (
    select t.n, array_agg(t.name order by t.k) as triggers
    from unnest($21::int4[], $22::text[]) with ordinality as t(n, name, k)
    group by t.n
), jobs_of as (
    select j.n, array_agg(j.id order by j.k) as job_ids from jobs_in j group by j.n
), deliveries as (
    -- Grouped once, not looked up per delivery: a batch of 256 compared every delivery
    -- with every job and trigger of the batch.
    select d.*, coalesce(t.triggers, '{}') as triggers, coalesce(j.job_ids, '{}') as job_ids
    from unnest($1::int4[], $2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::text[], $7::text[], $8::text[],
                $9::jsonb[], $10::jsonb[], $11::text[], $12::text[])
        as d(n, id, subscription_id, event_second, event_nano, event_type, obj_code, obj_id, new_state, old_state,
             document_id, version_id)
    left join triggers_of t on t.n = d.n
    left join jobs_of j on j.n = d.n
), event as (
    insert into workfront_events (id, subscription_id, event_second, event_nano, event_type, obj_code,
                                  obj_id, new_state, old_state, triggers, job_ids)
    select id, subscription_id, event_second, event_nano, event_type, obj_code, obj_id, new_state, old_state,
           triggers, job_ids
    from deliveries order by n
    on conflict on constraint workfront_events_identity do nothing
    returning id
), started as (
    insert into jobs (id, action, document_id, document_version_id, max_attempts, dedupe, trigger, event_id,
                      traceparent)
    select j.id, j.action, d.document_id, d.version_id, j.budget, false, j.trigger, d.id, j.traceparent
    from jobs_in j join deliveries d on d.n = j.n
    where d.id in (select id from event)
    returning 1
), notified as (
    select 1 from (select pg_notify($19, '')) as sent where $20 and exists (select 1 from started)
)
select array(select id from event) as "inserted!: Vec<Uuid>", (select count(*) from notified) as "notified!"
