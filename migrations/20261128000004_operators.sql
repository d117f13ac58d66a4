-- What operators need: live workers, cancellation of running jobs, an audit trail.

-- One row per running worker process, kept fresh by its heartbeat.
create table workers (
    id            text        primary key,   -- the same id as job_attempts.worker_id
    host          text        not null,
    pid           integer     not null,
    version       text        not null,
    actions       text[]      not null,
    concurrency   integer     not null,
    started_at    timestamptz not null default now(),
    heartbeat_at  timestamptz not null default now()
);

-- An operator asked a running job to stop; its worker aborts the action and records
-- the job `cancelled`.
alter table jobs add column cancel_requested_at timestamptz;

-- Every operator action: who (the token's label), when, what, on which jobs.
create table operator_actions (
    id        bigint generated always as identity primary key,
    at        timestamptz not null default now(),
    actor     text        not null,
    action    text        not null,   -- 'retry', 'cancel', 'retry_failed'
    job_ids   uuid[]      not null,
    detail    text
);
create index operator_actions_at_idx on operator_actions (at desc);

-- Retention and the per-minute throughput figures read finished jobs by time. (Only
-- finished rows get an entry, once, when they finish.)
create index jobs_finished_idx on jobs (finished_at) where finished_at is not null;

-- An attempt stopped because an operator cancelled its job.
alter type attempt_outcome add value 'cancelled';

-- Completion may now also end a job `cancelled` (an operator stopped it while running).
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
