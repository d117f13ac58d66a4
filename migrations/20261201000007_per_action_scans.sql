-- No cliffs with a big table (5M finished jobs, 500k due jobs of one action, 1k of
-- another): every hot or periodic statement reads only the rows of the actions it
-- asks about, never the whole backlog.

-- Waiting jobs by action first. The claim of a worker that serves only `print` walked
-- every due `archive` row before it (jobs_due_idx was ordered by run_at alone): 157 ms
-- with 500k of them, now 0.2 ms. Every reader of due jobs names its actions.
drop index jobs_due_idx;
create index jobs_due_idx on jobs (action, run_at, id) where state in ('queued', 'retrying');

-- One ordered, skip-locked scan per action (each exactly the old claim for one
-- action), merged by run_at. A worker serving k actions with backlogs locks up to k
-- batches and starts the oldest one; the rest are unlocked at commit.
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
                  j.attempts, j.max_attempts, j.parent_id, j.snoozes
    ), started as (
        insert into job_attempts (job_id, attempt, worker_id)
        select c.id, c.attempts, p_worker from claimed c
    )
    select c.id, c.action, c.document_id, c.document_version_id, c.requested_by, c.attempts, c.max_attempts,
           c.parent_id, c.snoozes
    from claimed c
$$;

-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
alter function docket_claim(text, text[], bigint, float8) set jit = off;
alter function docket_claim_group(text, text, integer, float8) set jit = off;
alter function docket_complete(text, uuid[], integer[], text[], float8[], text[], text[], text[], text[], text[], text[], integer[])
    set jit = off;
alter function docket_flow_feedback(text[], text[], uuid[], text[], float8[], text[], integer[], float8[], float8[])
    set jit = off;
alter function docket_queue_follow_ups(uuid[], text[], text[], text[], text[], integer[]) set jit = off;

-- The actions that have waiting jobs, found by skipping through jobs_due_idx (one
-- index probe per action, whatever the backlog).
create function docket_waiting_actions()
returns setof text
language sql stable
as $$
    with recursive a(action) as (
        select min(action) from jobs where state in ('queued', 'retrying')
        union all
        select (select min(j.action) from jobs j where j.state in ('queued', 'retrying') and j.action > a.action)
        from a where a.action is not null
    )
    select action from a where action is not null
$$;

-- Bulk retry reads an action's failed jobs, oldest first, in batches.
create index jobs_failed_idx on jobs (action, id) where state = 'failed';

-- The ops list filtered by creation time walks the (time-ordered, UUIDv7) primary key
-- from the smallest id a job created then can have: its id is made (by the api, or by
-- `docket_uuid_v7()` for a follow-up) before the row's `created_at`, and the hour of
-- margin covers the clocks of api hosts that run behind the database's. No index on
-- `created_at` (or on `requested_by`, or on `action` over all rows): every state change
-- is a non-HOT update (`state` is in partial index predicates), so each index on
-- `jobs` gets a new entry per state change; dropping the `(action, created_at)` index
-- bought the drain 24 % (README).
create function docket_uuid_v7_floor(ts timestamptz) returns uuid
language sql immutable parallel safe
as $$
    select (lpad(to_hex(least(greatest(floor(extract(epoch from ts) * 1000), 0), 281474976710655)::bigint), 12, '0')
            || '00000000000000000000')::uuid
$$;

-- The audit trail of one job.
create index operator_actions_job_ids_idx on operator_actions using gin (job_ids);
