-- Lease renewals (every running job, every fifth of the lease) changed an indexed
-- column, `lease_expires_at`, so each one wrote a new entry into every index of the
-- row. The rescuer needs no index on the lease: running rows are few (at most the
-- workers' total concurrency), so it reads them through an index on a column a
-- renewal never changes and checks the lease on the row. Renewals can then be HOT
-- updates (no index writes) whenever the page has room. (Keyed on the id: an index
-- on `lease_owner` would hold the same key hundreds of times, and every claim would
-- rewrite its posting list: twice the WAL per job and a quarter of the drain rate.)
drop index jobs_running_lease_idx;
create index jobs_running_idx on jobs (id) where state = 'running';
