-- `docket_claim` as the migrated database has it today. Created by
-- 20261128000003_claim_and_complete_functions.sql, replaced by
-- 20261201000004_follow_ups.sql and 20261201000006_flow_control.sql; `jit = off` from
-- 20261201000007_per_action_scans.sql; PL/pgSQL from
-- 20261204000004_claim_and_complete_plans.sql (its plan kept for the session). A change to it is a new migration carrying the
-- new text, and the same text here (README.md).

-- The plain claim (actions without limits or a circuit): skips actions that an
-- operator paused or whose target asked to wait. The list of open actions is an
-- uncorrelated subquery: computed once per claim, not per row.
--
-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
create or replace function docket_claim(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language plpgsql volatile
set jit = off
as $$
begin
    return query
    select * from docket_start_jobs(
        p_worker,
        array(select a from unnest(p_actions) as a
              where not exists (select 1 from action_controls c
                                where c.action = a
                                  and (c.paused_until > now() or c.backoff_until > now() or c.circuit <> 'closed'))),
        p_limit,
        p_lease_seconds);
end
$$;
