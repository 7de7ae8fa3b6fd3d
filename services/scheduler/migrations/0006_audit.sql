-- Lease tokens (ADR 0009): the SHA-256 of the current lease's own credential, checked with
-- the fencing generation on every report.
ALTER TABLE jobs ADD COLUMN lease_token_hash bytea;

-- The audit log (same shape in every service's schema; see cairn_runtime::auth::audit).
CREATE TABLE audit_events (
    id              uuid PRIMARY KEY,
    time            timestamptz NOT NULL,
    service         text NOT NULL,
    principal       text NOT NULL,
    auth_method     text NOT NULL,
    token_id        text NOT NULL,
    project_id      text,
    method          text NOT NULL,
    resource        text NOT NULL,
    allowed         boolean NOT NULL,
    code            text NOT NULL,
    request_id      text NOT NULL,
    detail          text NOT NULL
);
CREATE INDEX audit_events_time_idx ON audit_events (time DESC, id DESC);
CREATE INDEX audit_events_project_idx ON audit_events (project_id, time DESC, id DESC);
-- Append-only: the table refuses updates (deletion is an operator's retention decision).
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
