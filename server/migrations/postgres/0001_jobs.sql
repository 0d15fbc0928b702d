-- The PostgreSQL twin of migrations/sqlite/0001_jobs.sql: one row per build request, keyed by
-- the full request hash (the unique key is the de-duplication). The row is the queue entry while
-- queued or running and the cache entry once finished, until `expires_at`. Times are Unix
-- milliseconds chosen by the caller, as in SQLite, so both stores behave the same under one test
-- suite; hosts sharing the database need synchronised clocks (NTP) for leases to mean the same
-- everywhere.
CREATE TABLE jobs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- queue order
    request_hash   TEXT   NOT NULL UNIQUE,
    state          TEXT   NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    stage          TEXT   NOT NULL DEFAULT 'init',     -- `imagebuilder_status` while running
    attempt        BIGINT NOT NULL DEFAULT 0,          -- incremented by every claim; fences updates
    worker         TEXT,
    lease_until    BIGINT,
    run_after      BIGINT NOT NULL,                    -- retry back-off: not claimed before this
    enqueued_at    BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    expires_at     BIGINT,
    request        TEXT   NOT NULL,                    -- canonical request JSON
    result         TEXT,                               -- success: the ASU result object
    failure_detail TEXT,                               -- failure: ASU `detail`
    stdout         TEXT,
    stderr         TEXT,
    last_error     TEXT                                -- why the last attempt was retried
);

-- The claim scans queued jobs in id order; the reaper scans running jobs by lease.
CREATE INDEX jobs_queue ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
