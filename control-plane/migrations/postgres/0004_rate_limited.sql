-- When the attempt's agent is waiting for its provider's rate limit, until when (set
-- from the runner's `status` events; NULL when it is not waiting).
ALTER TABLE attempts ADD COLUMN rate_limited_until BIGINT;
