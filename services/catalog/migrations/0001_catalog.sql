-- The catalog: connectors and tasks. Records are the API messages (proto3 JSON in `spec`,
-- secrets and output-only fields removed); columns hold what is filtered, joined or constrained.
-- Secrets are one sealed blob per row (XChaCha20-Poly1305, see src/secrets.rs); `secret_names`
-- says which are set without opening it.

CREATE TABLE connectors (
    id              uuid PRIMARY KEY,
    display_name    text NOT NULL,
    role            text NOT NULL CHECK (role IN ('SOURCE', 'STORE', 'DESTINATION')),
    type            text NOT NULL,
    spec            jsonb NOT NULL,
    worker_selector jsonb NOT NULL DEFAULT '{}',
    secrets         bytea,
    secret_names    text[] NOT NULL DEFAULT '{}',
    last_test       jsonb,
    version         bigint NOT NULL DEFAULT 1,
    request_id      uuid,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connectors_display_name_key UNIQUE (display_name),
    CONSTRAINT connectors_request_id_key UNIQUE (request_id)
);
CREATE INDEX connectors_role_type_idx ON connectors (role, type);
CREATE INDEX connectors_worker_selector_idx ON connectors USING gin (worker_selector);

CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    display_name    text NOT NULL,
    type            text NOT NULL,
    source_id       uuid REFERENCES connectors (id),
    store_id        uuid REFERENCES connectors (id),
    destination_id  uuid REFERENCES connectors (id),
    target_store_id uuid REFERENCES connectors (id),
    spec            jsonb NOT NULL,
    secrets         bytea,
    secret_names    text[] NOT NULL DEFAULT '{}',
    version         bigint NOT NULL DEFAULT 1,
    request_id      uuid,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_display_name_key UNIQUE (display_name),
    CONSTRAINT tasks_request_id_key UNIQUE (request_id)
);
CREATE INDEX tasks_source_idx ON tasks (source_id);
CREATE INDEX tasks_store_idx ON tasks (store_id);
CREATE INDEX tasks_destination_idx ON tasks (destination_id);
CREATE INDEX tasks_target_store_idx ON tasks (target_store_id);
CREATE INDEX tasks_type_idx ON tasks (type);
