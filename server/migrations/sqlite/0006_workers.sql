-- Remote build workers (`src/store/workers.rs`): one row per worker that may claim jobs over
-- HTTP. Only the SHA-256 of its token is kept, so a copy of the database does not let anyone
-- claim jobs. A revoked worker keeps its row (its name and build count stay visible) and its
-- token stops working at once. Times are Unix milliseconds.
CREATE TABLE workers (
    name           TEXT    PRIMARY KEY,
    token_sha256   TEXT    NOT NULL UNIQUE,   -- 64 lowercase hex digits
    created_at     INTEGER NOT NULL,
    last_heartbeat INTEGER,                   -- the last claim, heartbeat or upload
    builds         INTEGER NOT NULL DEFAULT 0, -- results it uploaded that were published
    revoked_at     INTEGER
);
