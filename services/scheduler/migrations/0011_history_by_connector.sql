-- History at scale (1,000,000 jobs, issue 16). Listing a connector's jobs probed
-- job_connectors for every job of the project, newest first, until a page was full: about
-- 20 probes per hit for a connector in 1 of 20 jobs, up to a second per page. job_connectors
-- now carries each job's create_time, so a connector's jobs are read newest first from one
-- index; a task's jobs likewise from (task_id, create_time).
ALTER TABLE job_connectors ADD COLUMN create_time timestamptz;
UPDATE job_connectors c SET create_time = j.create_time FROM jobs j WHERE j.id = c.job_id;
ALTER TABLE job_connectors ALTER COLUMN create_time SET NOT NULL;
CREATE INDEX job_connectors_history_idx ON job_connectors (connector_id, create_time DESC, job_id DESC);

DROP INDEX jobs_task_idx;
CREATE INDEX jobs_task_idx ON jobs (task_id, create_time DESC, id DESC);
