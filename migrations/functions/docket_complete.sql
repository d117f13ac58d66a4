-- `docket_complete` as the migrated database has it today. Created by
-- 20261128000003_claim_and_complete_functions.sql, replaced by
-- 20261201000004_follow_ups.sql and 20261201000006_flow_control.sql; `jit = off` from
-- 20261201000007_per_action_scans.sql; PL/pgSQL from
-- 20261204000004_claim_and_complete_plans.sql (its plan kept for the session). A change to it is a new migration carrying the
-- new text, and the same text here (README.md).

-- Completion stores what the target said (`result`: JSON text per job, null where the
-- attempt captured nothing, which keeps an earlier result), honours a pending cancel
-- request (see the cancel-flag migration: an attempt bound for `retrying` while an
-- operator asked the job to stop ends it `cancelled`; final outcomes stand), and
-- queues the follow-ups of the jobs it ends, all in one statement.
--
-- Completion as before, and a throttled attempt (outcome 'throttled', bound for
-- 'retrying') gives the attempt back: `max_attempts` grows by one (the attempt
-- numbers keep counting, so the history stays) and `snoozes` counts it.
--
-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
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
