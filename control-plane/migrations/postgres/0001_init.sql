-- kiln control plane schema, version 1 (PostgreSQL).
-- The same tables and columns as SQLite's schema at its version 10, so one row mapping
-- serves both. Ids sort bytewise (COLLATE "C"), as in SQLite, for paging. Times are Unix milliseconds (BIGINT); JSON columns hold serde_json text.
-- Append-only: change the schema with a new numbered file, never by editing this one.

CREATE TABLE admin_tokens (
    token_hash  TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    uses_left   BIGINT,             -- NULL: unlimited
    expires_at  BIGINT,             -- NULL: never
    created_at  BIGINT NOT NULL
);

CREATE TABLE runners (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    name                   TEXT NOT NULL,
    token_hash             TEXT NOT NULL UNIQUE,
    capabilities           TEXT NOT NULL,  -- JSON array of strings
    labels                 TEXT NOT NULL,  -- JSON object of strings
    max_concurrent         BIGINT NOT NULL,
    version                TEXT,
    created_at             BIGINT NOT NULL,
    last_seen_at           BIGINT,
    revoked_at             BIGINT,
    paused_at              BIGINT,
    drain_requested_at     BIGINT,
    previous_token_hash    TEXT,
    rotation_requested_at  BIGINT,
    sandbox_id             TEXT
);
CREATE INDEX runners_by_previous_token ON runners (previous_token_hash);

CREATE TABLE tasks (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    repo                 TEXT NOT NULL,
    base_ref             TEXT,
    branch               TEXT NOT NULL,
    prompt               TEXT NOT NULL,
    command              TEXT NOT NULL, -- JSON array: argv
    env                  TEXT NOT NULL, -- JSON object
    secret_env           TEXT NOT NULL DEFAULT '{}',
    requires             TEXT NOT NULL, -- JSON array of capabilities
    labels               TEXT NOT NULL DEFAULT '{}',
    options              TEXT NOT NULL DEFAULT '{}',
    priority             BIGINT NOT NULL DEFAULT 0,
    timeout_ms           BIGINT,
    idle_timeout_ms      BIGINT,
    max_attempts         BIGINT NOT NULL,
    retry_base           BIGINT NOT NULL DEFAULT 0,
    state                TEXT NOT NULL,
    attempt              BIGINT NOT NULL DEFAULT 0, -- number of the latest attempt
    outcome              TEXT,          -- JSON Outcome of the attempt that ended the task
    workspace_id         TEXT,
    sandbox_id           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    finished_at          BIGINT,
    cancel_requested_at  BIGINT,
    pruned_at            BIGINT
);
CREATE INDEX tasks_by_state ON tasks (state, priority DESC, created_at);
CREATE INDEX tasks_by_repo ON tasks (repo, id);
CREATE INDEX tasks_by_workspace ON tasks (workspace_id, state);
CREATE INDEX tasks_prunable ON tasks (finished_at)
    WHERE pruned_at IS NULL AND finished_at IS NOT NULL;

CREATE TABLE attempts (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    attempt      BIGINT NOT NULL,
    runner_id    TEXT NOT NULL REFERENCES runners (id),
    state        TEXT NOT NULL,
    acked_seq    BIGINT NOT NULL DEFAULT 0,
    log_bytes    BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT,              -- JSON Outcome once finished
    assigned_at  BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX attempts_by_runner ON attempts (runner_id, state);
CREATE INDEX attempts_by_runner_task ON attempts (runner_id, task_id);

-- One row per stored batch of events, its events as NDJSON (see SQLite's 0009).
CREATE TABLE event_chunks (
    task_id    TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt, first_seq)
);

-- Results uploaded by runners: the git bundle and the patch of each attempt.
CREATE TABLE artifacts (
    task_id     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (task_id, attempt, kind)
);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    repo        TEXT NOT NULL,
    base_ref    TEXT,
    branch      TEXT NOT NULL,
    setup       TEXT NOT NULL,      -- JSON array of argv arrays
    runner_id   TEXT,               -- bound when its first task is assigned
    state       TEXT NOT NULL,      -- open | closed | lost
    created_at  BIGINT NOT NULL,
    closed_at   BIGINT
);

CREATE TABLE sandboxes (
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    runner_id   TEXT NOT NULL REFERENCES runners (id),
    provider    TEXT NOT NULL,
    image       TEXT NOT NULL,
    handle      TEXT,
    state       TEXT NOT NULL,      -- forging | running | burned | failed
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    burned_at   BIGINT,
    reason      TEXT
);
CREATE INDEX sandboxes_by_state ON sandboxes (state);
