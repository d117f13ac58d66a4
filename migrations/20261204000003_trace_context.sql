-- W3C trace context (issue #25, traces): the `traceparent` of the span that queued a
-- job (the api's intake span; for a follow-up, its parent's), so the worker's attempts
-- and their calls to the target continue the trigger's trace.
--
-- Nullable: rows from before this migration have none (their attempts start a new
-- trace). The check is NOT VALID because every existing row is null; new rows are
-- checked, and adding it scans nothing under the table's exclusive lock.
alter table jobs add column traceparent text,
    add constraint jobs_traceparent_shape
        check (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$') not valid;

-- The claim returns it.
alter type docket_claimed_job add attribute traceparent text;

create or replace function docket_start_jobs(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language sql
set enable_bitmapscan = off
set enable_seqscan = off
set jit = off
as $$
    with due as (
        select d.id from unnest(p_actions) as a(action)
        cross join lateral (
            select j.id, j.run_at from jobs j
            where j.state in ('queued', 'retrying') and j.action = a.action and j.run_at <= now()
            order by j.run_at, j.id
            limit p_limit
            for update skip locked
        ) d
        order by d.run_at, d.id
        limit p_limit
    ), claimed as (
        update jobs j
        set state = 'running', attempts = j.attempts + 1, lease_owner = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        from due
        where j.id = due.id
        returning j.id, j.action, j.document_id, j.document_version_id, j.requested_by,
                  j.attempts, j.max_attempts, j.parent_id, j.snoozes, j.traceparent
    ), started as (
        insert into job_attempts (job_id, attempt, worker_id)
        select c.id, c.attempts, p_worker from claimed c
    )
    select c.id, c.action, c.document_id, c.document_version_id, c.requested_by, c.attempts, c.max_attempts,
           c.parent_id, c.snoozes, c.traceparent
    from claimed c
$$;

-- Follow-ups keep their parent's trace context.
create or replace function docket_queue_follow_ups(
    p_ids uuid[],
    p_states text[],
    p_follow_parents text[],
    p_follow_states text[],
    p_follow_actions text[],
    p_follow_max_attempts integer[]
)
returns bigint
language plpgsql volatile
set jit = off
as $$
declare
    queued bigint;
begin
    if coalesce(cardinality(p_follow_parents), 0) = 0 or coalesce(cardinality(p_ids), 0) = 0 then
        return 0;
    end if;
    insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts,
                      parent_id, parent_attempts, traceparent)
    select docket_uuid_v7(), r.run, p.document_id, p.document_version_id, p.requested_by, r.max_attempts,
           p.id, p.attempts, p.traceparent
    from unnest(p_ids, p_states) as e(id, state)
    join jobs p on p.id = e.id
    join unnest(p_follow_parents, p_follow_states, p_follow_actions, p_follow_max_attempts)
        as r(parent, state, run, max_attempts)
        on r.parent = p.action and r.state = e.state
    on conflict do nothing;
    get diagnostics queued = row_count;
    if queued > 0 then
        perform pg_notify('docket_jobs', '');
    end if;
    return queued;
end
$$;
