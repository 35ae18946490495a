-- Per-task sandboxes: a box forged for one task, with its own runner identity.
ALTER TABLE runners ADD COLUMN sandbox_id TEXT;
ALTER TABLE tasks ADD COLUMN sandbox_id TEXT;

CREATE TABLE sandboxes (
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    runner_id   TEXT NOT NULL REFERENCES runners (id),
    provider    TEXT NOT NULL,
    image       TEXT NOT NULL,
    handle      TEXT,               -- the provider's name for the box, once forged
    state       TEXT NOT NULL,      -- forging | running | burned | failed
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    burned_at   INTEGER,
    reason      TEXT                -- why it was burned or failed
);
CREATE INDEX sandboxes_by_state ON sandboxes (state);
