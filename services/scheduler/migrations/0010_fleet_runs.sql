-- Fleet BACKUP tasks: one firing (or RunTask) makes one job per source; the jobs of one run
-- share run_id. A schedule occurrence now has at most one job per source (NULL = none).
ALTER TABLE jobs ADD COLUMN run_id uuid;
-- What `serial` placement and the overlap policy keep apart besides the task: the source of
-- a fleet job (NULL for other jobs, which are kept apart per task).
ALTER TABLE jobs ADD COLUMN serial_source uuid
    GENERATED ALWAYS AS (CASE WHEN run_id IS NULL THEN NULL ELSE source_id END) STORED;
CREATE INDEX jobs_run_idx ON jobs (project_id, run_id) WHERE run_id IS NOT NULL;
DROP INDEX jobs_schedule_occurrence_key;
CREATE UNIQUE INDEX jobs_schedule_occurrence_key
    ON jobs (schedule_id, occurrence, (COALESCE(source_id, '00000000-0000-0000-0000-000000000000'::uuid)))
    WHERE occurrence IS NOT NULL;

-- A store that jobs may initialise (create_if_missing) takes one job at a time until a job
-- touching it succeeds (ready): concurrent first jobs would each initialise the repository
-- with their own master key. Stores with a success in history are ready.
ALTER TABLE stores ADD COLUMN create_if_missing boolean NOT NULL DEFAULT false;
ALTER TABLE stores ADD COLUMN ready boolean NOT NULL DEFAULT false;
UPDATE stores SET ready = true
 WHERE EXISTS (SELECT 1 FROM jobs WHERE jobs.state = 'SUCCEEDED' AND stores.id = ANY (jobs.store_ids));
