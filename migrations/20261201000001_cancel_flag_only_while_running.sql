-- A cancel request is a message to the worker running a job; it means nothing once
-- the job has left `running`. Before this migration two paths could leave it behind:
-- the rescuer (a cancelled job whose worker died was run again, or ended `failed`
-- with the flag still set) and bulk retry (a retried job carrying a stale flag was
-- cancelled at its first lease renewal). Every statement that moves a job out of
-- `running` now honours the flag (a job that would run again ends `cancelled`
-- instead) and clears it, and the constraint below makes a stale flag impossible.

update jobs set cancel_requested_at = null where state <> 'running' and cancel_requested_at is not null;

alter table jobs add constraint jobs_cancel_request_only_while_running
    check (cancel_requested_at is null or state = 'running');

-- Completion: a job whose attempt ends while an operator's cancel request is pending
-- does not go back to the queue; it ends `cancelled`. (Final outcomes stand.)
create or replace function docket_complete(
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
            lease_owner = null, lease_expires_at = null,
            finished_at = case when i.state in ('succeeded', 'failed', 'cancelled')
                                    or j.cancel_requested_at is not null then now() end,
            cancel_requested_at = null,
            updated_at = now()
        from input i
        where j.id = i.id and j.state = 'running' and j.lease_owner = p_worker and j.attempts = i.attempt
        -- The outcome and error travel with the row, so that recording the attempt
        -- joins only the updated rows (joining `input` again was quadratic in the
        -- batch size).
        returning j.id, j.attempts, i.outcome, i.error
    ), recorded as (
        update job_attempts a
        set finished_at = now(), outcome = u.outcome::attempt_outcome, error = u.error
        from updated u
        where a.job_id = u.id and a.attempt = u.attempts
    )
    select u.id from updated u
$$;
