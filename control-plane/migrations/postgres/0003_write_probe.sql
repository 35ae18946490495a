-- One row that /readyz writes: a store that cannot write (a full disk) is not ready.
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY,
    probed_at  BIGINT NOT NULL
);
