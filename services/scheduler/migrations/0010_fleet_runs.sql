-- Fleet BACKUP tasks: one firing (or RunTask) makes one job per source; the jobs of one run
-- share run_id. A schedule occurrence now has at most one job per source (NULL = none).
ALTER TABLE jobs ADD COLUMN run_id uuid;
CREATE INDEX jobs_run_idx ON jobs (project_id, run_id) WHERE run_id IS NOT NULL;
DROP INDEX jobs_schedule_occurrence_key;
CREATE UNIQUE INDEX jobs_schedule_occurrence_key
    ON jobs (schedule_id, occurrence, (COALESCE(source_id, '00000000-0000-0000-0000-000000000000'::uuid)))
    WHERE occurrence IS NOT NULL;
