-- The traceparent's shape, checked at a fifth of the cost. The check runs on every
-- insert of a job and on every update of one that carries a trace (its claim, its
-- completion, its release). PostgreSQL's regex engine spent 4.4 µs a row on
-- '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' (its bounded repeats), 7 % of the
-- database's time in the event intake (perf); the same rule as a length, two dash
-- positions and a pattern without bounded repeats takes 0.9 µs (300,000 rows,
-- docs/performance-analysis.md). Exactly the same strings pass:
-- db_layer::the_traceparent_column_takes_exactly_the_w3c_version_00_shape.
--
-- NOT VALID, as before: every existing row passed the old, equivalent check, and
-- adding it scans nothing under the table's exclusive lock.
alter table jobs
    drop constraint jobs_traceparent_shape,
    add constraint jobs_traceparent_shape check (
        octet_length(traceparent) = 55
        and substr(traceparent, 36, 1) = '-'
        and substr(traceparent, 53, 1) = '-'
        and traceparent ~ '^00(-[0-9a-f]+){3}$'
    ) not valid;
