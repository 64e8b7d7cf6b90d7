-- 0005: the fleet counts the jobs that became pending since its last look
-- (Jobs.ListPendingSince), whatever their status now.

CREATE INDEX jobs_pending_at ON jobs (pending_at);
