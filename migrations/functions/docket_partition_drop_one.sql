-- `docket_partition_drop_one` as the migrated database has it today. Created by
-- 20261204000006_partitioned_history.sql. A change to it is a new migration carrying
-- the new text, and the same text here (README.md).

-- Drops the oldest partition of `p_parent` whose range ended by `p_before`, and
-- returns its name (null: none is that old). For `job_attempts`, the attempts of jobs
-- that still exist move to the default partition first. Dropping a partition locks
-- the whole table: if that lock is not had within `lock_timeout` (200 ms: claims and
-- completions queue behind a waiting lock), the call fails and the next upkeep tries
-- again.
create or replace function docket_partition_drop_one(p_parent text, p_before timestamptz)
returns text
language plpgsql volatile
set jit = off
set lock_timeout = '200ms'
as $$
declare
    v_name   text;
    v_starts timestamptz;
    v_ends   timestamptz;
begin
    if p_parent not in ('job_attempts', 'workfront_events') then
        raise exception 'docket_partition_drop_one: % is not partitioned by day', p_parent;
    end if;
    perform pg_advisory_xact_lock(100111099107101118);
    select p.name, p.starts, p.ends into v_name, v_starts, v_ends
    from docket_partitions(p_parent) p
    where p.ends <= p_before order by p.ends limit 1;
    if v_name is null then
        return null;
    end if;
    execute format('lock table %I in access exclusive mode', p_parent);
    if p_parent = 'job_attempts' then
        -- The jobs of the partition's day that still exist (a few, most are pruned
        -- by now): one range of the jobs' key, then their attempts by this key.
        create temp table if not exists docket_kept_attempts (like job_attempts) on commit drop;
        truncate docket_kept_attempts;
        execute format('insert into docket_kept_attempts select a.* from %I a
                        where a.job_id = any (array(select j.id from jobs j where j.id >= $1 and j.id < $2))', v_name)
            using coalesce(docket_uuid_v7_floor(v_starts), '00000000-0000-0000-0000-000000000000'::uuid),
                  docket_uuid_v7_floor(v_ends);
        execute format('drop table %I', v_name);
        -- No partition covers their day now: they land in the default partition.
        insert into job_attempts select * from docket_kept_attempts;
    else
        execute format('drop table %I', v_name);
    end if;
    return v_name;
end
$$;
