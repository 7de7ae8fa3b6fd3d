-- Identities (ADR 0009): local users, their roles in projects, service accounts, worker pools
-- and every credential (login sessions, refresh tokens, API tokens, worker pool tokens),
-- stored as SHA-256 hashes of 256-bit random secrets; passwords as argon2id PHC strings.
-- Memberships, service accounts and their tokens go with their project.

CREATE TABLE users (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9._-]{0,62}$'),
    display_name    text NOT NULL DEFAULT '',
    password_hash   text,
    platform_admin  boolean NOT NULL DEFAULT false,
    disabled        boolean NOT NULL DEFAULT false,
    -- Failed logins in a row, and the time before which the next attempt is refused.
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('viewer', 'operator', 'editor', 'admin')),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_user_idx ON members (user_id);

CREATE TABLE service_accounts (
    project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    id              text NOT NULL CHECK (id ~ '^[a-z][a-z0-9._-]{0,62}$'),
    display_name    text NOT NULL DEFAULT '',
    role            text NOT NULL CHECK (role IN ('viewer', 'operator', 'editor', 'admin')),
    create_time     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);

CREATE TABLE worker_pools (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9._-]{0,62}$'),
    display_name    text NOT NULL DEFAULT '',
    projects        text[] NOT NULL,
    labels          jsonb NOT NULL DEFAULT '{}',
    create_time     timestamptz NOT NULL DEFAULT now()
);

-- One row per credential. `kind`: session (access token of a login), refresh, api_token
-- (of a service account, or the bootstrap token of a user), worker_pool.
CREATE TABLE credentials (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('session', 'refresh', 'api_token', 'worker_pool')),
    token_hash      bytea NOT NULL,
    display_name    text NOT NULL DEFAULT '',
    user_id         text REFERENCES users (id) ON DELETE CASCADE,
    project_id      text,
    service_account_id text,
    worker_pool_id  text REFERENCES worker_pools (id) ON DELETE CASCADE,
    -- The login a session or refresh token belongs to (both end together).
    login_id        uuid,
    creator         text NOT NULL DEFAULT '',
    create_time     timestamptz NOT NULL DEFAULT now(),
    expire_time     timestamptz,
    revoke_time     timestamptz,
    last_used_time  timestamptz,
    CONSTRAINT credentials_token_hash_key UNIQUE (token_hash),
    CONSTRAINT credentials_service_account_fkey FOREIGN KEY (project_id, service_account_id)
        REFERENCES service_accounts (project_id, id) ON DELETE CASCADE,
    CONSTRAINT credentials_owner_check CHECK (
        (user_id IS NOT NULL)::int + (service_account_id IS NOT NULL)::int + (worker_pool_id IS NOT NULL)::int = 1)
);
CREATE INDEX credentials_login_idx ON credentials (login_id) WHERE login_id IS NOT NULL;
CREATE INDEX credentials_service_account_idx ON credentials (project_id, service_account_id)
    WHERE service_account_id IS NOT NULL;

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
