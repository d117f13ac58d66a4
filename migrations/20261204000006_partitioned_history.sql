-- The append-only history, `job_attempts` and `workfront_events`, partitioned by UTC
-- day, so that retention drops a day's partition instead of deleting its rows one by
-- one (which left dead rows and index entries behind for vacuum: bloat on a busy
-- installation). Native partitioning, kept by Docket itself (`docket_partition_add`,
-- `docket_partition_drop_one`, called by the workers' upkeep): pg_partman is in
-- Debian's repository, but it is one more extension to install and to trust on every
-- managed Postgres, for the two small functions below.
--
-- `job_attempts` by `job_id`: ids are UUIDv7, so a range of ids is the jobs created in
-- that day, and all attempts of a job share its partition (the primary key
-- (job_id, attempt) stays a real key). `workfront_events` by `event_second`: part of
-- an event's identity, so a redelivery (same eventTime) meets the first delivery in
-- the same partition and the unique identity stays enforced.
--
-- Each table gets a `_default` partition for rows no day partition covers (ids that
-- are not UUIDv7, days nobody created a partition for because no worker ran); a day
-- partition created later takes its rows from there. The rows written before this
-- migration stay where they are, in the old table, attached as the partition of
-- everything before today (`_legacy`); it is dropped like a day when its day is past
-- retention. On a fresh database it is empty and dropped here.
--
-- The foreign key from `job_attempts` to `jobs` goes: a pruned job's attempts stay
-- until their partition is dropped (after the longer of the two job retentions), and
-- are never read without their job. Attempts of a job still alive when its partition
-- is dropped move to the default partition first.

-- job_attempts ----------------------------------------------------------------------

alter table job_attempts rename to job_attempts_legacy;
alter table job_attempts_legacy drop constraint job_attempts_job_id_fkey;
alter table job_attempts_legacy rename constraint job_attempts_pkey to job_attempts_legacy_pkey;

create table job_attempts (like job_attempts_legacy including defaults including constraints)
    partition by range (job_id);
alter table job_attempts add primary key (job_id, attempt);
create table job_attempts_default partition of job_attempts default;

-- Rows of jobs created today or later (and of ids that are not UUIDv7) leave the
-- legacy table, which then holds exactly the range it is attached for.
with moved as (
    delete from job_attempts_legacy where job_id >= docket_uuid_v7_floor(date_trunc('day', now() at time zone 'UTC') at time zone 'UTC')
    returning *
)
insert into job_attempts select * from moved;

-- workfront_events ------------------------------------------------------------------

alter table workfront_events rename to workfront_events_legacy;
alter table workfront_events_legacy drop constraint workfront_events_pkey;
alter table workfront_events_legacy rename constraint workfront_events_identity to workfront_events_legacy_identity;
alter index workfront_events_received_idx rename to workfront_events_legacy_received_idx;

create table workfront_events (like workfront_events_legacy including defaults including constraints)
    partition by range (event_second);
-- The key must hold the partition column; `id` alone is still unique (UUIDv7 made by
-- the api), and lookups by id probe each partition's key.
alter table workfront_events add primary key (id, event_second);
alter table workfront_events add constraint workfront_events_identity
    unique (subscription_id, event_second, event_nano, obj_code, obj_id, event_type);
-- The dashboard's deliveries per minute, and the default partition's retention.
create index workfront_events_received_idx on workfront_events (received_at);
create table workfront_events_default partition of workfront_events default;

with moved as (
    delete from workfront_events_legacy
    where event_second >= extract(epoch from date_trunc('day', now() at time zone 'UTC'))::bigint
    returning *
)
insert into workfront_events select * from moved;

-- Partition bookkeeping -------------------------------------------------------------

-- The partitions of `p_parent` (the default one aside) with the times their ranges
-- start and end (null: unbounded), read from the catalog's partition bounds.
create or replace function docket_partitions(p_parent text)
returns table (name text, starts timestamptz, ends timestamptz)
language sql stable
set jit = off
as $$
    select b.name,
           case when b.lower <> 'MINVALUE' then
               case when p_parent = 'job_attempts'
                    then to_timestamp(('x' || lpad(substr(replace(b.lower, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0)
                    else to_timestamp(b.lower::bigint) end end,
           case when b.upper <> 'MAXVALUE' then
               case when p_parent = 'job_attempts'
                    then to_timestamp(('x' || lpad(substr(replace(b.upper, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0)
                    else to_timestamp(b.upper::bigint) end end
    from (select c.relname::text as name,
                 btrim(substring(pg_get_expr(c.relpartbound, c.oid) from 'FROM \((.*)\) TO'), '''') as lower,
                 btrim(substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \((.*)\)$'), '''') as upper
          from pg_inherits i join pg_class c on c.oid = i.inhrelid
          where i.inhparent = p_parent::regclass
            and pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') b
$$;

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

-- The legacy tables hold what was written before this migration; on a fresh
-- database they are empty, and go.
do $$
begin
    if exists (select 1 from job_attempts_legacy) then
        execute format('alter table job_attempts attach partition job_attempts_legacy for values from (minvalue) to (%L)',
                       docket_uuid_v7_floor(date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'));
    else
        drop table job_attempts_legacy;
    end if;
    if exists (select 1 from workfront_events_legacy) then
        execute format('alter table workfront_events attach partition workfront_events_legacy for values from (minvalue) to (%s)',
                       extract(epoch from date_trunc('day', now() at time zone 'UTC'))::bigint);
    else
        drop table workfront_events_legacy;
    end if;
end
$$;

-- Today and the next seven days, for both tables; the workers' upkeep keeps a week
-- ahead from now on.
select docket_partition_add(t.parent, (now() at time zone 'UTC')::date + d)
from unnest(array['job_attempts', 'workfront_events']) as t(parent), generate_series(0, 7) as d;
