-- Projects: the tenancy unit. Every connector and task belongs to one; the first release's
-- records move to `default`, which always exists. A task can only use connectors of its own
-- project: its connector columns are composite foreign keys on (project_id, id), so the
-- database itself refuses a cross-project reference, whatever the handler code does.

CREATE TABLE projects (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    display_name    text NOT NULL,
    description     text NOT NULL DEFAULT '',
    labels          jsonb NOT NULL DEFAULT '{}',
    version         bigint NOT NULL DEFAULT 1,
    request_id      uuid,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_display_name_key UNIQUE (display_name),
    CONSTRAINT projects_request_id_key UNIQUE (request_id)
);
INSERT INTO projects (id, display_name, description)
VALUES ('default', 'default', 'The project every install starts with.');

-- The default only backfills existing rows: every new row must name its project.
ALTER TABLE connectors ADD COLUMN project_id text NOT NULL DEFAULT 'default' REFERENCES projects (id);
ALTER TABLE connectors ALTER COLUMN project_id DROP DEFAULT;
ALTER TABLE connectors DROP CONSTRAINT connectors_display_name_key;
ALTER TABLE connectors ADD CONSTRAINT connectors_display_name_key UNIQUE (project_id, display_name);
ALTER TABLE connectors ADD CONSTRAINT connectors_project_id_key UNIQUE (project_id, id);
-- Idempotency keys are per project: a retry finds its first result in its own project.
ALTER TABLE connectors DROP CONSTRAINT connectors_request_id_key;
ALTER TABLE connectors ADD CONSTRAINT connectors_request_id_key UNIQUE (project_id, request_id);

ALTER TABLE tasks ADD COLUMN project_id text NOT NULL DEFAULT 'default' REFERENCES projects (id);
ALTER TABLE tasks ALTER COLUMN project_id DROP DEFAULT;
ALTER TABLE tasks DROP CONSTRAINT tasks_display_name_key;
ALTER TABLE tasks ADD CONSTRAINT tasks_display_name_key UNIQUE (project_id, display_name);
ALTER TABLE tasks DROP CONSTRAINT tasks_request_id_key;
ALTER TABLE tasks ADD CONSTRAINT tasks_request_id_key UNIQUE (project_id, request_id);
ALTER TABLE tasks DROP CONSTRAINT tasks_source_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT tasks_store_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT tasks_destination_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT tasks_target_store_id_fkey;
ALTER TABLE tasks ADD CONSTRAINT tasks_source_fkey
    FOREIGN KEY (project_id, source_id) REFERENCES connectors (project_id, id);
ALTER TABLE tasks ADD CONSTRAINT tasks_store_fkey
    FOREIGN KEY (project_id, store_id) REFERENCES connectors (project_id, id);
ALTER TABLE tasks ADD CONSTRAINT tasks_destination_fkey
    FOREIGN KEY (project_id, destination_id) REFERENCES connectors (project_id, id);
ALTER TABLE tasks ADD CONSTRAINT tasks_target_store_fkey
    FOREIGN KEY (project_id, target_store_id) REFERENCES connectors (project_id, id);

-- Connection-test verdicts of the first release name their job without a project.
UPDATE connectors SET last_test = jsonb_set(last_test, '{job}', to_jsonb('projects/default/' || (last_test ->> 'job')))
WHERE last_test ->> 'job' LIKE 'jobs/%';

CREATE INDEX connectors_project_idx ON connectors (project_id, id);
CREATE INDEX tasks_project_idx ON tasks (project_id, id);
