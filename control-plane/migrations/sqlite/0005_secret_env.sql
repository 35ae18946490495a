-- Secret environment variables of a task: sent to its runner, never returned by the API,
-- and redacted from its log by the runner.
ALTER TABLE tasks ADD COLUMN secret_env TEXT NOT NULL DEFAULT '{}';
