-- `docket_uuid_v7` as the migrated database has it today. Created by
-- 20261201000004_follow_ups.sql. A change to it is a new migration carrying the new
-- text, and the same text here (README.md).

-- A UUIDv7 (time-ordered, like the ids the api makes): the first 48 bits are the
-- Unix time in milliseconds, then the version and variant bits.
create or replace function docket_uuid_v7() returns uuid
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
