-- Build events counted: a row of `build_events` stands for `count` identical events (the same
-- outcome, request facts and time). The server counts the request events of busy clients in
-- memory and writes one row per kind of event and flush instead of one per event; finished and
-- failed builds keep one row each. Every statistic sums `count`; rows written before this
-- migration stand for one event each.
ALTER TABLE build_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1 CHECK (count > 0);
