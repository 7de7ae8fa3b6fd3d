-- Snapshot queries (ListSnapshotEntries, DiffSnapshots, ReadSnapshotFile): asked by one
-- scheduler replica, taken by a worker through another, answered in numbered parts that the
-- asker reads and deletes. Rows live for seconds; expired ones are purged by the reaper.
CREATE TABLE queries (
    id uuid PRIMARY KEY,
    project_id text NOT NULL,
    store_id uuid NOT NULL,
    -- The store's worker selector at the time of asking.
    selector jsonb NOT NULL,
    -- The SnapshotQuery without store and token (protobuf).
    request bytea NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    worker_id text,
    token_hash bytea,
    taken_time timestamptz
);
CREATE INDEX queries_open ON queries (create_time) WHERE worker_id IS NULL;

CREATE TABLE query_parts (
    query_id uuid NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    -- The AnswerQueryRequest without its token (protobuf).
    part bytea NOT NULL,
    PRIMARY KEY (query_id, seq)
);
