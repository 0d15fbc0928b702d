-- Whole-file downloads of channel image files (`/channels/pool/<aa>/<sha256>-<name>`), added up
-- in memory and flushed in batches like `image_downloads`. The pool is content-addressed, so a
-- row counts one file; a build's count is the sum over its files (`channels::downloads`). Times
-- are Unix milliseconds.
CREATE TABLE channel_downloads (
    sha256  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (sha256, name)
);
