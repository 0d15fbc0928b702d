-- Outcome reports (`src/channels/reports.rs`): how each router's upgrade to a channel build went.
-- One row per router (`machine`: a salted SHA-256, never the machine-id itself), channel, device
-- and build it upgraded to; a router reporting the same upgrade again replaces its row, so a retry
-- after a lost answer counts once. Rows only exist for builds the tree has, and at most
-- `channels.max_reports_per_build` per build, so the table cannot grow without bound. Times are
-- Unix milliseconds.
CREATE TABLE channel_reports (
    channel    TEXT    NOT NULL,
    device     TEXT    NOT NULL,   -- `target/subtarget/profile`
    to_build   INTEGER NOT NULL,
    machine    TEXT    NOT NULL,   -- 64 lowercase hex digits
    from_build INTEGER NOT NULL,
    result     TEXT    NOT NULL CHECK (result IN ('booted', 'rolled-back', 'failed-before-flash')),
    cause      TEXT,               -- a failure's one-line cause, at most 512 bytes
    at         INTEGER NOT NULL,
    PRIMARY KEY (channel, device, to_build, machine)
);

CREATE INDEX channel_reports_at ON channel_reports (channel, device, to_build, at);

-- The salt routers hash their machine-id with: made once by whichever process asks first.
CREATE TABLE report_salt (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    salt TEXT    NOT NULL
);

-- Auto-halt and auto-advance (`src/channels/rollout.rs`): the phased percentage each latest build
-- was last seen at and since when. A percentage that differs from the one recorded was changed
-- by someone (an operator, or the rollout itself) and starts a new window: reports from before
-- it are not held against the build again.
CREATE TABLE channel_rollouts (
    channel    TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    build      INTEGER NOT NULL,
    percentage INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    PRIMARY KEY (channel, device, build)
);
