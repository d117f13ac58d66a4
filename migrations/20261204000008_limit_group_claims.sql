-- Limit groups' claims (issue #24: a group with a rate drained at 0.12x the raw limit,
-- one with only max_concurrency at 0.49x).
--
-- 1. A rate-limited group may be claimed ahead into a worker's local queue. It
--    claimed only for free slots, 33 jobs a claim, one claim after another on the
--    group's lock. The bucket is still charged at the claim; the worker says how long
--    after the claim a job may still start (p_start_within), the bucket keeps that
--    much of the rate back from its burst, and a job not started in time goes back to
--    the queue unstarted (jobs::release). So the starts keep burst + rate x T in every
--    window T, as before.
-- 2. The group's running jobs are counted only when the bound kept since the last
--    count (running_bound: that count plus every job started since, which only this
--    function does) leaves too little room, or is a second old. The count took 4.4 ms
--    of each 19.7 ms claim, under the group's lock (pg_stat_statements, 100,000 jobs
--    at a limit of 100,000).
--
-- A new argument and a new result column: the old function is dropped (workers of the
-- previous release call it with four arguments and fail their group claims until they
-- are replaced; they retry with a backoff and lose nothing).

alter table limit_groups
    add column running_bound integer,
    add column running_counted_at timestamptz;

drop function docket_claim_group(text, text, integer, float8);

-- The claim of one limit group. Returns the jobs it started and, when due jobs were
-- held back by a limit, one more row without a job: `held_by` ('concurrency' or
-- 'rate') and, for the rate, the seconds until the next token.
--
-- A rate limits when attempts start (at most burst + rate x T in any window T), and the
-- bucket is charged here, at the claim. A worker that starts every job at once passes
-- p_start_within = 0. A worker that keeps jobs in its local queue says how long after
-- this claim each may still start (p_start_within); the bucket then holds
-- rate x p_start_within tokens less than its burst, so that the starts, not only the
-- claims, stay within the limit (jobs claimed over T + p_start_within start within T).
-- It gets at most what leaves one token of the burst (the worker asks for a tenth of
-- it), and every job row says what it got (start_within): a job not started by then
-- goes back to the queue unstarted.
--
-- The functions are planned without their arguments' values, so on a big table the
-- planner's estimates pass jit_above_cost and every call compiled itself first: the
-- claim of 64 jobs took 145 ms, 140 of them in JIT. They touch a batch of rows; JIT
-- never pays for itself here.
create or replace function docket_claim_group(p_worker text, p_group text, p_want integer, p_lease_seconds float8,
                                              p_start_within float8)
returns table (job docket_claimed_job, held_by text, wait_seconds float8, start_within float8)
language plpgsql volatile
set jit = off
as $$
declare
    g limit_groups%rowtype;
    v_now timestamptz;
    v_probing text[];
    v_open text[];
    v_running integer;
    v_tokens float8;
    v_grant integer;
    v_claimed integer := 0;
    v_action text;
    v_job docket_claimed_job;
    v_within float8 := 0;
    v_counted boolean := false;
