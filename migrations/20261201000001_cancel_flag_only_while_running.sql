-- A cancel request is a message to the worker running a job; it means nothing once
-- the job has left `running`. Before this migration two paths could leave it behind:
-- the rescuer (a cancelled job whose worker died was run again, or ended `failed`
-- with the flag still set) and bulk retry (a retried job carrying a stale flag was
-- cancelled at its first lease renewal). Every statement that moves a job out of
-- `running` now honours the flag (a job that would run again ends `cancelled`
-- instead) and clears it: release and rescue in shared/src/db/jobs.rs, completion in
-- `docket_complete` (redefined by the follow-ups migration); the constraint below
-- makes a stale flag impossible.

update jobs set cancel_requested_at = null where state <> 'running' and cancel_requested_at is not null;

alter table jobs add constraint jobs_cancel_request_only_while_running
    check (cancel_requested_at is null or state = 'running');
