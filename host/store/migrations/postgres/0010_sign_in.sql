-- Signing in: a password (argon2id, PHC string), a TOTP second factor
-- (its secret sealed under the key-encryption key, and the last time step
-- used, so a code works once), and server-side sessions.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE sessions (
    -- Lower-case hex HMAC-SHA256 of the session id under the store's pepper.
    hash         TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id);
