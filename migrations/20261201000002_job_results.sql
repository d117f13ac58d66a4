-- What a target said, for actions that ask for it (`result = "/json/pointer"` in the
-- catalog): the value found in a successful response's JSON body, or null. Never the
-- whole body.
alter table jobs add column result jsonb;

-- Completion carries the results: one more array, as JSON text per job (null where
-- the attempt captured nothing, which keeps an earlier result). It also honours a
-- pending cancel request (see the previous migration): an attempt bound for
-- `retrying` while an operator asked the job to stop ends it `cancelled`; final
-- outcomes stand.
drop function docket_complete(text, uuid[], integer[], text[], float8[], text[], text[]);

create function docket_complete(
    p_worker text,
    p_ids uuid[],
    p_attempts integer[],
    p_states text[],
    p_delay_seconds float8[],
    p_outcomes text[],
    p_errors text[],
    p_results text[]
)
returns table (id uuid)
language sql
set enable_bitmapscan = off
set enable_seqscan = off
as $$
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
        -- the input: quadratic in the batch (65,280 rows filtered for 256).
        where j.id = i.id and j.lease_owner = p_worker and j.attempts = i.attempt
        -- The outcome and error travel with the row, so that recording the attempt
        -- joins only the updated rows.
        returning j.id, j.attempts, i.outcome, i.error
    ), recorded as (
        update job_attempts a
        set finished_at = now(), outcome = u.outcome::attempt_outcome, error = u.error
        from updated u
        where a.job_id = u.id and a.attempt = u.attempts
    )
    select u.id from updated u
$$;
