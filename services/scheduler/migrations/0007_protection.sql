-- Protection status. A BACKUP job records the source it backs up; per (task, source) the
-- scheduler keeps the last successful backup, the last finished job and whether the
-- recovery point objective is violated (set once by whichever replica sees it first, with
-- its notification in the same transaction; cleared by the next success, with its own).
ALTER TABLE jobs ADD COLUMN source_id uuid;

CREATE TABLE protection (
    project_id           text NOT NULL,
    task_id              uuid NOT NULL,
    source_id            uuid NOT NULL,
    task_display_name    text NOT NULL,
    source_display_name  text NOT NULL,
    rpo_ms               bigint,                 -- NULL = no objective
    covered_since        timestamptz NOT NULL,   -- the first job of the pair
    latest_job_id        uuid NOT NULL,          -- a recent job of the pair (the first, until one finishes)
    last_success_time    timestamptz,
    last_success_job_id  uuid,
    last_snapshot        text NOT NULL DEFAULT '',
    last_finished_job_id uuid,
    last_job_state       text NOT NULL DEFAULT '',
    last_error           text NOT NULL DEFAULT '',
    violated_time        timestamptz,            -- NULL = not violated
    PRIMARY KEY (project_id, task_id, source_id)
);
-- What the sweep looks at: pairs with an objective that are not violated yet.
CREATE INDEX protection_watched_idx ON protection (project_id) WHERE violated_time IS NULL AND rpo_ms IS NOT NULL;

-- The outbox also carries protection events of a (task, source), each tied to a job of the
-- pair: `source.rpo_violated` (the pair's last finished job, else its first) and
-- `source.rpo_recovered` (the success that ended it), with what the message says in `detail`.
ALTER TABLE notifications ADD COLUMN event text NOT NULL DEFAULT 'job.finished';
ALTER TABLE notifications ADD COLUMN detail jsonb;
ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD PRIMARY KEY (job_id, event, channel);
