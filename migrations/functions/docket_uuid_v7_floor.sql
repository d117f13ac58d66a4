-- `docket_uuid_v7_floor` as the migrated database has it today. Created by
-- 20261201000007_per_action_scans.sql. A change to it is a new migration carrying the
-- new text, and the same text here (README.md).

-- The ops list filtered by creation time walks the (time-ordered, UUIDv7) primary key
-- from the smallest id a job created then can have: its id is made (by the api, or by
-- `docket_uuid_v7()` for a follow-up) before the row's `created_at`, and the hour of
-- margin covers the clocks of api hosts that run behind the database's. No index on
-- `created_at` (or on `requested_by`, or on `action` over all rows): every state change
-- is a non-HOT update (`state` is in partial index predicates), so each index on
-- `jobs` gets a new entry per state change; dropping the `(action, created_at)` index
-- bought the drain 24 % (README).
create or replace function docket_uuid_v7_floor(ts timestamptz) returns uuid
language sql immutable parallel safe
as $$
    select (lpad(to_hex(least(greatest(floor(extract(epoch from ts) * 1000), 0), 281474976710655)::bigint), 12, '0')
            || '00000000000000000000')::uuid
$$;
