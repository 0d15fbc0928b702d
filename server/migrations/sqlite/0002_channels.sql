-- Release channels (`src/channels/`): the tree of channels, their devices and numbered builds,
-- the audit log of every change, publication state and cross-process locks.
--
-- A channel row holds the channel without its devices (JSON of `channels::store::ChannelDoc`);
-- each device is its own row (JSON of `channels::model::Device`, builds included), so a change
-- to one device rewrites one small row and publication can tell which devices changed by their
-- revision. `revision` counts writes: a commit names the revision it read and is refused if
-- another writer got there first (optimistic concurrency; the caller reloads and retries).
CREATE TABLE channels (
    name     TEXT    PRIMARY KEY,
    doc      TEXT    NOT NULL,
    revision INTEGER NOT NULL
);

CREATE TABLE channel_devices (
    channel  TEXT    NOT NULL REFERENCES channels (name) ON DELETE CASCADE,
    device   TEXT    NOT NULL,                 -- `target/subtarget/profile`
    doc      TEXT    NOT NULL,
    revision INTEGER NOT NULL,
    pending  INTEGER NOT NULL DEFAULT 0,       -- builds waiting for their image job (settle)
    PRIMARY KEY (channel, device)
);

CREATE INDEX channel_devices_pending ON channel_devices (channel, device) WHERE pending > 0;

-- One row per committed change: who (`cli:<user>` or an admin token's name), what, and the
-- touched channels before and after (JSON). Times are Unix milliseconds.
CREATE TABLE channel_audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms     INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    operation TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    before    TEXT    NOT NULL,
    after     TEXT    NOT NULL
);

-- Counters and small values: the publication `serial`.
CREATE TABLE channel_state (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Lease-style named locks shared by every process and host using this database (one importer
-- at a time): held by `holder` until `expires_at`, then free for anyone.
CREATE TABLE channel_locks (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
