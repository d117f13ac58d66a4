-- jobs::release: $1 worker, $2 job ids, $3 their attempts, $4 reason, $5..$8 the
-- follow-up rules (parents, states, actions, budgets).
with input as (
    select * from unnest($2::uuid[], $3::int4[]) as t(id, attempt)
), released as (
    update jobs j
    set state = case when j.cancel_requested_at is not null then 'cancelled'::job_state
                     else 'retrying'::job_state end,
        run_at = now(),
        last_error = case when j.cancel_requested_at is not null
                          then concat_ws('; ', 'cancelled by an operator', $4::text) else $4 end,
        finished_at = case when j.cancel_requested_at is not null then now() end,
        lease_owner = null, lease_expires_at = null, cancel_requested_at = null, updated_at = now()
    from input i
    -- `lease_owner` is set exactly while running (see docket_complete).
    where j.id = i.id and j.lease_owner = $1 and j.attempts = i.attempt
    returning j.id, j.attempts, j.state
), recorded as (
    update job_attempts a set finished_at = now(), outcome = 'interrupted', error = $4
    from released r where a.job_id = r.id and a.attempt = r.attempts
), followed as (
    select docket_queue_follow_ups(ended.ids, ended.states, $5, $6, $7, $8)
    from (select array_agg(r.id order by r.id) as ids, array_agg(r.state::text order by r.id) as states
          from released r where r.state = 'cancelled') as ended
)
select id as "id!: JobId" from released cross join followed
