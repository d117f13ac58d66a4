-- One row per attempt, written when the attempt starts and completed when it ends.

create type attempt_outcome as enum (
    'succeeded',        -- the action finished well
    'retryable_error',  -- failed in a way worth retrying (5xx, 408, 429, connection)
    'permanent_error',  -- failed in a way not worth retrying (other 4xx)
    'timed_out',        -- ran longer than the action's timeout
    'panicked',         -- the action's code panicked
    'lease_expired',    -- the worker vanished or stalled; another worker rescued the job
    'interrupted',      -- the worker stopped it (shutdown deadline, lost lease) and released the job
    'cancelled'         -- an operator cancelled the job while this attempt ran
);

create table job_attempts (
    job_id      uuid            not null references jobs (id) on delete cascade,
    attempt     integer         not null,
    worker_id   text            not null,
    started_at  timestamptz     not null default now(),
    finished_at timestamptz,
    outcome     attempt_outcome,           -- null while the attempt runs
    error       text,
    primary key (job_id, attempt),
    constraint job_attempts_outcome_when_finished check ((outcome is null) = (finished_at is null))
);