begin
    -- Claims of one group take turns from here until their transaction commits.
    select * into g from limit_groups l where l.name = p_group for update;
    if not found or p_want < 1 then
        return;
    end if;
    -- Every statement from here on reads a snapshot taken after the lock, so it sees
    -- the jobs the previous holder started.
    v_now := clock_timestamp();

    -- Circuits whose cool-down has passed, or whose probe ended without a verdict
    -- (its worker died, or no job was due), let one probe through.
    with probing as (
        update action_controls c set circuit = 'half_open', probe_job = null, updated_at = v_now
        where c.action = any (g.actions)
          and coalesce(c.paused_until <= v_now, true) and coalesce(c.backoff_until <= v_now, true)
          and ((c.circuit = 'open' and c.circuit_until <= v_now)
               or (c.circuit = 'half_open'
                   and not exists (select 1 from jobs j where j.id = c.probe_job and j.state = 'running')))
        returning c.action
    )
    select coalesce(array_agg(p.action), '{}') into v_probing from probing p;

    -- The group's running jobs, on every worker: counted, or, while there is room, the
    -- bound kept since the last count. Only this function starts the group's jobs, and
    -- it adds what it starts to the bound, so the bound is never below the count; a
    -- count every second at least (and after every catalog sync) keeps it honest. At
    -- a 100,000 limit the count (about 4 ms among ~600 running rows, held under the
    -- group's lock) was a third of each claim.
    if g.max_running is not null then
        if g.running_bound is not null and g.running_bound + p_want <= g.max_running
           and g.running_counted_at > v_now - interval '1 second' then
            v_running := g.running_bound;
        else
            select count(*) into v_running from jobs j where j.state = 'running' and j.action = any (g.actions);
            v_counted := true;
        end if;
    end if;
    -- The bucket, refilled for the time since it was last refilled, up to its burst less
    -- what the jobs' later starts need (g.rate: the configured rate, which the effective
    -- one never exceeds).
    if g.rate is not null then
        v_within := least(greatest(p_start_within, 0), (g.burst - 1) / g.rate);
        v_tokens := least(g.burst - g.rate * v_within,
                          g.tokens + g.effective_rate * greatest(0, extract(epoch from v_now - g.refilled_at)));
    end if;
    start_within := v_within;

    -- One probe per circuit that allows one; probes count against the limits.
    foreach v_action in array v_probing loop
        exit when (g.max_running is not null and v_running + v_claimed >= g.max_running)
               or (g.rate is not null and v_tokens - v_claimed < 1);
        for v_job in select * from docket_start_jobs(p_worker, array[v_action], 1, p_lease_seconds) loop
            update action_controls c set probe_job = v_job.id where c.action = v_action;
            v_claimed := v_claimed + 1;
            job := v_job;
            return next;
        end loop;
    end loop;

    -- The rest, from actions that are not paused, backing off or behind a circuit.
    select coalesce(array_agg(a), '{}') into v_open from unnest(g.actions) as a
    where not exists (select 1 from action_controls c
                      where c.action = a
                        and (c.paused_until > v_now or c.backoff_until > v_now or c.circuit <> 'closed'));
    v_grant := p_want - v_claimed;
    if g.max_running is not null then
        v_grant := least(v_grant, g.max_running - v_running - v_claimed);
    end if;
    if g.rate is not null then
        v_grant := least(v_grant, floor(v_tokens - v_claimed)::integer);
    end if;
    if v_grant > 0 and cardinality(v_open) > 0 then
        for v_job in select * from docket_start_jobs(p_worker, v_open, v_grant, p_lease_seconds) loop
            v_claimed := v_claimed + 1;
            job := v_job;
            return next;
        end loop;
    end if;

    if g.rate is not null or (g.max_running is not null and (v_claimed > 0 or v_counted)) then
        update limit_groups
        set tokens = case when g.rate is not null then v_tokens - v_claimed else tokens end,
            refilled_at = case when g.rate is not null then v_now else refilled_at end,
            running_bound = case when g.max_running is not null then v_running + v_claimed end,
            running_counted_at = case when v_counted then v_now else running_counted_at end
        where name = p_group;
    end if;

    -- Say what held back jobs that are due, so that the worker knows when to ask again.
    if v_claimed < p_want and cardinality(v_open) > 0
       and exists (select 1 from jobs j where j.state in ('queued', 'retrying') and j.run_at <= now()
                                          and j.action = any (v_open)) then
        job := null;
        if g.max_running is not null and v_running + v_claimed >= g.max_running then
            held_by := 'concurrency';
            wait_seconds := null;
            return next;
        elsif g.rate is not null and v_tokens - v_claimed < 1 then
            held_by := 'rate';
            wait_seconds := (1 - (v_tokens - v_claimed)) / g.effective_rate;
            return next;
        end if;
    end if;
end
$$;
