-- Runner token rotation: the old token stays valid until the runner confirms it saved the
-- new one, so a runner that crashes mid-rotation can still connect.
ALTER TABLE runners ADD COLUMN previous_token_hash TEXT;
ALTER TABLE runners ADD COLUMN rotation_requested_at INTEGER;
CREATE INDEX runners_by_previous_token ON runners (previous_token_hash);
