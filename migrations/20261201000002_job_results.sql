-- What a target said, for actions that ask for it (`result = "/json/pointer"` in the
-- catalog): the value found in a successful response's JSON body, or null. Never the
-- whole body.
alter table jobs add column result jsonb;

-- `docket_complete` writes it: see the follow-ups migration, which redefines that
-- function once for both (results and follow-ups).
