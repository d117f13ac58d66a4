-- `docket_flow_feedback` as the migrated database has it today. Created by
-- 20261201000006_flow_control.sql; `jit = off` from
-- 20261201000007_per_action_scans.sql; returns early from
-- 20261204000005_feedback_only_when_it_matters.sql. A change to it is a new migration
-- carrying the new text, and the same text here (README.md).

-- What the ends of attempts tell about a target, written in the transaction that
-- records them. Per attempt: its action, its limit group (or null), its job, its kind
-- ('succeeded'; 'answered': a permanent error, so the target is up; 'failed': a
-- retryable error or timeout; 'throttled') and, for 'throttled', how long the target
-- asked to wait. Per action with a circuit: its threshold and cool-downs.
--
-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
create or replace function docket_flow_feedback(
    p_actions text[],
    p_groups text[],
    p_ids uuid[],
    p_kinds text[],
    p_wait_seconds float8[],
    p_circuit_actions text[],
    p_circuit_failures integer[],
    p_cool_down float8[],
    p_cool_down_max float8[]
)
returns void
language plpgsql volatile
set jit = off
as $$
declare
    r record;
    v_members text[];
    c action_controls%rowtype;
    v_last_ok bigint;
    v_trailing integer;
    v_probe text;
    v_cool float8;
    v_failures integer;
begin
    -- Nothing to record (successes of a group whose rate is not lowered): no lock
    -- taken, so completions do not queue behind the group's claims. Read without the
    -- lock, a rate lowered a moment ago is raised by the next batch instead.
    if not exists (select 1 from unnest(p_kinds) as k where k = 'throttled')
       and not exists (select 1 from unnest(p_actions) as a where a = any (p_circuit_actions))
       and not exists (select 1 from limit_groups l
                       where l.name = any (p_groups) and l.rate is not null and l.effective_rate < l.rate) then
        return;
    end if;

    -- Lock order, as in the claim: the groups' rows (sorted), then action_controls
    -- rows (sorted by action). Taking them the other way round could deadlock with
    -- a claim that holds its group's row and moves a circuit.
    perform 1 from limit_groups l where l.name = any (p_groups) order by l.name for update;

    -- Back-pressure: the action, and every action of its group, waits as long as the
    -- target asked; the group's rate is halved, at most once per such wait (AIMD).
    for r in select t.action, t.grp, max(t.wait) as wait
             from unnest(p_actions, p_groups, p_kinds, p_wait_seconds) as t(action, grp, kind, wait)
             where t.kind = 'throttled' and t.wait is not null
             group by t.action, t.grp
             order by t.action loop
        v_members := coalesce((select l.actions from limit_groups l where l.name = r.grp), array[r.action]);
        insert into action_controls (action, backoff_until)
        select a, now() + make_interval(secs => r.wait) from unnest(v_members) as a order by a
        on conflict (action) do update
            set backoff_until = greatest(action_controls.backoff_until, excluded.backoff_until), updated_at = now();
        update limit_groups l
        set effective_rate = greatest(l.rate / 64, l.effective_rate / 2), rate_lowered_at = now(), updated_at = now()
        where l.name = r.grp and l.rate is not null
          and (l.rate_lowered_at is null or l.rate_lowered_at < now() - make_interval(secs => r.wait));
    end loop;

    -- Additive increase: each success raises a lowered rate by a fiftieth of the
    -- configured one, never above it.
    update limit_groups l
    set effective_rate = least(l.rate, l.effective_rate + l.rate / 50 * s.n), updated_at = now()
    from (select t.grp, count(*) as n from unnest(p_groups, p_kinds) as t(grp, kind)
          where t.kind = 'succeeded' and t.grp is not null group by t.grp) as s
    where l.name = s.grp and l.rate is not null and l.effective_rate < l.rate;

    -- Circuits.
    for r in select * from unnest(p_circuit_actions, p_circuit_failures, p_cool_down, p_cool_down_max)
                 as t(action, threshold, cool_down, cool_down_max)
             order by t.action loop
        if not exists (select 1 from unnest(p_actions) as a where a = r.action) then
            continue;
        end if;
        insert into action_controls (action) values (r.action) on conflict do nothing;
        select * into c from action_controls where action = r.action for update;
        -- This batch's attempts of the action, in the order they ended.
        select max(t.n) filter (where t.kind in ('succeeded', 'answered')) into v_last_ok
        from unnest(p_actions, p_kinds) with ordinality as t(action, kind, n) where t.action = r.action;
        select count(*) filter (where t.kind = 'failed' and t.n > coalesce(v_last_ok, 0)) into v_trailing
        from unnest(p_actions, p_kinds) with ordinality as t(action, kind, n) where t.action = r.action;
        select t.kind into v_probe from unnest(p_ids, p_kinds) as t(id, kind) where t.id = c.probe_job;

        if c.circuit = 'half_open' and v_probe in ('succeeded', 'answered') then
            update action_controls
            set circuit = 'closed', failures = 0, circuit_until = null, cool_down_seconds = null, probe_job = null,
                updated_at = now()
            where action = r.action;
        elsif c.circuit = 'half_open' and v_probe = 'failed' then
            v_cool := least(coalesce(c.cool_down_seconds, r.cool_down) * 2, r.cool_down_max);
            update action_controls
            set circuit = 'open', failures = c.failures + v_trailing, cool_down_seconds = v_cool,
                circuit_until = now() + make_interval(secs => v_cool), probe_job = null, updated_at = now()
            where action = r.action;
        elsif c.circuit = 'closed' then
            update action_controls
            set failures = case when v_last_ok is null then c.failures + v_trailing else v_trailing end,
                updated_at = now()
            where action = r.action
            returning failures into v_failures;
            if v_failures >= r.threshold then
                update action_controls
                set circuit = 'open', cool_down_seconds = r.cool_down,
                    circuit_until = now() + make_interval(secs => r.cool_down), updated_at = now()
                where action = r.action;
            end if;
        else
            update action_controls set failures = c.failures + v_trailing, updated_at = now()
            where action = r.action;
        end if;
    end loop;
end
$$;
