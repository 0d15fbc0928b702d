-- The PostgreSQL twin of migrations/sqlite/0002_channels.sql: release channels, their devices
-- and numbered builds (JSON documents with a write `revision` for optimistic concurrency), the
-- audit log, publication state and cross-host lease locks. Times are Unix milliseconds.
CREATE TABLE channels (
    name     TEXT   PRIMARY KEY,
    doc      TEXT   NOT NULL,
    revision BIGINT NOT NULL
);

CREATE TABLE channel_devices (
    channel  TEXT   NOT NULL REFERENCES channels (name) ON DELETE CASCADE,
    device   TEXT   NOT NULL,                  -- `target/subtarget/profile`
    doc      TEXT   NOT NULL,
    revision BIGINT NOT NULL,
    pending  BIGINT NOT NULL DEFAULT 0,        -- builds waiting for their image job (settle)
    PRIMARY KEY (channel, device)
);

CREATE INDEX channel_devices_pending ON channel_devices (channel, device) WHERE pending > 0;

CREATE TABLE channel_audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    operation TEXT   NOT NULL,
    target    TEXT   NOT NULL,
    before    TEXT   NOT NULL,
    after     TEXT   NOT NULL
);

CREATE TABLE channel_state (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE channel_locks (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
