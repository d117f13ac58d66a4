-- jobs::release: $1 worker, $2 job ids, $3 their attempts, $4 reason, $5..$8 the
-- follow-up rules (parents, states, actions, budgets), $9 whether each attempt
-- started. A started attempt is recorded `interrupted` and the job retries at once;
-- one that never started (it waited in the worker's local queue) is undone: its
-- attempt row goes, the count goes back and the job keeps its place in the queue.
with input as (
    select * from unnest($2::uuid[], $3::int4[], $9::bool[]) as t(id, attempt, started)
), released as (
    update jobs j
    set state = case when j.cancel_requested_at is not null then 'cancelled'::job_state
                     when not i.started and j.attempts = 1 then 'queued'::job_state
                     else 'retrying'::job_state end,
        attempts = case when i.started or j.cancel_requested_at is not null then j.attempts
                        else j.attempts - 1 end,
        run_at = case when i.started then now() else j.run_at end,
        last_error = case when j.cancel_requested_at is not null
                          then concat_ws('; ', 'cancelled by an operator', $4::text)
                          when i.started then $4 else j.last_error end,
        finished_at = case when j.cancel_requested_at is not null then now() end,
        lease_owner = null, lease_expires_at = null, cancel_requested_at = null, updated_at = now()
    from input i
    -- `lease_owner` is set exactly while running (see docket_complete).
    where j.id = i.id and j.lease_owner = $1 and j.attempts = i.attempt
    returning j.id, i.attempt, j.state, (i.started or j.state = 'cancelled') as kept
), recorded as (
    update job_attempts a set finished_at = now(), outcome = 'interrupted', error = $4
    from released r where a.job_id = r.id and a.attempt = r.attempt and r.kept
), undone as (
    delete from job_attempts a
    using released r where a.job_id = r.id and a.attempt = r.attempt and not r.kept
), followed as (
    select docket_queue_follow_ups(ended.ids, ended.states, $5, $6, $7, $8)
    from (select array_agg(r.id order by r.id) as ids, array_agg(r.state::text order by r.id) as states
          from released r where r.state = 'cancelled') as ended
)
select id as "id!: JobId" from released cross join followed
