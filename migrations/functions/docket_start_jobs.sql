-- `docket_start_jobs` as the migrated database has it today. Created by
-- 20261201000006_flow_control.sql, replaced by 20261201000007_per_action_scans.sql and
-- 20261204000003_trace_context.sql; PL/pgSQL with nested-loop joins only from
-- 20261204000004_claim_and_complete_plans.sql. A change to it is a new migration
-- carrying the new text, and the same text here (README.md).

-- The claim itself, for any list of actions, without looking at flow control: what
-- `docket_claim` did before (it pins its plan to the claim index).
--
-- One ordered, skip-locked scan per action (each exactly the old claim for one
-- action), merged by run_at. A worker serving k actions with backlogs locks up to k
-- batches and starts the oldest one; the rest are unlocked at commit.
--
-- PL/pgSQL, not SQL: PostgreSQL before 18 plans a SQL function's body at every call
-- (0.3 ms of a claim's 0.6 ms when nothing is due), while PL/pgSQL keeps its plans
-- for the session. Nested loops only: planned without `p_limit`'s value, the update
-- merge-joined the due jobs with the whole primary key from its first entry, so a
-- claim read every job older than the batch (uuid v7 ids follow time) and grew from
-- 9 to 45 ms per 64 jobs as a 200,000-job backlog drained.
create or replace function docket_start_jobs(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language plpgsql volatile
set enable_bitmapscan = off
set enable_hashjoin = off
set enable_mergejoin = off
set enable_seqscan = off
set jit = off
as $$
begin
    return query
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
    from claimed c;
end
$$;
