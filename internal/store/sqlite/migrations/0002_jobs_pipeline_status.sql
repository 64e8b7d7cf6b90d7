-- Counting a pipeline's jobs by status (what settling a pipeline asks after
-- every job) reads this index alone.
CREATE INDEX jobs_pipeline_status ON jobs (pipeline_id, status, allow_failure);
