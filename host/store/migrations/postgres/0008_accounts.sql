-- People who use the admin API, their roles, and their personal API tokens.
-- Portable SQL: it runs on SQLite and PostgreSQL alike.

CREATE TABLE users (
    user_id     TEXT PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    -- 'active' or 'disabled'.
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

-- A role, and what it is scoped to: '' for operator and auditor, a client
-- id for app-owner, a tenant id (or '*') for approver.
CREATE TABLE user_roles (
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    PRIMARY KEY (user_id, role, scope)
);

CREATE TABLE api_tokens (
    token_id     TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- Lower-case hex HMAC-SHA256 of the token under the store's pepper.
    hash         TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
