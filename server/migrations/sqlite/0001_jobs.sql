-- One row per build request, keyed by the full request hash (the unique key is the
-- de-duplication: identical requests share one row). The row is the queue entry while queued or
-- running and the cache entry once finished, until `expires_at`. Times are Unix milliseconds.
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,   -- queue order
    request_hash   TEXT    NOT NULL UNIQUE,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    stage          TEXT    NOT NULL DEFAULT 'init',     -- `imagebuilder_status` while running
    attempt        INTEGER NOT NULL DEFAULT 0,          -- incremented by every claim; fences updates
    worker         TEXT,
    lease_until    INTEGER,
    run_after      INTEGER NOT NULL,                    -- retry back-off: not claimed before this
    enqueued_at    INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    expires_at     INTEGER,
    request        TEXT    NOT NULL,                    -- canonical request JSON
    result         TEXT,                                -- success: the ASU result object
    failure_detail TEXT,                                -- failure: ASU `detail`
    stdout         TEXT,
    stderr         TEXT,
    last_error     TEXT                                 -- why the last attempt was retried
);

CREATE INDEX jobs_queue ON jobs (state, id);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
