-- 0003: the artifacts archives of jobs, one current archive per job. The
-- archive's bytes live in the blob store under digest.

CREATE TABLE artifacts (
	id          INTEGER PRIMARY KEY,
	job_id      INTEGER NOT NULL UNIQUE REFERENCES jobs (id),
	pipeline_id INTEGER NOT NULL REFERENCES pipelines (id),
	attempt_id  INTEGER NOT NULL REFERENCES attempts (id),
	name        TEXT    NOT NULL,
	digest      TEXT    NOT NULL,
	size        INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	-- 0: never expires.
	expire_at   INTEGER NOT NULL
);

-- A claim looks up the artifacts of a pipeline's jobs by name.
CREATE INDEX artifacts_pipeline ON artifacts (pipeline_id);
-- The expiry loop walks the artifacts that expire, soonest first.
CREATE INDEX artifacts_expire ON artifacts (expire_at, id) WHERE expire_at > 0;
-- Whether a blob is still referenced.
CREATE INDEX artifacts_digest ON artifacts (digest);
