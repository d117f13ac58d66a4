-- `docket_queue_follow_ups` as the migrated database has it today. Created by
-- 20261201000004_follow_ups.sql; `jit = off` from 20261201000007_per_action_scans.sql;
-- the parent's trace context from 20261204000003_trace_context.sql.
-- A change to it is a new migration carrying the new text, and the same text here
-- (README.md).

-- Queues the follow-ups of jobs that just ended (their ids and final states), by the
-- rules the caller passes from its catalog: parent action, final state, follow-up
-- action, the follow-up's attempt budget. Notifies workers if it queued any; returns
-- how many. Called from inside the statement that ends the jobs, so both commit
-- together. (It reads the parents' rows as they were before that statement, which
-- is enough: only their state changes, and that comes as an argument.) A follow-up
-- keeps its parent's `traceparent`, so it stays in the trace of the trigger.
--
-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
create or replace function docket_queue_follow_ups(
    p_ids uuid[],
    p_states text[],
    p_follow_parents text[],
    p_follow_states text[],
    p_follow_actions text[],
    p_follow_max_attempts integer[]
)
returns bigint
language plpgsql volatile
set jit = off
as $$
declare
    queued bigint;
begin
    if coalesce(cardinality(p_follow_parents), 0) = 0 or coalesce(cardinality(p_ids), 0) = 0 then
        return 0;
    end if;
    insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts,
                      parent_id, parent_attempts, traceparent)
    select docket_uuid_v7(), r.run, p.document_id, p.document_version_id, p.requested_by, r.max_attempts,
           p.id, p.attempts, p.traceparent
    from unnest(p_ids, p_states) as e(id, state)
    join jobs p on p.id = e.id
    join unnest(p_follow_parents, p_follow_states, p_follow_actions, p_follow_max_attempts)
        as r(parent, state, run, max_attempts)
        on r.parent = p.action and r.state = e.state
    on conflict do nothing;
    get diagnostics queued = row_count;
    if queued > 0 then
        perform pg_notify('docket_jobs', '');
    end if;
    return queued;
end
$$;
