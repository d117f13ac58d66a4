-- jobs::complete. The statement itself is the function docket_complete
-- (migrations/functions/docket_complete.sql), which pins its plan to primary-key
-- lookups.
select id as "id!: JobId" from docket_complete($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
