-- Dashboard sessions, recorded so that they can be listed and revoked. The cookie
-- carries a random 128-bit session id; only its SHA-256 is stored here, so a copy of
-- this table opens no session. Every authenticated dashboard request reads its row by
-- primary key: revoked or expired means signed out. `last_seen_at` is refreshed at
-- most once a minute. Rows whose expiry is older than the retention are deleted by
-- the workers' pruning.
create table operator_sessions (
    id_hash      bytea       primary key check (octet_length(id_hash) = 32),
    label        text        not null,   -- the admin token's label
    created_at   timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at   timestamptz not null,
    revoked_at   timestamptz,
    revoked_by   text,                   -- the label that revoked it (itself, on sign-out)
    client       inet                    -- the address it signed in from
);
-- Live sessions, for the list and for revoking all of a label; pruning by expiry.
create index operator_sessions_live_idx on operator_sessions (label, expires_at) where revoked_at is null;
create index operator_sessions_expires_idx on operator_sessions (expires_at);
