-- Idempotent mutations (AIP-155, cairn_runtime::idempotency): a mutating call that carries a
-- request_id stores its answer here in its own transaction; a retry with the same id gets
-- that answer back. Kept for a day.
CREATE TABLE request_ids (
    request_id  uuid PRIMARY KEY,
    method      text NOT NULL,
    principal   text NOT NULL,
    resource    text NOT NULL,
    response    bytea,
    create_time timestamptz NOT NULL
);
CREATE INDEX request_ids_time_idx ON request_ids (create_time);
