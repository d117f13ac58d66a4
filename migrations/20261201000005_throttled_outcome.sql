-- An attempt the target turned away with back-pressure (HTTP 429, or 503 with
-- Retry-After): the job waits as the target asked without spending an attempt. (Its
-- own migration: a value added to an enum cannot be used in the transaction that
-- adds it.)
alter type attempt_outcome add value 'throttled';
