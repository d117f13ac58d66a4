-- Duplicate triggers (double clicks, workflows firing twice): while a job for the same
-- action, document and version is waiting or running, another trigger of an action
-- with `dedupe` on (the default) creates no second job. Race-free: the partial unique
-- index decides, and the insert skips conflicting rows (`on conflict do nothing`).
alter table jobs add column dedupe boolean not null default false;

create unique index jobs_dedupe_idx on jobs (action, document_id, document_version_id)
    where dedupe and state in ('queued', 'retrying', 'running');
