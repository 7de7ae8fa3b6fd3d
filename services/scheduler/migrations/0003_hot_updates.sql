-- Leasing updates a job two or three times (start, heartbeats, finish). Heartbeats change only
-- lease_expire_time and progress: with no index on those columns and free space on the page
-- they are HOT updates (no index maintenance). History filters by connector move to a table
-- written once per job, so job updates never touch a GIN index.
ALTER TABLE jobs SET (fillfactor = 70);

DROP INDEX jobs_running_idx;
CREATE INDEX jobs_running_idx ON jobs (id) WHERE state = 'RUNNING';

DROP INDEX jobs_schedule_idx;
CREATE INDEX jobs_schedule_idx ON jobs (schedule_id, create_time DESC) WHERE schedule_id IS NOT NULL;

DROP INDEX jobs_connectors_idx;
CREATE TABLE job_connectors (
    connector_id uuid NOT NULL,
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (connector_id, job_id)
);
CREATE INDEX job_connectors_job_idx ON job_connectors (job_id);
INSERT INTO job_connectors (connector_id, job_id) SELECT unnest(connector_ids), id FROM jobs;
