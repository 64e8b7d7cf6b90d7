-- 0001: the first schema. Times are Unix microseconds in UTC, 0 for the
-- zero time; list and struct fields are JSON text.

CREATE TABLE projects (
	id         INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE pipelines (
	id          INTEGER PRIMARY KEY,
	project_id  INTEGER NOT NULL REFERENCES projects (id),
	status      TEXT    NOT NULL,
	source      TEXT    NOT NULL,
	ref         TEXT    NOT NULL,
	sha         TEXT    NOT NULL,
	archive     TEXT    NOT NULL,
	file        TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	variables   TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL
);

CREATE INDEX pipelines_project ON pipelines (project_id, id);
CREATE INDEX pipelines_status ON pipelines (status, id);

CREATE TABLE jobs (
	id                       INTEGER PRIMARY KEY,
	pipeline_id              INTEGER NOT NULL REFERENCES pipelines (id),
	name                     TEXT    NOT NULL,
	stage                    TEXT    NOT NULL,
	stage_index              INTEGER NOT NULL,
	status                   TEXT    NOT NULL,
	run_when                 TEXT    NOT NULL,
	allow_failure            INTEGER NOT NULL,
	allow_failure_exit_codes TEXT    NOT NULL,
	tags                     TEXT    NOT NULL,
	needs                    TEXT    NOT NULL,
	spec                     TEXT    NOT NULL,
	reason                   TEXT    NOT NULL,
	failure_reason           TEXT    NOT NULL,
	attempts                 INTEGER NOT NULL,
	lost_attempts            INTEGER NOT NULL,
	exit_code                INTEGER NOT NULL,
	run_after                INTEGER NOT NULL,
	created_at               INTEGER NOT NULL,
	pending_at               INTEGER NOT NULL,
	started_at               INTEGER NOT NULL,
	finished_at              INTEGER NOT NULL
);

CREATE INDEX jobs_pipeline ON jobs (pipeline_id, id);
-- NextPending and ListByStatus(pending) walk this index in order.
CREATE INDEX jobs_status_pending ON jobs (status, pending_at, id);

CREATE TABLE agents (
	id           INTEGER PRIMARY KEY,
	name         TEXT    NOT NULL,
	token_hash   BLOB    NOT NULL UNIQUE,
	labels       TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	version      TEXT    NOT NULL,
	concurrency  INTEGER NOT NULL,
	health       TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL
);

CREATE TABLE attempts (
	id               INTEGER PRIMARY KEY,
	job_id           INTEGER NOT NULL REFERENCES jobs (id),
	number           INTEGER NOT NULL,
	agent_id         INTEGER NOT NULL REFERENCES agents (id),
	token_hash       BLOB    NOT NULL,
	status           TEXT    NOT NULL,
	lease_expires_at INTEGER NOT NULL,
	cancel_requested INTEGER NOT NULL,
	exit_code        INTEGER NOT NULL,
	failure_reason   TEXT    NOT NULL,
	created_at       INTEGER NOT NULL,
	started_at       INTEGER NOT NULL,
	finished_at      INTEGER NOT NULL,
	-- Number is the fencing token: one attempt per number.
	UNIQUE (job_id, number)
);

-- ExpiredAttempts and RunningAttempts.
CREATE INDEX attempts_lease ON attempts (status, lease_expires_at);
CREATE INDEX attempts_agent ON attempts (agent_id, status);

-- A log is its chunks in offset order; log_sizes keeps each log's length
-- so Append and Size need one row, not a scan.
CREATE TABLE log_sizes (
	attempt_id INTEGER PRIMARY KEY REFERENCES attempts (id),
	size       INTEGER NOT NULL
);

CREATE TABLE log_chunks (
	attempt_id INTEGER NOT NULL REFERENCES log_sizes (attempt_id),
	offset     INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	PRIMARY KEY (attempt_id, offset)
);
