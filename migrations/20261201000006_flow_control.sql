-- Flow control: what protects a target from Docket.
--
-- Per action (`action_controls`): an operator's pause, the back-pressure pause a
-- target asked for (429/503 with Retry-After), and the circuit breaker.
-- Per limit group (`limit_groups`; an action with limits or a circuit and no
-- `limit_group` is a group of its own): the cluster-wide concurrency limit and the
-- token bucket of the rate limit. Workers write each group's configuration from their
-- catalog when they start.
--
-- Where the limits are enforced: in the claim. Actions without limits or a circuit
-- are claimed by `docket_claim` as before (it skips paused actions, one lookup per
-- claim). A group's jobs are claimed by `docket_claim_group`, which locks the group's
-- row and then, in later statements (fresh snapshots that see what the previous
-- holder started), counts the group's running jobs in `jobs` itself, refills the
-- bucket and claims no more than both allow. Running jobs are counted, never kept in
-- a counter: a killed worker's jobs stop counting when the rescuer takes them back,
-- and nothing can drift.

-- How often the target turned a job away with back-pressure (capped: a target that
-- always answers 429 still ends the job).
alter table jobs add column snoozes integer not null default 0;

create table action_controls (
    action            text        primary key,
    paused_until      timestamptz,            -- an operator's pause ('infinity': until resumed)
    paused_by         text,
    paused_at         timestamptz,
    pause_note        text,
    backoff_until     timestamptz,            -- the target asked to wait (429 / 503 Retry-After)
    circuit           text        not null default 'closed'
                                  check (circuit in ('closed', 'open', 'half_open')),
    failures          integer     not null default 0,  -- consecutive retryable failures
    circuit_until     timestamptz,            -- open: the next probe may start at this time
    cool_down_seconds float8,                 -- the current cool-down (doubles on a failed probe)
    probe_job         uuid,                   -- half_open: the one job let through
    updated_at        timestamptz not null default now()
);

create table limit_groups (
    name            text        primary key,
    actions         text[]      not null,
    max_running     integer     check (max_running >= 1),  -- null: no concurrency limit
    rate            float8      check (rate > 0),          -- attempts per second; null: no rate limit
    burst           float8      check (burst >= 1),
    effective_rate  float8,                 -- AIMD: halved on back-pressure, raised on successes
    tokens          float8      not null default 0,
    refilled_at     timestamptz not null default clock_timestamp(),
    rate_lowered_at timestamptz,
    updated_at      timestamptz not null default now()
);

-- The claim itself, for any list of actions, without looking at flow control: what
-- `docket_claim` did before (it pins its plan to the claim index).
create type docket_claimed_job as (
    id uuid,
    action text,
    document_id text,
    document_version_id text,
    requested_by text,
    attempts integer,
    max_attempts integer,
    parent_id uuid,
    snoozes integer
);

