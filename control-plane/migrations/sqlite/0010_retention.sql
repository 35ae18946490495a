-- Retention: the events and artifacts of tasks that finished before a cutoff are deleted.
-- The task row and its attempts stay, marked with when their output was pruned.
ALTER TABLE tasks ADD COLUMN pruned_at INTEGER;

CREATE INDEX tasks_prunable ON tasks (finished_at)
    WHERE pruned_at IS NULL AND finished_at IS NOT NULL;
