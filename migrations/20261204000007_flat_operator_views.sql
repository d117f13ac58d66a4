-- The operators' jobs list (`GET /ops/jobs`, the dashboard's jobs page) filtered by one
-- state, action or requester read its rows by walking the primary key newest first and
-- filtering: fine for what is frequent and new, a walk through the whole table for
-- what is rare, or what lies behind the waiting backlog (at 10M rows, from 0.4 s for a
-- frequent requester to seconds for a rare action or state; `docs/ops-views-at-scale.md`).
--
-- What each index costs: every state change is a non-HOT update (`state` is in the
-- predicates of partial indexes), so an index gets a new entry for every version of
-- a row that its predicate admits. A full index costs three entries per job (insert,
-- claim, completion). These leave out running rows (at most the workers' total
-- concurrency; the list reads them through `jobs_running_idx` in a branch of its
-- own), so a claim writes none of them: the two keyed by action and requester cost an
-- entry at insert and one at the end, the one by state only one at the end (and one
-- per retry).

-- `state=succeeded|failed|cancelled|retrying` (and each with a time range): the newest
-- rows are the waiting backlog (1M jobs in `big`), walked before the first finished
-- one; `cancelled` and `retrying` are rare and were a walk through everything. Queued
-- jobs are left out (they are the newest rows), so the intake writes no entry here.
-- `created_at` is included so that a state with a time range is read from the index
-- alone: without it the planner priced the heap visits above a walk of the primary
-- key from the range's start (it cannot know that the newest rows are all waiting),
-- and `state=failed&createdSince=3 days ago` walked the 1M waiting jobs (0.65 s).
create index jobs_state_idx on jobs (state, id) include (created_at) where state not in ('queued', 'running');

-- `action=…`: a rare action's jobs (1 in 50,000) or one without jobs was a walk
-- through the whole table.
create index jobs_action_idx on jobs (action, id) where state <> 'running';

-- `requestedBy=…`: a user's jobs are 1 in thousands; a rare user or nobody was a walk
-- through the whole table.
create index jobs_requested_by_idx on jobs (requested_by, id) where state <> 'running';
