-- Follow-up jobs (`on_finish` in the catalog): when a job reaches a final state, the
-- statement that puts it there also queues the follow-ups of its action, in the same
-- transaction, so no outcome is lost if the worker dies right after, and none is
-- queued twice (those statements are fenced; the unique index below holds besides).
alter table jobs add column parent_id uuid, add column parent_attempts integer;
create index jobs_parent_idx on jobs (parent_id) where parent_id is not null;
-- One follow-up of an action per end of its parent (an operator's retry gives the
-- parent a new end, with more attempts).
create unique index jobs_follow_up_once_idx on jobs (parent_id, action, parent_attempts)
    where parent_id is not null;

-- A UUIDv7 (time-ordered, like the ids the api makes): the first 48 bits are the
-- Unix time in milliseconds, then the version and variant bits.
create function docket_uuid_v7() returns uuid
language sql volatile
as $$
    select encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                    from 1 for 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The claim also returns the parent of a follow-up (its templates read the parent).
drop function docket_claim(text, text[], bigint, float8);
create function docket_claim(p_worker text, p_actions text[], p_limit bigint, p_lease_seconds float8)
returns table (
    id uuid,
    action text,
    document_id text,
    document_version_id text,
    requested_by text,
    attempts integer,
    max_attempts integer,
    parent_id uuid
)
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
                  j.attempts, j.max_attempts, j.parent_id
    ), started as (
        insert into job_attempts (job_id, attempt, worker_id)
        select c.id, c.attempts, p_worker from claimed c
    )
    select c.id, c.action, c.document_id, c.document_version_id, c.requested_by, c.attempts, c.max_attempts,
           c.parent_id
    from claimed c
$$;

-- Queues the follow-ups of jobs that just ended (their ids and final states), by the
-- rules the caller passes from its catalog: parent action, final state, follow-up
-- action, the follow-up's attempt budget. Notifies workers if it queued any; returns
-- how many. Called from inside the statement that ends the jobs, so both commit
-- together. (It reads the parents' rows as they were before that statement, which
-- is enough: only their state changes, and that comes as an argument.)
create function docket_queue_follow_ups(
    p_ids uuid[],
    p_states text[],
    p_follow_parents text[],
    p_follow_states text[],
    p_follow_actions text[],
    p_follow_max_attempts integer[]
)
returns bigint
language plpgsql volatile
as $$
declare
    queued bigint;
begin
    if coalesce(cardinality(p_follow_parents), 0) = 0 or coalesce(cardinality(p_ids), 0) = 0 then
        return 0;
    end if;
    insert into jobs (id, action, document_id, document_version_id, requested_by, max_attempts,
                      parent_id, parent_attempts)
    select docket_uuid_v7(), r.run, p.document_id, p.document_version_id, p.requested_by, r.max_attempts,
           p.id, p.attempts
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

-- Completion stores what the target said (`result`: JSON text per job, null where the
-- attempt captured nothing, which keeps an earlier result), honours a pending cancel
-- request (see the cancel-flag migration: an attempt bound for `retrying` while an
-- operator asked the job to stop ends it `cancelled`; final outcomes stand), and
-- queues the follow-ups of the jobs it ends, all in one statement.
drop function docket_complete(text, uuid[], integer[], text[], float8[], text[], text[]);
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
