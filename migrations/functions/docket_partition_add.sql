-- `docket_partition_add` as the migrated database has it today. Created by
-- 20261204000006_partitioned_history.sql. A change to it is a new migration carrying
-- the new text, and the same text here (README.md).

-- Creates `p_parent`'s partition for the UTC day `p_day` (`<parent>_pYYYYMMDD`),
-- taking in the rows that waited for it in the default partition. False when a
-- partition already covers any of that day. Only one caller at a time (advisory
-- lock). Attaching takes a lock on the parent that lets its readers and writers on
-- (SHARE UPDATE EXCLUSIVE) and a short exclusive one on the default partition: if
-- that is not had within 200 ms, the call fails and the next upkeep tries again.
create or replace function docket_partition_add(p_parent text, p_day date)
returns boolean
language plpgsql volatile
set jit = off
set lock_timeout = '200ms'
as $$
declare
    v_name  text := p_parent || '_p' || to_char(p_day, 'YYYYMMDD');
    v_start timestamptz := p_day::timestamp at time zone 'UTC';
    v_end   timestamptz := (p_day + 1)::timestamp at time zone 'UTC';
    v_key   text;
    v_from  text;
    v_to    text;
begin
    if p_parent = 'job_attempts' then
        v_key := 'job_id';
        v_from := quote_literal(docket_uuid_v7_floor(v_start));
        v_to := quote_literal(docket_uuid_v7_floor(v_end));
    elsif p_parent = 'workfront_events' then
        v_key := 'event_second';
        v_from := extract(epoch from v_start)::bigint::text;
        v_to := extract(epoch from v_end)::bigint::text;
    else
        raise exception 'docket_partition_add: % is not partitioned by day', p_parent;
    end if;
    perform pg_advisory_xact_lock(100111099107101118);
    if exists (select 1 from docket_partitions(p_parent) p
               where coalesce(p.starts < v_end, true) and coalesce(p.ends > v_start, true)) then
        return false;
    end if;
    -- Statements that touch the default partition wait while its rows of this day
    -- move (attaching would take this lock anyway, to check the default's rows).
    execute format('lock table %I in access exclusive mode', p_parent || '_default');
    execute format('create table %I (like %I including defaults including constraints)', v_name, p_parent);
    execute format('with moved as (delete from %I where %I >= %s and %I < %s returning *) insert into %I select * from moved',
                   p_parent || '_default', v_key, v_from, v_key, v_to, v_name);
    execute format('alter table %I attach partition %I for values from (%s) to (%s)', p_parent, v_name, v_from, v_to);
    return true;
end
$$;
