-- `docket_waiting_actions` as the migrated database has it today. Created by
-- 20261201000007_per_action_scans.sql. A change to it is a new migration carrying the
-- new text, and the same text here (README.md).

-- The actions that have waiting jobs, found by skipping through jobs_due_idx (one
-- index probe per action, whatever the backlog).
create or replace function docket_waiting_actions()
returns setof text
language sql stable
as $$
    with recursive a(action) as (
        select min(action) from jobs where state in ('queued', 'retrying')
        union all
        select (select min(j.action) from jobs j where j.state in ('queued', 'retrying') and j.action > a.action)
        from a where a.action is not null
    )
    select action from a where action is not null
$$;
