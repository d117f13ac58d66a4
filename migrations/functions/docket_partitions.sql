-- `docket_partitions` as the migrated database has it today. Created by
-- 20261204000006_partitioned_history.sql. A change to it is a new migration carrying
-- the new text, and the same text here (README.md).

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
