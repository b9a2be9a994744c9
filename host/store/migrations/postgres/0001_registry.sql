-- The client registry, its secrets, and the audit trail of changes to them.
-- Portable SQL: it runs on SQLite and PostgreSQL alike.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- JSON array of lower-case tenant ids.
    tenants     TEXT NOT NULL,
    -- 'active' or 'disabled'.
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE client_secrets (
    secret_id   TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- Lower-case hex HMAC-SHA256 of the secret under the store's pepper.
    hash        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- The secret stops working at this time (a rotation's grace end); NULL: never.
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE INDEX client_secrets_by_client ON client_secrets (client_id);

CREATE TABLE audit_events (
    event_id    TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    -- JSON object; never secrets, tokens or patient data.
    detail      TEXT NOT NULL
);

CREATE INDEX audit_events_by_time ON audit_events (at);
