-- jobs::rescue_expired: $1 how many at most, $2..$5 the follow-up rules (parents,
-- states, actions, budgets).
with expired as (
    select id, lease_owner from jobs
    where state = 'running' and lease_expires_at < now()
    order by lease_expires_at
    limit $1
    for update skip locked
), rescued as (
    update jobs j
    set state = case when j.cancel_requested_at is not null then 'cancelled'::job_state
                     when j.attempts >= j.max_attempts then 'failed'::job_state
                     else 'retrying'::job_state end,
        run_at = now(),
        last_error = concat_ws('; ',
            case when j.cancel_requested_at is not null then 'cancelled by an operator' end,
            format('lease expired: worker %s stopped renewing it during attempt %s',
                   j.lease_owner, j.attempts)),
        finished_at = case when j.cancel_requested_at is not null or j.attempts >= j.max_attempts
                           then now() end,
        lease_owner = null, lease_expires_at = null, cancel_requested_at = null, updated_at = now()
    from expired e
    where j.id = e.id
    returning j.id, j.action, j.attempts, j.state, j.last_error, e.lease_owner
), recorded as (
    update job_attempts a set finished_at = now(), outcome = 'lease_expired', error = r.last_error
    from rescued r
    where a.job_id = r.id and a.attempt = r.attempts and a.finished_at is null
), followed as (
    select docket_queue_follow_ups(ended.ids, ended.states, $2, $3, $4, $5)
    from (select array_agg(r.id order by r.id) as ids, array_agg(r.state::text order by r.id) as states
          from rescued r where r.state in ('failed', 'cancelled')) as ended
)
-- The previous owner comes from the locked row, not from a join with
-- `recorded` (two CTE scans joined in a nested loop: quadratic).
select r.id as "id!: JobId", r.action as "action!", r.state as "state!: JobState",
       r.lease_owner as "worker_id?"
from rescued r cross join followed
