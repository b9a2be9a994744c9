-- SMART Backend Services: a client may register a JWK Set and authenticate
-- with signed assertions (RFC 7523) instead of a secret. Assertion ids are
-- remembered until the assertion expires, so none is accepted twice.

ALTER TABLE clients ADD COLUMN jwks TEXT;

CREATE TABLE used_assertions (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
