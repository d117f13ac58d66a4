-- The two hot statements of the worker, claim and complete, as functions, so that
-- their plans cannot flip. Right after a burst of inserts (before autovacuum has
-- analysed the table) the planner believes the claim index holds a handful of rows
-- and picks a bitmap scan plus a sort of every due job: 120 ms per claim of 256 with
-- 100k queued jobs instead of 5 ms; and it completes a batch by scanning all running
-- jobs in a nested loop (50 ms instead of 10). With bitmap and sequential scans off
-- for these functions only, the claim walks the claim index in (run_at, id) order and
-- stops after `p_limit` rows, and completion looks each job up by primary key.
create function docket_claim(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns table (
    id uuid,
    action text,
    document_id text,
    document_version_id text,
    requested_by text,
    attempts integer,
    max_attempts integer
)
language sql
set enable_bitmapscan = off
set enable_seqscan = off
as $$
    with due as (
        select j.id from jobs j
        where j.state in ('queued', 'retrying') and j.run_at <= now() and j.action = any (p_actions)
        order by j.run_at, j.id
        limit p_limit
        for update skip locked
    ), claimed as (
        update jobs j
        set state = 'running', attempts = j.attempts + 1, lease_owner = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        from due
        where j.id = due.id
        returning j.id, j.action, j.document_id, j.document_version_id, j.requested_by,
                  j.attempts, j.max_attempts
    ), started as (
        insert into job_attempts (job_id, attempt, worker_id)
        select c.id, c.attempts, p_worker from claimed c
    )
    select c.id, c.action, c.document_id, c.document_version_id, c.requested_by, c.attempts, c.max_attempts
    from claimed c
$$;

-- Ends attempts in one statement, fenced on the lease: a row changes only while the
-- job is `running` under `p_worker` in the same attempt. Returns the ids applied.
create function docket_complete(
    p_worker text,
    p_ids uuid[],
    p_attempts integer[],
    p_states text[],
    p_delay_seconds float8[],
    p_outcomes text[],
    p_errors text[]
)
returns table (id uuid)
language sql
set enable_bitmapscan = off
set enable_seqscan = off
as $$
    with input as (
        select * from unnest(p_ids, p_attempts, p_states, p_delay_seconds, p_outcomes, p_errors)
            as t(id, attempt, state, delay_seconds, outcome, error)
    ), updated as (
        update jobs j
        set state = i.state::job_state,
            run_at = case when i.state = 'retrying'
                          then now() + make_interval(secs => i.delay_seconds) else j.run_at end,
            last_error = coalesce(i.error, j.last_error),
            lease_owner = null, lease_expires_at = null,
            finished_at = case when i.state in ('succeeded', 'failed', 'cancelled') then now() end,
            cancel_requested_at = null,
            updated_at = now()
        from input i
        where j.id = i.id and j.state = 'running' and j.lease_owner = p_worker and j.attempts = i.attempt
        returning j.id, j.attempts
    ), recorded as (
        update job_attempts a
        set finished_at = now(), outcome = i.outcome::attempt_outcome, error = i.error
        from updated u join input i on i.id = u.id
        where a.job_id = u.id and a.attempt = u.attempts
    )
    select u.id from updated u
$$;
