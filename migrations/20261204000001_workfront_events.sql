-- Workfront event deliveries: one row per distinct delivery (a redelivery of the
-- same event finds this row and gets the same answer), with the jobs it started.
-- Written in the same statement as those jobs. Pruned by the workers' retention
-- (`DOCKET_RETENTION_EVENTS`).
create table workfront_events (
    id              uuid        primary key,          -- UUIDv7: time-ordered
    subscription_id text        not null,
    -- `eventTime` as Workfront sends it, to the nanosecond: part of the identity.
    event_second    bigint      not null,
    event_nano      integer     not null check (event_nano between 0 and 999999999),
    event_type      text        not null check (event_type in ('CREATE', 'UPDATE', 'DELETE')),
    obj_code        text        not null,
    obj_id          text        not null,
    new_state       jsonb       not null,
    old_state       jsonb       not null,
    -- The triggers it matched and the jobs it started (empty: it matched none).
    triggers        text[]      not null,
    job_ids         uuid[]      not null,
    received_at     timestamptz not null default now(),
    -- Workfront may deliver an event more than once: this is its identity.
    constraint workfront_events_identity
        unique (subscription_id, event_second, event_nano, obj_code, obj_id, event_type)
);

-- Retention deletes the oldest deliveries first.
create index workfront_events_received_idx on workfront_events (received_at);

-- A job a trigger started names the trigger and the delivery. Both null for a menu
-- click (and for follow-ups, which read their chain's event through parent_id).
alter table jobs add column trigger text, add column event_id uuid;

-- The jobs list filters by trigger. Partial: a menu click's job (trigger null) gets
-- no entry, so this costs nothing on jobs no trigger started.
create index jobs_trigger_idx on jobs (trigger, id) where trigger is not null;
