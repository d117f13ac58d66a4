-- What operators need: live workers and an audit trail.

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

