-- Bytes of log text stored per attempt, for the per-attempt log cap.
ALTER TABLE attempts ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
