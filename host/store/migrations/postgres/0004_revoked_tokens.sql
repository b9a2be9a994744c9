-- Revoked access tokens, kept until they would have expired anyway, so a
-- revocation survives restarts and reaches every gateway sharing the store.

CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
