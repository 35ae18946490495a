-- kiln control plane schema, version 1 (SQLite).
-- Times are Unix milliseconds. JSON columns hold serde_json text.

CREATE TABLE admin_tokens (
    token_hash  TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    uses_left   INTEGER,            -- NULL: unlimited
    expires_at  INTEGER,            -- NULL: never
    created_at  INTEGER NOT NULL
);

CREATE TABLE runners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    capabilities    TEXT NOT NULL,  -- JSON array of strings
    labels          TEXT NOT NULL,  -- JSON object of strings
    max_concurrent  INTEGER NOT NULL,
    version         TEXT,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER,
    revoked_at      INTEGER
);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    repo             TEXT NOT NULL,
    base_ref         TEXT,
    branch           TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    command          TEXT NOT NULL, -- JSON array: argv
    env              TEXT NOT NULL, -- JSON object
    requires         TEXT NOT NULL, -- JSON array of capabilities
    priority         INTEGER NOT NULL DEFAULT 0,
    timeout_ms       INTEGER,
    idle_timeout_ms  INTEGER,
    max_attempts     INTEGER NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0, -- number of the latest attempt, 0 before any
    outcome          TEXT,          -- JSON Outcome of the attempt that ended the task
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX tasks_by_state ON tasks (state, priority DESC, created_at);

CREATE TABLE attempts (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    attempt      INTEGER NOT NULL,
    runner_id    TEXT NOT NULL REFERENCES runners (id),
    state        TEXT NOT NULL,
    acked_seq    INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT,              -- JSON Outcome once finished
    assigned_at  INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;
CREATE INDEX attempts_by_runner ON attempts (runner_id, state);

-- One row per event; the primary key makes storage idempotent.
CREATE TABLE events (
    task_id  TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    body     TEXT NOT NULL,         -- JSON Event
    PRIMARY KEY (task_id, attempt, seq)
) WITHOUT ROWID;

-- Results uploaded by runners: the git bundle and the patch of each attempt.
CREATE TABLE artifacts (
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    data        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (task_id, attempt, kind)
) WITHOUT ROWID;
