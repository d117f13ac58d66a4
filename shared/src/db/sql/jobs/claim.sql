-- jobs::claim. The statement itself is the function docket_claim
-- (migrations/functions/docket_claim.sql): it skips paused actions and calls
-- docket_start_jobs, which pins its plan to the claim index.
select id as "id!: JobId", action as "action!", document_id as "document_id!",
       document_version_id as "document_version_id!", requested_by,
       attempts as "attempts!", max_attempts as "max_attempts!", parent_id as "parent_id: JobId",
       snoozes as "snoozes!", traceparent
from docket_claim($1, $2, $3, $4)
