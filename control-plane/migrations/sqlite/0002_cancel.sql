-- Cancellation requested by an operator; the runner is told, and the attempt ends as
-- cancelled (also if its runner is lost meanwhile).
ALTER TABLE tasks ADD COLUMN cancel_requested_at INTEGER;
