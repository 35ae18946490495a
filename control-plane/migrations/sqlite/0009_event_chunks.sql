-- Events are stored in chunks: one row per stored batch, its events as NDJSON, instead of
-- one row per event. A row per line made SQLite's b-tree the bottleneck of log ingestion
-- (docs/performance.md); a chunk row costs the same whatever the number of lines in it.
CREATE TABLE event_chunks (
    task_id    TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    body       TEXT NOT NULL,       -- NDJSON: one Event per line, seqs first_seq..=last_seq
    PRIMARY KEY (task_id, attempt, first_seq)
) WITHOUT ROWID;

INSERT INTO event_chunks (task_id, attempt, first_seq, last_seq, body)
    SELECT task_id, attempt, seq, seq, body FROM events;

DROP TABLE events;
