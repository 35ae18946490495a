-- When the runner's `finished` event for an attempt was stored. An attempt that reported
-- accepts no more events or uploads (an ended attempt accepts nothing), even when it had
-- been declared lost before its report arrived.
ALTER TABLE attempts ADD COLUMN reported_at INTEGER;
