-- Fleet controls and richer tasks.
-- Labels a task asks of its runner (JSON object); also used to filter task lists.
ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
-- Attempts before the last `kiln retry`; max_attempts counts attempts after it.
ALTER TABLE tasks ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;
-- A paused runner stays connected and finishes its work but gets no new tasks.
ALTER TABLE runners ADD COLUMN paused_at INTEGER;
-- A drain requested while the runner was away; delivered when it connects.
ALTER TABLE runners ADD COLUMN drain_requested_at INTEGER;
CREATE INDEX tasks_by_repo ON tasks (repo, id);
CREATE INDEX attempts_by_runner_task ON attempts (runner_id, task_id);
