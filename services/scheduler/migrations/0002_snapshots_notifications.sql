-- The snapshot index: what each store holds, as the last job that read it saw it. Lists and
-- retention simulations read this instead of opening stores.
CREATE TABLE snapshots (
    store_id     uuid NOT NULL,
    id           text NOT NULL,
    task_id      uuid,
    time         timestamptz NOT NULL,
    labels       text[] NOT NULL DEFAULT '{}',
    paths        text[] NOT NULL DEFAULT '{}',
    hostname     text NOT NULL DEFAULT '',
    parent       text NOT NULL DEFAULT '',
    total_files  bigint NOT NULL DEFAULT 0,
    total_bytes  bigint NOT NULL DEFAULT 0,
    bytes_added  bigint NOT NULL DEFAULT 0,
    job_id       uuid,
    seen_time    timestamptz NOT NULL,
    PRIMARY KEY (store_id, id)
);
CREATE INDEX snapshots_store_task_time_idx ON snapshots (store_id, task_id, time DESC);
CREATE INDEX snapshots_time_idx ON snapshots (time DESC, store_id, id);
CREATE INDEX snapshots_labels_idx ON snapshots USING gin (labels);

-- The notification outbox: one row per (finished job, channel). A job's row with channel '*'
-- is written in the transaction that finishes the job; the dispatcher expands it into one row
-- per channel of the task's settings, then delivers each exactly once (claimed with a lease,
-- retried with backoff).
CREATE TABLE notifications (
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    channel         text NOT NULL,
    state           text NOT NULL DEFAULT 'PENDING'
                    CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED', 'EXPANDED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt    timestamptz NOT NULL,
    claimed_until   timestamptz,
    last_error      text NOT NULL DEFAULT '',
    create_time     timestamptz NOT NULL,
    delivered_time  timestamptz,
    PRIMARY KEY (job_id, channel)
);
CREATE INDEX notifications_pending_idx ON notifications (next_attempt) WHERE state = 'PENDING';