create function docket_start_jobs(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language sql
set enable_bitmapscan = off
set enable_seqscan = off
as $$
    with due as (
        select j.id from jobs j
        where j.state in ('queued', 'retrying') and j.run_at <= now() and j.action = any (p_actions)
        order by j.run_at, j.id
        limit p_limit
        for update skip locked
    ), claimed as (
        update jobs j
        set state = 'running', attempts = j.attempts + 1, lease_owner = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
        from due
        where j.id = due.id
        returning j.id, j.action, j.document_id, j.document_version_id, j.requested_by,
                  j.attempts, j.max_attempts, j.parent_id, j.snoozes
    ), started as (
        insert into job_attempts (job_id, attempt, worker_id)
        select c.id, c.attempts, p_worker from claimed c
    )
    select c.id, c.action, c.document_id, c.document_version_id, c.requested_by, c.attempts, c.max_attempts,
           c.parent_id, c.snoozes
    from claimed c
$$;

-- The plain claim (actions without limits or a circuit): skips actions that an
-- operator paused or whose target asked to wait. The list of open actions is an
-- uncorrelated subquery: computed once per claim, not per row.
drop function docket_claim(text, text[], bigint, float8);
create function docket_claim(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns setof docket_claimed_job
language sql
as $$
    select * from docket_start_jobs(
        p_worker,
        array(select a from unnest(p_actions) as a
              where not exists (select 1 from action_controls c
                                where c.action = a
                                  and (c.paused_until > now() or c.backoff_until > now() or c.circuit <> 'closed'))),
        p_limit,
        p_lease_seconds)
$$;

-- The claim of one limit group. Returns the jobs it started and, when due jobs were
-- held back by a limit, one more row without a job: `held_by` ('concurrency' or
-- 'rate') and, for the rate, the seconds until the next token.
create function docket_claim_group(p_worker text, p_group text, p_want integer, p_lease_seconds float8)
returns table (job docket_claimed_job, held_by text, wait_seconds float8)
language plpgsql volatile
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

    -- The group's running jobs, on every worker.
    select count(*) into v_running from jobs j where j.state = 'running' and j.action = any (g.actions);
    -- The bucket, refilled for the time since it was last refilled.
    if g.rate is not null then
        v_tokens := least(g.burst, g.tokens + g.effective_rate * greatest(0, extract(epoch from v_now - g.refilled_at)));
    end if;

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

    if g.rate is not null then
        update limit_groups set tokens = v_tokens - v_claimed, refilled_at = v_now where name = p_group;
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

-- What the ends of attempts tell about a target, written in the transaction that
-- records them. Per attempt: its action, its limit group (or null), its job, its kind
-- ('succeeded'; 'answered': a permanent error, so the target is up; 'failed': a
-- retryable error or timeout; 'throttled') and, for 'throttled', how long the target
-- asked to wait. Per action with a circuit: its threshold and cool-downs.
create function docket_flow_feedback(
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

-- Completion as before, and a throttled attempt (outcome 'throttled', bound for
-- 'retrying') gives the attempt back: `max_attempts` grows by one (the attempt
-- numbers keep counting, so the history stays) and `snoozes` counts it.
drop function docket_complete(text, uuid[], integer[], text[], float8[], text[], text[], text[],
                              text[], text[], text[], integer[]);
create function docket_complete(
    p_worker text,
    p_ids uuid[],
    p_attempts integer[],
    p_states text[],
    p_delay_seconds float8[],
    p_outcomes text[],
    p_errors text[],
    p_results text[],
    p_follow_parents text[],
    p_follow_states text[],
    p_follow_actions text[],
    p_follow_max_attempts integer[]
)
returns table (id uuid)
language sql
set enable_bitmapscan = off
set enable_seqscan = off
as $$
    with input as (
        select * from unnest(p_ids, p_attempts, p_states, p_delay_seconds, p_outcomes, p_errors, p_results)
            as t(id, attempt, state, delay_seconds, outcome, error, result)
    ), updated as (
        -- `j.*` on the right-hand side is the row as locked by this update, so a
        -- cancel request committed a moment ago is seen here.
        update jobs j
        set state = case when i.state = 'retrying' and j.cancel_requested_at is not null
                         then 'cancelled'::job_state else i.state::job_state end,
            run_at = case when i.state = 'retrying' and j.cancel_requested_at is null
                          then now() + make_interval(secs => i.delay_seconds) else j.run_at end,
            last_error = case when i.state = 'retrying' and j.cancel_requested_at is not null
                              then concat_ws('; ', 'cancelled by an operator', i.error)
                              else coalesce(i.error, j.last_error) end,
            result = coalesce(i.result::jsonb, j.result),
            max_attempts = j.max_attempts + (i.outcome = 'throttled' and i.state = 'retrying')::integer,
            snoozes = j.snoozes + (i.outcome = 'throttled' and i.state = 'retrying')::integer,
            lease_owner = null, lease_expires_at = null,
            finished_at = case when i.state in ('succeeded', 'failed', 'cancelled')
                                    or j.cancel_requested_at is not null then now() end,
            cancel_requested_at = null,
            updated_at = now()
        from input i
        -- The fence: `lease_owner` is set exactly while the job is running (the
        -- check constraint jobs_lease_when_running), so it stands for
        -- `state = 'running'` here. Spelling that out would let the planner scan the
        -- small partial index of running rows as the outer side of a nested loop over
        -- the input: quadratic in the batch.
        where j.id = i.id and j.lease_owner = p_worker and j.attempts = i.attempt
        returning j.id, j.attempts, j.state, j.action, i.outcome, i.error
    ), recorded as (
        update job_attempts a
        set finished_at = now(), outcome = u.outcome::attempt_outcome, error = u.error
        from updated u
        where a.job_id = u.id and a.attempt = u.attempts
    ), followed as (
        select docket_queue_follow_ups(ended.ids, ended.states,
                                       p_follow_parents, p_follow_states, p_follow_actions, p_follow_max_attempts)
        from (select array_agg(u.id order by u.id) as ids, array_agg(u.state::text order by u.id) as states
              -- Only jobs of actions with follow-ups: the others cost nothing.
              from updated u where u.state in ('succeeded', 'failed', 'cancelled')
                               and u.action = any (p_follow_parents)) as ended
    )
    -- `followed` is read so that it runs, once.
    select u.id from updated u cross join followed
$$;
