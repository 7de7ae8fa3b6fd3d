-- Projects: every schedule, job (with its log lines and notification outbox rows, which
-- hang off the job), snapshot index entry and store limit belongs to one project; the first
-- release's rows move to `default`. Projects themselves are the catalog's: the scheduler
-- learns a schedule's or job's project from the task the catalog resolved under that
-- project's name, and every later lookup of that task goes through the same project-scoped
-- name, so a row can never reach another project's task.

ALTER TABLE schedules ADD COLUMN project_id text NOT NULL DEFAULT 'default';
ALTER TABLE schedules ALTER COLUMN project_id DROP DEFAULT;
ALTER TABLE schedules DROP CONSTRAINT schedules_display_name_key;
ALTER TABLE schedules ADD CONSTRAINT schedules_display_name_key UNIQUE (project_id, display_name);
-- Idempotency keys are per project: a retry finds its first result in its own project.
ALTER TABLE schedules DROP CONSTRAINT schedules_request_id_key;
ALTER TABLE schedules ADD CONSTRAINT schedules_request_id_key UNIQUE (project_id, request_id);
CREATE INDEX schedules_project_idx ON schedules (project_id, id);

ALTER TABLE jobs ADD COLUMN project_id text NOT NULL DEFAULT 'default';
ALTER TABLE jobs ALTER COLUMN project_id DROP DEFAULT;
ALTER TABLE jobs DROP CONSTRAINT jobs_request_id_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_request_id_key UNIQUE (project_id, request_id);
-- Project-scoped history, newest first (columns a heartbeat never changes: updates stay HOT).
CREATE INDEX jobs_project_idx ON jobs (project_id, create_time DESC, id DESC);

ALTER TABLE snapshots ADD COLUMN project_id text NOT NULL DEFAULT 'default';
ALTER TABLE snapshots ALTER COLUMN project_id DROP DEFAULT;
CREATE INDEX snapshots_project_idx ON snapshots (project_id, time DESC);

ALTER TABLE stores ADD COLUMN project_id text NOT NULL DEFAULT 'default';
ALTER TABLE stores ALTER COLUMN project_id DROP DEFAULT;
