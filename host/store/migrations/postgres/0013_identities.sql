-- Signing in through OpenID Connect: a user is bound to an identity by the
-- provider's issuer and the subject it gives, never by e-mail; and the
-- short-lived state of sign-ins under way (its secrets sealed).
CREATE TABLE user_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_by_user ON user_identities (user_id);

CREATE TABLE oidc_logins (
    -- HMAC-SHA256 of the `state` under the pepper.
    state_hash  TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    -- JSON {nonce, verifier, redirect_uri, invitation?}, sealed under the KEK.
    sealed      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX oidc_logins_by_expiry ON oidc_logins (expires_at);
