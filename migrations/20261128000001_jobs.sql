-- Jobs: one row per Workfront custom-action request. Operators query this table
-- directly; its columns and state names are a documented contract.

create type job_state as enum (
    'queued',     -- waiting for its first attempt
    'running',    -- a worker holds the lease and is running it
    'retrying',   -- an attempt failed (or was interrupted); waiting for run_at
    'succeeded',  -- finished well
    'failed',     -- permanent error, or attempts exhausted
    'cancelled'   -- stopped by an operator
);

create table jobs (
    id                  uuid        primary key,          -- UUIDv7: time-ordered
    action              text        not null,
    document_id         text        not null,
    document_version_id text        not null,
    requested_by        text,                             -- Workfront `username` header
    state               job_state   not null default 'queued',
    attempts            integer     not null default 0,   -- attempts started so far
    max_attempts        integer     not null check (max_attempts >= 1),
    run_at              timestamptz not null default now(),
    last_error          text,
    lease_owner         text,                             -- worker id while running
    lease_expires_at    timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    finished_at         timestamptz,
    cancel_requested_at timestamptz,                      -- an operator asked the running job to stop
    constraint jobs_lease_when_running check (
        (state = 'running') = (lease_owner is not null and lease_expires_at is not null)
    ),
    constraint jobs_finished_when_final check (
        (state in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)
    )
) with (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 1);

-- The claim index holds only the rows a worker may claim, so it stays small however
-- many finished jobs the table keeps.
create index jobs_due_idx on jobs (run_at, id) where state in ('queued', 'retrying');

-- The rescuer looks only at running rows whose lease may have expired.
create index jobs_running_lease_idx on jobs (lease_expires_at) where state = 'running';

-- Operators: "what happened to this document?". (Newest-first listings use the
-- primary key: UUIDv7 ids sort by creation time. Every index here is written on each
-- state change, so there are no more than these: an (action, created_at) index cost
-- a fifth of the drain rate.)
create index jobs_document_idx on jobs (document_id);
