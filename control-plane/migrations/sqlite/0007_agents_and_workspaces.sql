-- Agent presets, loops and budgets travel as one JSON object of run options.
ALTER TABLE tasks ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
-- Tasks of a workspace session run one at a time in the session's worktree.
ALTER TABLE tasks ADD COLUMN workspace_id TEXT;
CREATE INDEX tasks_by_workspace ON tasks (workspace_id, state);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    repo        TEXT NOT NULL,
    base_ref    TEXT,
    branch      TEXT NOT NULL,
    setup       TEXT NOT NULL,      -- JSON array of argv arrays
    runner_id   TEXT,               -- bound when its first task is assigned
    state       TEXT NOT NULL,      -- open | closed | lost
    created_at  INTEGER NOT NULL,
    closed_at   INTEGER
);
