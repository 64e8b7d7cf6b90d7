-- 0006: the fleet's instance transitions, kept in the store so that they
-- survive restarts and every server sharing the database lists the same;
-- and an index for the analytics, which read the jobs finished since a
-- time (Jobs.ListFinished).

CREATE TABLE fleet_events (
	id       INTEGER PRIMARY KEY,
	at       INTEGER NOT NULL,
	class    TEXT    NOT NULL,
	instance TEXT    NOT NULL,
	kind     TEXT    NOT NULL,
	reason   TEXT    NOT NULL
);

-- List walks it from since, in order; DeleteBefore up to a time.
CREATE INDEX fleet_events_at ON fleet_events (at, id);

-- ListFinished walks the jobs finished since a time in (finished_at, id)
-- order: the index holds the rowid, which is id.
CREATE INDEX jobs_finished_at ON jobs (finished_at);
