-- Per action and minute: the jobs that waited (queued, retrying) and ran when last
-- sampled in that minute (null for a minute no api sampled), and the jobs that ended
-- in it. The api writes the current and the previous minute every few seconds
-- (`DOCKET_API_SAMPLE_INTERVAL`): the dashboard's charts read this instead of `jobs`,
-- and the figures take a large backlog's size from the latest sample instead of
-- counting it on every scrape. Rows older than 8 days are deleted by the same writer.
create table queue_samples (
    minute     timestamptz not null,
    action     text        not null,
    queued     bigint,
    retrying   bigint,
    running    bigint,
    succeeded  bigint      not null default 0,
    failed     bigint      not null default 0,
    cancelled  bigint      not null default 0,
    sampled_at timestamptz not null default now(),
    primary key (minute, action)
);
