-- The PostgreSQL twin of migrations/sqlite/0003_stats.sql. Statistics: one row per build request
-- outcome, written once when it happens and never updated, so recording costs one insert. The
-- statistics endpoints aggregate these rows; the collector deletes rows past the retention
-- period. Times are Unix milliseconds. No addresses are stored, only what the request says.
CREATE TABLE build_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('request', 'cache_hit', 'success', 'failure')),
    version     TEXT    NOT NULL,
    target      TEXT    NOT NULL,   -- `target/subtarget`
    profile     TEXT    NOT NULL,
    client      TEXT    NOT NULL,   -- `client` field, `auc/<version>` from the User-Agent, or `unknown/0`
    packages    TEXT    NOT NULL DEFAULT '',   -- success: the requested packages, space-separated
    detail      TEXT,               -- failure: the error, anonymised and cut short
    duration_ms BIGINT              -- success: wall time of the build
);

CREATE INDEX build_events_at ON build_events (at);
CREATE INDEX build_events_outcome ON build_events (outcome, at);

-- Whole-file downloads per image, added up in memory and flushed in batches.
CREATE TABLE image_downloads (
    request_hash TEXT    NOT NULL,
    image        TEXT    NOT NULL,
    count        BIGINT  NOT NULL,
    last_at      BIGINT  NOT NULL,
    PRIMARY KEY (request_hash, image)
);
