-- The scheduler: schedules, jobs (the queue and the history), job logs, store concurrency
-- limits. Time columns are written from the scheduler's clock (synchronised with Postgres'
-- clock), never from workers.

CREATE TABLE schedules (
    id              uuid PRIMARY KEY,
    display_name    text NOT NULL,
    task_id         uuid NOT NULL,
    spec            jsonb NOT NULL,          -- the Schedule message (inputs only)
    enabled         boolean NOT NULL,
    journalised     boolean NOT NULL,
    anchor          timestamptz NOT NULL,    -- grid origin of interval recurrences
    next_fire       timestamptz,             -- next occurrence (nominal); NULL = never again
    next_run_time   timestamptz,             -- next_fire + jitter: when the job is due
    last_fire       timestamptz,             -- journal: the last occurrence fired
    missed_runs     bigint NOT NULL DEFAULT 0,
    last_job_id     uuid,
    connector_ids   uuid[] NOT NULL DEFAULT '{}',
    version         bigint NOT NULL DEFAULT 1,
    request_id      uuid,
    create_time     timestamptz NOT NULL,
    update_time     timestamptz NOT NULL,
    CONSTRAINT schedules_display_name_key UNIQUE (display_name),
    CONSTRAINT schedules_request_id_key UNIQUE (request_id)
);
CREATE INDEX schedules_due_idx ON schedules (next_run_time) WHERE enabled AND next_run_time IS NOT NULL;
CREATE INDEX schedules_task_idx ON schedules (task_id);
CREATE INDEX schedules_connectors_idx ON schedules USING gin (connector_ids);

-- Limits of the stores jobs touch; their rows are the locks that serialise leasing per store.
CREATE TABLE stores (
    id                  uuid PRIMARY KEY,
    display_name        text NOT NULL DEFAULT '',
    max_concurrent_jobs integer NOT NULL
);

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,            -- UUIDv7: id order is creation order
    task_id             uuid,                        -- NULL for TEST_CONNECTION
    task_display_name   text NOT NULL DEFAULT '',
    type                text NOT NULL,
    schedule_id         uuid,                        -- no FK: history outlives schedules
    occurrence          timestamptz,                 -- nominal occurrence of schedule jobs
    trigger             text NOT NULL,
    connector_ids       uuid[] NOT NULL DEFAULT '{}',
    store_ids           uuid[] NOT NULL DEFAULT '{}',
    exclusive           boolean NOT NULL DEFAULT false,   -- holds its stores alone (PRUNE)
    serial              boolean NOT NULL DEFAULT false,   -- never beside another job of its task
    selector            jsonb NOT NULL DEFAULT '{}',
    test_connector_id   uuid,
    state               text NOT NULL,
    scheduled_time      timestamptz NOT NULL,
    run_after           timestamptz NOT NULL,
    create_time         timestamptz NOT NULL,
    start_time          timestamptz,
    end_time            timestamptz,
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 3,
    initial_backoff_ms  bigint NOT NULL DEFAULT 10000,
    max_backoff_ms      bigint NOT NULL DEFAULT 600000,
    timeout_ms          bigint,
    worker              text NOT NULL DEFAULT '',
    lease_id            uuid,
    lease_generation    bigint NOT NULL DEFAULT 0,
    lease_expire_time   timestamptz,
    cancel_requested    boolean NOT NULL DEFAULT false,
    cancel_reason       text NOT NULL DEFAULT '',
    timed_out           boolean NOT NULL DEFAULT false,
    progress            jsonb,
    snapshot            text NOT NULL DEFAULT '',
    stats               jsonb,
    error               text NOT NULL DEFAULT '',
    wait_reason         text NOT NULL DEFAULT '',
    missed_occurrences  bigint NOT NULL DEFAULT 0,
    connection_test     jsonb,
    trace_parent        text NOT NULL DEFAULT '',
    request_id          uuid,
    log_seq             bigint NOT NULL DEFAULT 0,
    CONSTRAINT jobs_request_id_key UNIQUE (request_id),
    CONSTRAINT jobs_state_check CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED'))
);
-- Exactly once per occurrence, whatever the number of scheduler replicas.
CREATE UNIQUE INDEX jobs_schedule_occurrence_key ON jobs (schedule_id, occurrence) WHERE occurrence IS NOT NULL;
CREATE INDEX jobs_queue_idx ON jobs (run_after, id) WHERE state = 'QUEUED';
CREATE INDEX jobs_running_idx ON jobs (lease_expire_time) WHERE state = 'RUNNING';
CREATE UNIQUE INDEX jobs_lease_idx ON jobs (lease_id) WHERE lease_id IS NOT NULL;
CREATE INDEX jobs_task_idx ON jobs (task_id, id DESC);
CREATE INDEX jobs_schedule_idx ON jobs (schedule_id, id DESC);
CREATE INDEX jobs_connectors_idx ON jobs USING gin (connector_ids);
CREATE INDEX jobs_active_task_idx ON jobs (task_id) WHERE state IN ('QUEUED', 'RUNNING');
CREATE INDEX jobs_end_time_idx ON jobs (end_time) WHERE end_time IS NOT NULL;

CREATE TABLE job_logs (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    time        timestamptz NOT NULL,
    level       smallint NOT NULL,
    message     text NOT NULL,
    attempt     integer NOT NULL,
    worker_seq  bigint NOT NULL,        -- the worker's own counter (0 = written by the scheduler)
    PRIMARY KEY (job_id, seq)
);
