-- The claim and the completion keep their plans for the session, and the claim's
-- update finds each job by its key (issue #24, drain at the database's limit).
--
-- 1. PL/pgSQL instead of SQL. PostgreSQL before 18 plans a SQL function's body at
--    every call; PL/pgSQL prepares it once per session. Measured on the 2-core
--    machine with pgbench (prepared, one client): a claim that finds nothing due
--    0.61 -> 0.32 ms, a completion of nothing 0.45 -> 0.22 ms. A worker issues one of
--    each per batch, so this is paid thousands of times a second under load.
-- 2. Nested loops only in `docket_start_jobs`. Planned without `p_limit`'s value, the
--    update merge-joined the batch with the whole primary key from its first entry:
--    job ids are uuid v7, ordered by time, so each claim read every job older than
--    the batch (finished ones included). Claims of 64 from a 200,000-job backlog took
--    8.6, 26 and 45 ms as it drained (raw SQL: 3.6-4.9 ms); now 3.9-4.2 ms throughout.
--    Guarded by tests/tests/db_layer.rs
--    (a_claim_reads_the_primary_key_per_job_not_per_older_row).
--
-- Same arguments, same results, same locks; `docket_claim_group` calls
-- `docket_start_jobs` and gains the same.

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

create or replace function docket_claim(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language plpgsql volatile
set jit = off
as $$
begin
    return query
    select * from docket_start_jobs(
        p_worker,
        array(select a from unnest(p_actions) as a
              where not exists (select 1 from action_controls c
                                where c.action = a
                                  and (c.paused_until > now() or c.backoff_until > now() or c.circuit <> 'closed'))),
        p_limit,
        p_lease_seconds);
end
$$;

create or replace function docket_complete(
    p_worker text,
    p_ids uuid[],
    p_attempts integer[],
    p_states text[],
    p_delay_seconds float8[],
    p_outcomes text[],
    p_errors text[],
    p_results text[],
    p_follow_parents text[],
    p_follow_states text[],
    p_follow_actions text[],
    p_follow_max_attempts integer[]
)
returns table (id uuid)
language plpgsql volatile
set enable_bitmapscan = off
set enable_seqscan = off
set jit = off
as $$
#variable_conflict use_column
begin
    return query
    with input as (
        select * from unnest(p_ids, p_attempts, p_states, p_delay_seconds, p_outcomes, p_errors, p_results)
            as t(id, attempt, state, delay_seconds, outcome, error, result)
    ), updated as (
        -- `j.*` on the right-hand side is the row as locked by this update, so a
        -- cancel request committed a moment ago is seen here.
        update jobs j
        set state = case when i.state = 'retrying' and j.cancel_requested_at is not null
                         then 'cancelled'::job_state else i.state::job_state end,
            run_at = case when i.state = 'retrying' and j.cancel_requested_at is null
                          then now() + make_interval(secs => i.delay_seconds) else j.run_at end,
            last_error = case when i.state = 'retrying' and j.cancel_requested_at is not null
                              then concat_ws('; ', 'cancelled by an operator', i.error)
                              else coalesce(i.error, j.last_error) end,
            result = coalesce(i.result::jsonb, j.result),
            max_attempts = j.max_attempts + (i.outcome = 'throttled' and i.state = 'retrying')::integer,
            snoozes = j.snoozes + (i.outcome = 'throttled' and i.state = 'retrying')::integer,
            lease_owner = null, lease_expires_at = null,
            finished_at = case when i.state in ('succeeded', 'failed', 'cancelled')
                                    or j.cancel_requested_at is not null then now() end,
            cancel_requested_at = null,
            updated_at = now()
        from input i
        -- The fence: `lease_owner` is set exactly while the job is running (the
        -- check constraint jobs_lease_when_running), so it stands for
        -- `state = 'running'` here. Spelling that out would let the planner scan the
        -- small partial index of running rows as the outer side of a nested loop over
        -- the input: quadratic in the batch.
        where j.id = i.id and j.lease_owner = p_worker and j.attempts = i.attempt
        returning j.id, j.attempts, j.state, j.action, i.outcome, i.error
    ), recorded as (
        update job_attempts a
        set finished_at = now(), outcome = u.outcome::attempt_outcome, error = u.error
        from updated u
        where a.job_id = u.id and a.attempt = u.attempts
    ), followed as (
        select docket_queue_follow_ups(ended.ids, ended.states,
                                       p_follow_parents, p_follow_states, p_follow_actions, p_follow_max_attempts)
        from (select array_agg(u.id order by u.id) as ids, array_agg(u.state::text order by u.id) as states
              -- Only jobs of actions with follow-ups: the others cost nothing.
              from updated u where u.state in ('succeeded', 'failed', 'cancelled')
                               and u.action = any (p_follow_parents)) as ended
    )
    -- `followed` is read so that it runs, once.
    select u.id from updated u cross join followed;
end
$$;
